"""Where messages go: Kafka (through the on-disk spool) and JSONL files.

    PublishStage ──publish(messages)──▶ Publisher ──▶ KafkaSink: spool.append ─▶ sender thread
                                                 │      sender: oldest spooled batch ─▶ producer
                                                 │        acknowledged (acks=all) ─▶ spool.ack
                                                 │        failed ─▶ counted, producer rebuilt,
                                                 │                  retried after a backoff
                                                 └──▶ JsonlSink: one JSON document per line

Kafka delivery is at-least-once and in order: the sender sends the spool's oldest messages, waits
for the broker's acknowledgement of every replica (``acks="all"``, idempotent producer) and
removes from the spool only the acknowledged prefix of the batch; whatever failed, and all that
came after it, is sent again. While the broker is unreachable messages wait in the spool (a
bounded SQLite file, `pipeline.messages.spool`), and nothing is dropped: when the spool is full,
`publish` waits. Links are keyed by global id, embeddings by camera id (one key stays on one
partition, so its messages stay in order); the topics are `kafka.links_topic` and
`kafka.embeddings_topic`, created by the broker's auto-creation if missing.

The client is kafka-python's `KafkaProducer`; the connection, TLS and SASL settings come from
`KafkaConfig.client_options()`.

A sink's `publish` stores a batch whole or not at all. When the disk refuses a write (full,
over a file-size limit, I/O error: `is_write_failure`), the `Publisher` keeps the batch and tries
again with a backoff; meanwhile `Publisher.on_blocked` pauses the intake (the job stops taking
frames, so live cameras drop theirs, counted) and nothing is lost. Only when the process must
stop first (`Publisher.abandon`, at shutdown) are the batches it could not store counted as lost
(`reidstream_messages_lost_total{sink, kind}`, `Publisher.lost`), logged at ERROR, and reported
in the run's summary and exit status.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from pipeline.messages.backoff import Backoff
from pipeline.messages.encoding import Message
from pipeline.messages.spool import Spool, SpoolWriteError
from pipeline.monitoring.metrics import PipelineMetrics

__all__ = ["JsonlSink", "KafkaSink", "Publisher", "Sink", "is_write_failure"]

log = logging.getLogger(__name__)


class Sink(Protocol):
    name: str

    def publish(self, messages: Sequence[Message]) -> None: ...
    def flush(self, timeout: float) -> bool: ...
    def close(self, timeout: float) -> None: ...
    def state(self) -> dict[str, Any]: ...


#: errno values of a write the disk refused; anything else is not retried.
_DISK_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EIO, errno.EDQUOT}


def _stop_unclosed(producer: Any) -> None:
    """Stops a producer whose `close()` failed. kafka-python (3.0) flushes before it closes and
    raises when records still wait, which leaves its sender thread running for good: the process
    would gather one per failed round of an outage, each sending its records again when the
    broker returns, beside the spool's own resend. Its sender is force-closed instead (failing
    those records, which the spool still holds) and the producer marked closed."""
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
    producer._closed = True  # its __del__ would otherwise try the failing close again


def is_write_failure(error: BaseException) -> bool:
    """Whether `error` is the disk refusing a write (full, over a size limit, I/O error): a
    condition that can clear, so the batch is kept and retried instead of lost."""
    return isinstance(error, SpoolWriteError) or (
        isinstance(error, OSError) and error.errno in _DISK_ERRNOS
    )


def _count_delivered(
    metrics: PipelineMetrics, sink: str, messages: Sequence[Message], *, latency: bool
) -> None:
    links = [m for m in messages if m.kind == "link"]
    if links:
        metrics.links_published.labels(sink=sink).inc(len(links))
    if embeddings := sum(m.kind == "embedding" for m in messages):
        metrics.embeddings_published.labels(sink=sink).inc(embeddings)
    if latency:
        now = time.time()
        for m in links:
            metrics.frame_to_link_latency.labels(camera=m.camera_id).observe(now - m.frame_time)


class JsonlSink:
    """Appends each message's JSON document as one line of a file.

    Args:
        path: The file (its folder is created); appended to, never truncated.
        metrics: Counts what is written.
        observe_latency: Record the frame-to-link latency at the write (when no Kafka sink does).
    """

    name = "jsonl"

    def __init__(self, path: str | Path, metrics: PipelineMetrics, *, observe_latency: bool):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.metrics, self.observe_latency = metrics, observe_latency
        self._file = self.path.open("ab", buffering=0)
        self.written = 0

    def publish(self, messages: Sequence[Message]) -> None:
        """Appends the batch whole; a write the disk refuses leaves the file as it was.

        Raises:
            OSError: The write failed; what part of the batch was written is cut off again.
        """
        data = b"".join(m.value + b"\n" for m in messages)
        end = self._file.seek(0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:  # a raw write may take only part (the last bytes below a size limit)
                view = view[self._file.write(view) :]
        except OSError:
            os.ftruncate(self._file.fileno(), end)  # frees space, so it works on a full disk
            raise
        self.written += len(messages)
        _count_delivered(self.metrics, self.name, messages, latency=self.observe_latency)

    def flush(self, timeout: float) -> bool:
        return True  # unbuffered: every batch is in the file when `publish` returns

    def close(self, timeout: float) -> None:
        self._file.close()

    def state(self) -> dict[str, Any]:
        return {"path": str(self.path), "written": self.written}


class KafkaSink:
    """Publishes to Kafka through a spool, from a sender thread of its own.

    Args:
        client_options: Connection settings for `kafka.KafkaProducer` (bootstrap servers,
            client id, TLS, SASL).
        topics: Message kind ("link", "embedding", "closed") -> topic.
        spool: Where messages wait for acknowledgement.
        metrics: Counts deliveries, errors, the spool and the frame-to-link latency.
        linger_ms: Producer batching delay.
        send_timeout_s: Longest wait for a batch's acknowledgements before it counts as failed.
        batch: Most messages sent per round.
        producer_factory: Builds the producer from keyword arguments (tests pass a wrapper).
        on_delivered: Called from the sender thread with each batch the broker acknowledged.
    """

    name = "kafka"

    def __init__(
        self,
        client_options: dict[str, Any],
        topics: dict[str, str],
        spool: Spool,
        metrics: PipelineMetrics,
        *,
        linger_ms: int = 5,
        send_timeout_s: float = 30.0,
        batch: int = 500,
        producer_factory: Callable[..., Any] | None = None,
        on_delivered: Callable[[list[Message]], None] | None = None,
    ) -> None:
        self.client_options, self.topics, self.spool = client_options, topics, spool
        self.metrics, self.linger_ms = metrics, linger_ms
        self.send_timeout_s, self.batch = send_timeout_s, batch
        self._factory = producer_factory
        self.on_delivered = on_delivered
        self._producer: Any = None
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-sender", daemon=True)
        self.connected = False
        self.last_error: str | None = None
        self.delivered = 0
        self._failures = 0
        #: Wait before resending after a failure: up to 0.5 s, doubling to 10 s, full jitter so
        #: that workers whose broker comes back do not all resend at one instant.
        self._backoff = Backoff(0.5, 10.0)
        self._last_report = 0.0
        self._unacked: list[int] = []
        self._update_spool_gauges()

    # --------------------------------------------------------------------------- interface

    def start(self) -> None:
        if len(self.spool):
            log.info(
                "kafka sink: %d messages left in the spool by an earlier run are sent first",
                len(self.spool),
            )
        self._thread.start()

    def publish(self, messages: Sequence[Message]) -> None:
        """Stores `messages` in the spool (waiting while it is full) and wakes the sender."""
        self.spool.append(messages)
        self._update_spool_gauges()
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Waits until the spool is empty; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        while len(self.spool) and time.monotonic() < deadline and self._thread.is_alive():
            self._wake.set()
            time.sleep(0.02)
        return len(self.spool) == 0

    def close(self, timeout: float) -> None:
        """Delivers what it can within `timeout`; the rest stays in the spool for next time."""
        if self._thread.is_alive() and not self.flush(timeout):
            log.warning(
                "kafka sink: %d messages not acknowledged within %.0f s; they stay in "
                "%s for the next start",
                len(self.spool),
                timeout,
                self.spool.path,
            )
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(self.send_timeout_s + 5)
        self._close_producer()
        self.spool.close()

    def state(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "delivered": self.delivered,
            "spooled": len(self.spool),
            "spool_bytes": self.spool.size_bytes,
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------------------------ sender

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._round()
            except Exception as e:  # the spool's disk failing: the sender must outlive it
                self._spool_failed(e)
                self._stop.wait(self._backoff.delay(self._failures))
            self._update_spool_gauges()

    def _round(self) -> None:
        """Acknowledges what the broker has, or sends the oldest spooled batch."""
        if self._unacked:  # delivered, but the disk refused the deletion: not sent again
            self.spool.ack(self._unacked)
            self._unacked = []
        pending = self.spool.peek(self.batch)
        if not pending:
            self._wake.wait(0.5)
            self._wake.clear()
            return
        acked, error = self._send(pending)
        if acked:
            self._unacked = [i for i, _ in acked]
            self._delivered([m for _, m in acked])
            self.spool.ack(self._unacked)
            self._unacked = []
        if error is not None:
            self._failed(error, len(pending) - len(acked))
            self._stop.wait(self._backoff.delay(self._failures))

    def _send(self, pending: list[tuple[int, Message]]) -> tuple[list, BaseException | None]:
        """Sends a batch in order; returns the acknowledged prefix and the error, if any."""
        futures = []
        error: BaseException | None = None
        try:
            producer = self._producer or self._connect()
            for _, message in pending:
                futures.append(
                    producer.send(
                        self.topics[message.kind],
                        key=message.key.encode("utf-8"),
                        value=message.value,
                    )
                )
            producer.flush(timeout=self.send_timeout_s)
        except Exception as e:  # unreachable broker, timeouts, broker errors
            error = e
        acked = []
        for item, future in zip(pending, futures, strict=False):
            if not (future.is_done and future.succeeded()):
                error = error or future.exception or TimeoutError("not acknowledged in time")
                break
            acked.append(item)
        return acked, error

    def _connect(self) -> Any:
        if self._factory is None:
            from kafka import KafkaProducer

            self._factory = KafkaProducer
        self._producer = self._factory(
            **self.client_options,
            acks="all",
            linger_ms=self.linger_ms,
            max_block_ms=int(self.send_timeout_s * 1000),
            bootstrap_timeout_ms=int(self.send_timeout_s * 1000),
        )
        return self._producer

    def _delivered(self, messages: list[Message]) -> None:
        self.delivered += len(messages)
        _count_delivered(self.metrics, self.name, messages, latency=True)
        if self.on_delivered is not None:
            self.on_delivered(messages)
        if self.last_error is not None and not self.connected:
            log.info(
                "kafka sink: the broker is reachable again; %d messages delivered, %d still "
                "spooled",
                len(messages),
                len(self.spool),
            )
        self.connected, self._failures = True, 0

    def _failed(self, error: BaseException, undelivered: int) -> None:
        self.metrics.publish_errors.labels(sink=self.name).inc()
        self._failures += 1
        self.connected, self.last_error = False, repr(error)
        now = time.monotonic()
        if self._failures == 1 or now - self._last_report > 30:  # do not flood the log
            self._last_report = now
            log.warning(
                "kafka sink: %d messages not delivered (%r); %d wait in the spool and "
                "will be sent again",
                undelivered,
                error,
                len(self.spool),
            )
        self._close_producer()  # a fresh producer after any failure: new connections, new state

    def _spool_failed(self, error: BaseException) -> None:
        """The spool could not be read or updated; delivered messages are acknowledged later."""
        self.metrics.publish_errors.labels(sink=self.name).inc()
        self._failures += 1
        self.last_error = repr(error)
        now = time.monotonic()
        if self._failures == 1 or now - self._last_report > 30:
            self._last_report = now
            log.warning(
                "kafka sink: the spool %s failed (%r); %d delivered messages wait to be removed "
                "from it, retrying",
                self.spool.path,
                error,
                len(self._unacked),
            )

    def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=0)
        except Exception as e:  # closing a broken client must not stop the sender
            log.debug("kafka sink: closing the producer: %r", e)
            _stop_unclosed(producer)

    def _update_spool_gauges(self) -> None:
        self.metrics.spool_messages.set(len(self.spool))
        self.metrics.spool_bytes.set(self.spool.size_bytes)


class Publisher:
    """Every configured sink, fed the same messages in the same order.

    A batch a sink's disk refuses is kept and retried (backoff `retry_initial_s`, doubling up to
    `retry_max_s`) until it is stored or `abandon` is called; `on_blocked(True)` is called when a
    sink starts failing and `on_blocked(False)` once every sink writes again (the job pauses its
    intake in between). A batch a sink fails on for any other reason, or one still unstored when
    `abandon` is called, is lost: counted in `lost` and `reidstream_messages_lost_total`, and
    logged at ERROR.

    Args:
        sinks: Where messages go, in order.
        metrics: Counts write failures and lost messages; None: not counted there.
        retry_initial_s: First wait after a refused write.
        retry_max_s: Longest wait between retries.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        metrics: PipelineMetrics | None = None,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
    ) -> None:
        if not sinks:
            raise ValueError("Publisher: expected at least one sink")
        self.sinks = list(sinks)
        self.metrics = metrics
        self.retry_initial_s, self.retry_max_s = retry_initial_s, retry_max_s
        #: Called with True when a sink's disk starts refusing writes, False when it takes them.
        self.on_blocked: Callable[[bool], None] | None = None
        #: sink -> message kind -> messages lost.
        self.lost: dict[str, Counter[str]] = {}
        #: Sink -> the error that blocks it, while it does.
        self.blocked: dict[str, str] = {}
        self._abandon = threading.Event()

    def start(self) -> None:
        """Starts the sinks that deliver from a thread of their own (Kafka's sender)."""
        for sink in self.sinks:
            if isinstance(sink, KafkaSink):
                sink.start()

    def publish(self, messages: Sequence[Message]) -> None:
        """Hands `messages` to every sink; returns once each stored them or lost them."""
        for sink in self.sinks:
            self._publish_to(sink, messages)

    def abandon(self) -> None:
        """Stops retrying: batches not stored now or later are lost (counted). For shutdown."""
        self._abandon.set()

    @property
    def lost_total(self) -> int:
        return sum(sum(kinds.values()) for kinds in self.lost.values())

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(s.flush(max(deadline - time.monotonic(), 0.0)) for s in self.sinks)

    def close(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for sink in self.sinks:
            sink.close(max(deadline - time.monotonic(), 0.0))

    def state(self) -> dict[str, dict[str, Any]]:
        states = {sink.name: sink.state() for sink in self.sinks}
        for name, error in self.blocked.items():
            states[name]["blocked"] = error
        for name, kinds in self.lost.items():
            states[name]["lost"] = dict(kinds)
        return states

    # ----------------------------------------------------------------------------- retrying

    def _publish_to(self, sink: Sink, messages: Sequence[Message]) -> None:
        failures = 0
        while True:
            try:
                sink.publish(messages)
            except Exception as e:
                if not is_write_failure(e) or self._abandon.is_set():
                    self._lose(sink.name, messages, e)
                    return
                failures += 1
                self._refused(sink.name, e, failures)
                wait = min(self.retry_initial_s * 2 ** min(failures - 1, 20), self.retry_max_s)
                self._abandon.wait(wait)
                continue
            if failures:
                self._unblocked(sink.name, failures)
            return

    def _refused(self, sink: str, error: BaseException, failures: int) -> None:
        if self.metrics is not None:
            self.metrics.publish_errors.labels(sink=sink).inc()
        if failures == 1:
            log.warning(
                "%s sink: the disk refused a write (%s); intake paused, the batch is kept and "
                "retried until it is stored",
                sink,
                error,
            )
            self.blocked[sink] = str(error)
            if self.on_blocked is not None and len(self.blocked) == 1:
                self.on_blocked(True)

    def _unblocked(self, sink: str, failures: int) -> None:
        log.warning(
            "%s sink: writes succeed again after %d refused; intake resumed", sink, failures
        )
        self.blocked.pop(sink, None)
        if self.on_blocked is not None and not self.blocked:
            self.on_blocked(False)

    def _lose(self, sink: str, messages: Sequence[Message], error: BaseException) -> None:
        kinds = Counter(m.kind for m in messages)
        self.lost.setdefault(sink, Counter()).update(kinds)
        if self.metrics is not None:
            for kind, n in kinds.items():
                self.metrics.messages_lost.labels(sink=sink, kind=kind).inc(n)
        log.error(
            "%s sink: %d messages lost (%s), never stored: %s",
            sink,
            len(messages),
            ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())),
            error,
        )

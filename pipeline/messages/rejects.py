"""Records a consumer cannot use: skipped, counted by reason, logged, optionally dead-lettered.

    record ─▶ decode and check ─ MessageError(reason) ─▶ Rejects.reject(record, error)
        ├─▶ reidstream_records_rejected_total{consumer, reason} + 1
        ├─▶ a WARNING (per reason at most one line every `log_every_s`, saying how many were
        │   not logged meanwhile)
        └─▶ with a dead-letter topic: the record's key and value as they came, and the headers
            reidstream.reject.reason, reidstream.reject.error, reidstream.source (topic,
            partition and offset it was read at)
    ─▶ the consumer commits past the record as past any record it handled

A bad record must never stop a consumer, nor come back at every restart: it is skipped and its
offset committed like the others. The copy on the dead-letter topic keeps it for whoever looks
into it; `flush` tells the consumer whether every copy was acknowledged, and the consumer
commits only then (a copy that failed is sent again), so nothing is committed past that was not
kept. The reasons are `pipeline.messages.encoding.REJECT_REASONS`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from pipeline.messages.encoding import REJECT_REASONS, MessageError
from pipeline.monitoring.metrics import PipelineMetrics

__all__ = ["REASON_HEADER", "DeadLetters", "Rejects"]

log = logging.getLogger(__name__)

#: Header of a dead-lettered record naming why it was rejected (one of `REJECT_REASONS`).
REASON_HEADER = "reidstream.reject.reason"
#: Header with the error message (what was wrong, in words).
ERROR_HEADER = "reidstream.reject.error"
#: Header saying where the record was read: ``topic/partition@offset``.
SOURCE_HEADER = "reidstream.source"


@dataclass(frozen=True)
class _Letter:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class DeadLetters:
    """Copies rejected records to a dead-letter topic with kafka-python's `KafkaProducer`.

    Args:
        client_options: Connection settings (`KafkaConfig.client_options`).
        topic: The dead-letter topic (created by the broker's auto-creation if missing).
    """

    def __init__(self, client_options: dict[str, Any], topic: str) -> None:
        from kafka import KafkaProducer

        self.topic = topic
        self._producer = KafkaProducer(**client_options, acks="all", retries=5)
        self._pending: list[tuple[_Letter, Any]] = []
        self.sent = 0

    def send(self, letter: _Letter) -> None:
        """Sends one copy; `flush` says when it is acknowledged."""
        future = self._producer.send(
            self.topic, key=letter.key, value=letter.value, headers=letter.headers
        )
        self._pending.append((letter, future))

    def flush(self, timeout_s: float) -> bool:
        """Waits up to `timeout_s` for the copies sent; True when every one is acknowledged.

        Copies that failed are logged and sent again (the next `flush` waits for them).
        """
        from kafka.errors import KafkaError

        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaError as e:  # a timeout: the broker is slow or away
            log.warning("dead letters to %s not acknowledged yet: %r", self.topic, e)
        waiting = []
        for letter, future in self._pending:
            if not future.is_done:
                waiting.append((letter, future))
            elif future.failed():
                log.warning(
                    "a dead letter to %s failed (%r); sending it again",
                    self.topic,
                    future.exception,
                )
                waiting.append((letter, None))
            else:
                self.sent += 1
        self._pending = []
        for letter, future in waiting:
            if future is None:
                self.send(letter)
            else:
                self._pending.append((letter, future))
        return not self._pending

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.close(timeout=timeout_s)


class Rejects:
    """The records one consumer rejected: counted by reason, logged, optionally dead-lettered.

    Args:
        consumer: Who rejects (the `consumer` label of the metric): "matcher", "links".
        metrics: Holds `records_rejected`.
        dead_letters: Where copies go; None keeps none.
        log_every_s: Least time between two log lines of one reason.
    """

    def __init__(
        self,
        consumer: str,
        metrics: PipelineMetrics,
        dead_letters: DeadLetters | None = None,
        *,
        log_every_s: float = 10.0,
    ) -> None:
        self.consumer, self.dead_letters, self.log_every_s = consumer, dead_letters, log_every_s
        self._counter = metrics.records_rejected
        self.counts = dict.fromkeys(REJECT_REASONS, 0)
        self._logged: dict[str, tuple[float, int]] = {}  # reason -> (last logged, not logged)
        for reason in REJECT_REASONS:  # every series from start-up on, at zero
            self._counter.labels(consumer=consumer, reason=reason)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def reject(self, record: Any, error: MessageError) -> None:
        """Skips one record (a kafka-python `ConsumerRecord`) rejected for `error`."""
        reason = error.reason
        self.counts[reason] += 1
        self._counter.labels(consumer=self.consumer, reason=reason).inc()
        source = f"{record.topic}/{record.partition}@{record.offset}"
        self._log(reason, source, error)
        if self.dead_letters is not None:
            headers = [
                (REASON_HEADER, reason.encode()),
                (ERROR_HEADER, str(error).encode("utf-8", "replace")[:1000]),
                (SOURCE_HEADER, source.encode()),
            ]
            self.dead_letters.send(_Letter(record.key, record.value, headers))

    def flush(self, timeout_s: float) -> bool:
        """True when every dead-letter copy is acknowledged (at once without a topic)."""
        return self.dead_letters is None or self.dead_letters.flush(timeout_s)

    def close(self) -> None:
        if self.dead_letters is not None:
            self.dead_letters.close()

    def _log(self, reason: str, source: str, error: MessageError) -> None:
        now = time.monotonic()
        last, quiet = self._logged.get(reason, (-float("inf"), 0))
        if now - last < self.log_every_s:
            self._logged[reason] = (last, quiet + 1)
            return
        self._logged[reason] = (now, 0)
        more = f" ({quiet} more of this reason since the last line)" if quiet else ""
        log.warning(
            "%s: skipped the record at %s (%s): %s%s", self.consumer, source, reason, error, more
        )

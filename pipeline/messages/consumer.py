"""The reference consumer of identity links: the example a downstream team copies.

    Kafka topic kafka.links_topic (keyed by global id)
      ─▶ KafkaConsumer (a consumer group, or no group: every partition, from the start)
      ─▶ decode + check against the JSON Schema reidstream.identity_link/1
           unusable (a tombstone, not JSON, breaks the schema) ─▶ Rejects: counted by reason,
           logged, copied to a dead-letter topic where one is given, and committed past
      ─▶ drop what was seen already (delivery is at-least-once; event_id is deterministic)
      ─▶ Received(link: IdentityLink, document: dict); `latest` keeps the latest link per
         tracklet (a tracklet is linked again as it grows, and may move to another global id)
      ─▶ the caller handles the links of a poll ─▶ `follow` commits them (with a group)

What a consumer must know, in short: keep the latest link per `tracklet_id`; drop duplicates by
`event_id`; a `global_id` gathers tracklets of one person on any camera; `new_identity` means no
other sighting supported it yet. With a group, offsets are committed only after the caller has
handled the links (at-least-once on the consumer side too): `follow` commits a poll's links when
the caller asks for the link after them, having first called its `on_batch` (where the caller
makes its output durable); a consumer that dies in between reads them again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.messages.encoding import MessageError, decode, link_from_dict, validate
from pipeline.messages.rejects import DeadLetters, Rejects
from pipeline.messages.types import IdentityLink
from pipeline.monitoring.metrics import METRICS, PipelineMetrics

__all__ = [
    "LinkConsumer",
    "LinkFollower",
    "Received",
    "Seen",
    "describe_link",
    "manual_commit_options",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    """One identity link as received: the typed link, the document it came in, and where it
    was read (partition and offset: what a commit after handling it covers)."""

    link: IdentityLink
    document: dict[str, Any]
    partition: int = -1
    offset: int = -1


class Seen:
    """The event ids seen lately (a bounded, insertion-ordered set)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, event_id: str) -> bool:
        """Records `event_id`; False if it was seen already (a duplicate)."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


def manual_commit_options(group_id: str | None, max_poll_interval_ms: int) -> dict[str, Any]:
    """`KafkaConsumer` options of reidstream's consumers: offsets committed by the code, after
    the records are handled, and group timeouts that follow the rebalance timeout (kept low
    against Tansu, see `pipeline.demo.broker`)."""
    return {
        "group_id": group_id,
        "enable_auto_commit": False,
        "max_poll_interval_ms": max_poll_interval_ms,
        "session_timeout_ms": max(6_000, max_poll_interval_ms // 5),
        "heartbeat_interval_ms": 500,
    }


class LinkConsumer:
    """Identity links from Kafka, decoded, checked and without duplicates.

    Args:
        client_options: Connection settings for `kafka.KafkaConsumer` (bootstrap servers,
            client id, TLS, SASL; see `KafkaConfig.client_options`).
        topic: The links topic.
        group_id: Consumer group (offsets committed after each batch is handed over); None
            reads every partition without a group.
        from_beginning: Without a committed offset (or without a group), start at the oldest
            link kept rather than the next one.
        check_schema: Check each document against the JSON Schema (slower; on by default).
        max_poll_interval_ms: The group's rebalance timeout; keep it low (2000-3000) against
            Tansu, which completes a join only when it expires.
        dead_letter_topic: Where records that cannot be used are copied; None keeps no copy.
        metrics: Where they are counted (`records_rejected{consumer="links"}`).
    """

    def __init__(
        self,
        client_options: dict[str, Any],
        topic: str,
        *,
        group_id: str | None = None,
        from_beginning: bool = True,
        check_schema: bool = True,
        max_poll_interval_ms: int = 300_000,
        dead_letter_topic: str | None = None,
        metrics: PipelineMetrics = METRICS,
    ) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.topic, self.group_id, self.check_schema = topic, group_id, check_schema
        self.seen = Seen()
        self.latest: dict[str, IdentityLink] = {}
        self.duplicates = 0
        dead_letters = DeadLetters(client_options, dead_letter_topic) if dead_letter_topic else None
        self.rejects = Rejects("links", metrics, dead_letters)
        self._polled: dict[Any, int] = {}  # TopicPartition -> offset after the last one polled
        self._partition = TopicPartition
        self._consumer = KafkaConsumer(
            **client_options,
            **manual_commit_options(group_id, max_poll_interval_ms),
            auto_offset_reset="earliest" if from_beginning else "latest",
        )
        if group_id is not None:
            self._consumer.subscribe([topic])
        else:
            self._partitions = TopicPartition
            self._assigned: set[int] = set()

    def _assign_new_partitions(self) -> None:
        """Without a group: follow every partition of the topic, including new ones."""
        partitions = self._consumer.partitions_for_topic(self.topic) or set()
        if partitions - self._assigned:
            self._assigned = set(partitions)
            self._consumer.assign([self._partitions(self.topic, p) for p in sorted(partitions)])

    @property
    def invalid(self) -> int:
        """Records rejected so far (`rejects.counts` has them by reason)."""
        return self.rejects.total

    def poll(self, timeout_s: float = 1.0) -> list[Received]:
        """The new links of one poll, in order per partition, duplicates dropped and records
        that cannot be used rejected. With a group, `commit` once they are handled."""
        if self.group_id is None:
            self._assign_new_partitions()
            if not self._assigned:
                self._consumer.poll(timeout_ms=int(timeout_s * 1000))  # fetches metadata
                return []
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000))
        links = []
        for partition, records in batches.items():
            for record in records:
                link = self._decode(record)
                if link is not None:
                    links.append(link)
            self._polled[partition] = records[-1].offset + 1
        return links

    def commit(self, handled: list[Received] | None = None) -> bool:
        """With a group, commits the links polled so far, or only up to those of `handled`
        (the links the caller handled when it stops within a poll); records rejected before
        them are covered too. Copies on the dead-letter topic are waited for first: without
        them, nothing is committed this time (the next commit tries again). True if
        committed (or nothing to commit)."""
        if handled is None:
            offsets, self._polled = self._polled, {}
        else:
            offsets = {self._partition(self.topic, r.partition): r.offset + 1 for r in handled}
            self._polled = {}
        if self.group_id is None or not offsets:
            return True
        if not self.rejects.flush(10.0):
            log.warning("dead letters not acknowledged: offsets on %s not committed", self.topic)
            return False
        return self._commit(offsets)

    def _commit(self, offsets: dict[Any, int]) -> bool:
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        try:
            self._consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
        except KafkaError as e:  # a rebalance or an outage: those links come again
            log.warning(
                "committing offsets on %s failed (%r); links will come again", self.topic, e
            )
            return False
        return True

    def _decode(self, record: Any) -> Received | None:
        try:
            document = decode(record.value)
            if self.check_schema:
                validate(document)
            elif not isinstance(document.get("event_id"), str):
                raise MessageError("no event_id", reason="schema")
            link = link_from_dict(document)
        except MessageError as e:
            self.rejects.reject(record, e)
            return None
        if not self.seen.add(document["event_id"]):
            self.duplicates += 1
            return None
        self.latest[link.tracklet_id] = link
        return Received(link, document, record.partition, record.offset)

    def __iter__(self) -> Iterator[Received]:
        """Every link, for ever; with a group, committed as `follow` does."""
        return self.follow()

    def follow(
        self,
        *,
        max_links: int | None = None,
        idle_timeout_s: float | None = None,
        stop: Callable[[], bool] = lambda: False,
        poll_s: float = 0.5,
        on_batch: Callable[[], None] = lambda: None,
    ) -> Iterator[Received]:
        """The links as they come, until `max_links` were yielded, none came for
        `idle_timeout_s`, or `stop()` is true (checked between links and polls).

        With a group, the links of a poll are committed once the caller has handled them (it
        asked for the next link, or stopped the iteration at `max_links` or `stop()`), right
        after `on_batch()`: where the caller makes what it did durable (flushes a file).
        """
        count, last = 0, time.monotonic()
        while not stop():
            links = self.poll(poll_s)
            if links:
                last = time.monotonic()
            for i, received in enumerate(links):
                yield received
                count += 1
                if (max_links is not None and count >= max_links) or stop():
                    on_batch()
                    self.commit(links[: i + 1])
                    return
            on_batch()
            self.commit()
            if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                return

    def summary(self) -> str:
        """What the links read say: tracklets, global ids, and how many span cameras."""
        ids: dict[str, set[str]] = {}
        for link in self.latest.values():
            ids.setdefault(link.global_id, set()).add(link.camera_id)
        cross = sum(1 for cameras in ids.values() if len(cameras) > 1)
        return (
            f"{len(self.latest)} tracklets, {len(ids)} global ids, {cross} of them seen on "
            f"more than one camera"
        )

    def close(self) -> None:
        self._consumer.close()
        self.rejects.close()

    def __enter__(self) -> LinkConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_link(link: IdentityLink) -> str:
    """One readable line: when, where, which tracklet, which person, how sure."""
    when = datetime.fromtimestamp(link.end_time, UTC).strftime("%H:%M:%S.%f")[:-4]
    how = "new identity" if link.similarity is None else f"similarity {link.similarity:.2f}"
    return (
        f"{when}  {link.camera_id:>8} track {link.track_id:<4} -> {link.global_id}  "
        f"({how}; tracklet {link.tracklet_id})"
    )


class LinkFollower(threading.Thread):
    """Reads a `LinkConsumer` in a thread of its own and hands every link to `on_link`.

    Args:
        consumer: Where the links come from; closed by the caller.
        on_link: Called with each link received, in the follower's thread.
    """

    def __init__(self, consumer: LinkConsumer, on_link: Callable[[Received], None]) -> None:
        super().__init__(name="link-follower", daemon=True)
        self.consumer, self.on_link = consumer, on_link
        self.received = 0
        self._done = threading.Event()

    def run(self) -> None:
        for received in self.consumer.follow(stop=self._done.is_set, poll_s=0.2):
            self.received += 1
            self.on_link(received)

    def wait_for(self, delivered: int, timeout_s: float = 30.0) -> bool:
        """Waits until the links received (and duplicates dropped) reach `delivered`, then
        stops the thread; False if `timeout_s` passed first."""
        deadline = time.monotonic() + timeout_s
        done = True
        while self.received + self.consumer.duplicates < delivered:
            if time.monotonic() > deadline:
                done = False
                break
            time.sleep(0.1)
        self._done.set()
        self.join(5)
        return done

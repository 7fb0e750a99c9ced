"""The matcher side of the distributed topology: tracklet embeddings in, identity links out.

    reidstream worker (cameras -> embeddings, keyed by camera) ─┐
    reidstream worker ...                                      ├─▶ kafka.embeddings_topic
                                                               ▼
    MatcherService: KafkaConsumer (group kafka.group_id, manual commits)
      poll ─▶ decode, check (JSON Schema, then `Plausibility`: model, values, times)
        ├─ unusable ─▶ Rejects: counted by reason, logged, copied to kafka.dead_letter_topic
        └─▶ drop duplicates (event_id) ─▶ Matcher (embeddings; tracklet ends, in their order
            per camera) ─▶ IdentityLinks
        ─▶ Publisher (Kafka through the spool; JSONL) ─▶ wait until every link (and every
           dead-letter copy) is delivered
        ─▶ commit the offsets of the polled records, rejected ones included
    so an embedding's offset is committed only after the links it produced are acknowledged: a
    matcher that dies in between reads those embeddings again (at-least-once; the links it then
    makes again have new event ids only if its decisions differ). No record stops the service: one
it cannot use is skipped and committed past like the others (`pipeline.messages.rejects`).

Kafka does the distribution (consumer groups, partitions, committed offsets); nothing is
coordinated here. One matcher must see every camera of a site, so it should hold every partition
of the site's embeddings topic (it logs a warning when it does not).

With a changelog (`pipeline.matching.changelog`), the gallery survives the process: before the
first poll it is read back from the changelog topic, and each partition resumes at the offset
the restored gallery reflects; the commit step is then one transaction that writes the batch's
gallery changes and commits its offsets together. A second matcher of the same site (same
changelog, hence same transactional id) fences the first when it starts: the first fails its
next commit, logs it and stops (`fenced`), and the consumer group hands its partitions to the
second, which has restored the gallery as the first last committed it. Without a changelog a
restarted matcher starts with an empty gallery.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pipeline.matching.changelog import ChangelogFenced, GalleryChangelog
from pipeline.matching.matcher import Matcher, match_in_order
from pipeline.matching.plausibility import Plausibility
from pipeline.messages.consumer import Seen, manual_commit_options
from pipeline.messages.encoding import (
    CLOSED_SCHEMA,
    EMBEDDING_SCHEMA,
    MessageError,
    closed_from_dict,
    decode,
    embedding_from_dict,
    link_message,
    validate,
)
from pipeline.messages.rejects import DeadLetters, Rejects
from pipeline.messages.sinks import Publisher
from pipeline.messages.types import ClipEmbedding, TrackletClosed
from pipeline.monitoring.metrics import PipelineMetrics

__all__ = ["MatcherService"]

log = logging.getLogger(__name__)


def _capture_time(item: ClipEmbedding | TrackletClosed) -> float:
    return item.last_seen if isinstance(item, TrackletClosed) else item.end_time


class MatcherService:
    """Consumes tracklet embeddings, matches them, publishes links, commits offsets.

    Args:
        client_options: kafka-python connection settings (`KafkaConfig.client_options`).
        topic: The embeddings topic.
        group_id: The matchers' consumer group.
        matcher: The gallery.
        publisher: Where links go; its Kafka sink must already be started.
        metrics: Stage metrics ("match", "publish"), the gallery size and the rejected records.
        plausibility: What a record must be, beyond its schema, to be matched.
        dead_letter_topic: Where rejected records are copied; None keeps no copy.
        max_poll_interval_ms: The group's rebalance timeout.
        delivery_timeout_s: How long one batch's links may take to be acknowledged before the
            service logs it and keeps waiting (offsets stay uncommitted meanwhile).
        changelog: Where the gallery is kept between runs (None: in memory only).
    """

    def __init__(
        self,
        client_options: dict[str, Any],
        topic: str,
        group_id: str,
        matcher: Matcher,
        publisher: Publisher,
        metrics: PipelineMetrics,
        *,
        plausibility: Plausibility,
        dead_letter_topic: str | None = None,
        max_poll_interval_ms: int = 300_000,
        delivery_timeout_s: float = 30.0,
        changelog: GalleryChangelog | None = None,
    ) -> None:
        from kafka import KafkaConsumer

        self.topic, self.matcher, self.publisher, self.metrics = topic, matcher, publisher, metrics
        self.delivery_timeout_s, self.plausibility = delivery_timeout_s, plausibility
        dead_letters = DeadLetters(client_options, dead_letter_topic) if dead_letter_topic else None
        self.rejects = Rejects("matcher", metrics, dead_letters)
        self._consumer = KafkaConsumer(
            **client_options,
            **manual_commit_options(group_id, max_poll_interval_ms),
            auto_offset_reset="earliest",
        )
        # The next offset of each (topic, partition) that the gallery in memory reflects.
        self._changelog, self._positions = changelog, {}
        if changelog is None:
            self._consumer.subscribe([topic])
        else:
            matcher.track_changes()
            self._consumer.subscribe(
                [topic], listener=_seek_on_assign(self._consumer, self._positions)
            )
        self._stop, self._drain = threading.Event(), threading.Event()
        self._seen = Seen()
        #: Records left on the topic when a drain ended at `request_stop` (None: not drained).
        self.unread: int | None = None
        self.embeddings = self.links = self.duplicates = 0
        self.committed_batches = 0
        self.fenced = False
        self._warned_partial = False

    def request_stop(self) -> None:
        self._stop.set()

    def request_drain(self) -> None:
        """Asks `run` to return once it has matched and committed every record the topic holds
        now (the producers have ended): what a job of several processes does at its end.
        A `request_stop` before then stops it anyway, with `unread` set."""
        self._drain.set()

    def run(self) -> None:
        """Runs until `request_stop` (or a drain ends); the batch in hand is finished and
        committed first."""
        if self._changelog is not None:
            self._restore()
        log.info("matcher: consuming %s", self.topic)
        while not self._stop.is_set():
            batches = self._consumer.poll(timeout_ms=500, max_records=500)
            if not batches:
                if self._drain.is_set() and self._unread() == 0:
                    log.info("matcher: every embedding on %s is matched", self.topic)
                    break
                continue
            self._check_assignment()
            items = self._decode(batches)
            if items:
                self._match(items)
            if not self._deliver():
                break  # stopping with links undelivered: leave the offsets uncommitted
            self._commit(batches)
        if self._drain.is_set() and self.unread is None:
            self.unread = self._unread()

    def _unread(self) -> int | None:
        """Records of the assigned partitions past this consumer's position; None before the
        group has assigned any (or when the broker cannot say)."""
        from kafka.errors import KafkaError

        assigned = list(self._consumer.assignment())
        if not assigned:
            return None
        try:
            ends = self._consumer.end_offsets(assigned)
            return sum(max(end - self._consumer.position(tp), 0) for tp, end in ends.items())
        except KafkaError as e:
            log.warning("matcher: could not read the topic's end offsets: %r", e)
            return None

    @property
    def invalid(self) -> int:
        """Records rejected so far (`rejects.counts` has them by reason)."""
        return self.rejects.total

    def close(self) -> None:
        self._consumer.close()
        self.rejects.close()
        if self._changelog is not None:
            self._changelog.close()

    def health(self) -> dict[str, Any]:
        assigned = sorted(tp.partition for tp in self._consumer.assignment())
        return {
            "status": "ok" if assigned or not self._stop.is_set() else "degraded",
            "role": "matcher",
            "topic": self.topic,
            "partitions": assigned,
            "embeddings": self.embeddings,
            "links": self.links,
            "invalid": self.invalid,
            "rejected": {reason: n for reason, n in self.rejects.counts.items() if n},
            "duplicates": self.duplicates,
            "identities": self.matcher.identities,
            "sinks": self.publisher.state(),
        }

    def _decode(self, batches: dict) -> list[ClipEmbedding | TrackletClosed]:
        """The usable, new items of a poll; the others are rejected (see `_read`)."""
        clock = max(self.matcher.now, time.time())
        out: list[ClipEmbedding | TrackletClosed] = []
        for records in batches.values():
            for record in records:
                try:
                    event_id, item = self._read(record.value, clock)
                except MessageError as e:
                    self.rejects.reject(record, e)
                    continue
                if self._seen.add(event_id):
                    out.append(item)
                else:
                    self.duplicates += 1
        return out

    def _read(
        self, value: bytes | None, clock: float
    ) -> tuple[str, ClipEmbedding | TrackletClosed]:
        """(event id, item) of one record's value.

        Raises:
            MessageError: Not a tracklet embedding or end that follows its JSON Schema, or one
                that is implausible at `clock`; its reason says which.
        """
        document = decode(value)
        validate(document)
        if document["schema"] == CLOSED_SCHEMA:
            item: ClipEmbedding | TrackletClosed = closed_from_dict(document)
        elif document["schema"] == EMBEDDING_SCHEMA:
            item = embedding_from_dict(document)
        else:
            raise MessageError(
                f"a {document['schema']} document on the embeddings topic", reason="schema"
            )
        self.plausibility.check(item, clock)
        if isinstance(item, ClipEmbedding) and not self.matcher.compatible(item):
            raise MessageError(
                f"embedding of model {item.model!r} ({item.embedding.size}-d): the gallery "
                f"holds {self.matcher.model!r} ({self.matcher.dim}-d)",
                reason="wrong_model",
            )
        return document["event_id"], item

    def _match(self, items: list[ClipEmbedding | TrackletClosed]) -> None:
        # In capture-time order across cameras; a stable sort keeps each tracklet's end after
        # its last embedding (its last_seen is at least that clip's end).
        items = sorted(items, key=_capture_time)
        start = time.perf_counter()
        links = match_in_order(self.matcher, items)
        self.metrics.stage_latency.labels(stage="match").observe(time.perf_counter() - start)
        self.metrics.batch_size.labels(stage="match").observe(len(items))
        self.metrics.gallery_identities.set(self.matcher.identities)
        self.embeddings += sum(isinstance(i, ClipEmbedding) for i in items)
        now = time.time()
        self.publisher.publish([link_message(link, produced_at=now) for link in links])
        self.links += len(links)

    def _deliver(self) -> bool:
        """Waits until every link and dead-letter copy so far is delivered (what makes the
        commit safe); False if asked to stop first."""
        timeout = self.delivery_timeout_s
        while not (self.publisher.flush(timeout) and self.rejects.flush(timeout)):
            log.warning(
                "matcher: links or dead letters not acknowledged after %.0f s; offsets stay "
                "uncommitted until they are",
                self.delivery_timeout_s,
            )
            if self._stop.is_set():
                return False
        return True

    def _commit(self, batches: dict) -> None:
        from kafka.errors import KafkaError

        if self._changelog is not None:
            self._commit_with_changes(batches)
            return
        try:
            self._consumer.commit()
            self.committed_batches += 1
        except KafkaError as e:  # a rebalance or an outage: those embeddings come back
            log.warning(
                "matcher: committing offsets failed (%r); the batch will be read again "
                "and its links sent again (consumers drop duplicates)",
                e,
            )

    def _check_assignment(self) -> None:
        if self._warned_partial:
            return
        every = self._consumer.partitions_for_topic(self.topic) or set()
        mine = {tp.partition for tp in self._consumer.assignment()}
        if every and mine and mine != every:
            self._warned_partial = True
            log.warning(
                "matcher: this member holds partitions %s of %s only: cameras on the "
                "others are matched by another matcher, and never linked with these",
                sorted(mine),
                sorted(every),
            )

    # ------------------------------------------------------------------------- changelog

    def _restore(self) -> None:
        """Reads the gallery back, and where each partition resumes, before the first poll."""
        assert self._changelog is not None
        restored = self._changelog.start()
        if restored.state is not None:
            self.matcher.load(restored.state)
        self._positions.update(restored.offsets)
        self.metrics.gallery_identities.set(self.matcher.identities)
        log.info(
            "matcher: restored %d identities from %s (%d records, %d of an unfinished batch "
            "ignored) in %.2f s; resuming at %s",
            self.matcher.identities,
            self._changelog.topic,
            restored.records,
            restored.ignored,
            restored.seconds,
            dict(sorted(restored.offsets.items())) or "the group's committed offsets",
        )

    def _commit_with_changes(self, batches: dict) -> None:
        """The batch's gallery changes, its checkpoint and its offsets in one transaction."""
        assert self._changelog is not None
        for tp, records in batches.items():
            self._positions[(tp.topic, tp.partition)] = records[-1].offset + 1
        try:
            done = self._changelog.commit(
                self.matcher.take_changes(), dict(self._positions), self._consumer.group_metadata()
            )
        except ChangelogFenced as e:
            log.error("matcher: %s; stopping", e)
            self.fenced = True
            self._stop.set()
            return
        self.committed_batches += done


def _seek_on_assign(consumer: Any, positions: dict[tuple[str, int], int]) -> Any:
    """A rebalance listener: each partition assigned resumes where the gallery left it (at the
    group's committed offset only if the gallery has never seen it)."""
    from kafka import ConsumerRebalanceListener

    class SeekOnAssign(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked: Any) -> None:
            pass

        def on_partitions_assigned(self, assigned: Any) -> None:
            for tp in assigned:
                offset = positions.get((tp.topic, tp.partition))
                if offset is not None:
                    consumer.seek(tp, offset)

    return SeekOnAssign()

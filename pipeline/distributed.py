"""The matcher side of the distributed topology: tracklet embeddings in, identity links out.

    reidstream worker (cameras -> embeddings, keyed by camera) ─┐
    reidstream worker ...                                      ├─▶ kafka.embeddings_topic
                                                               ▼
    MatcherService: KafkaConsumer (group kafka.group_id, manual commits)
      poll ─▶ decode + drop duplicates (event_id) ─▶ Matcher.update ─▶ IdentityLinks
        ─▶ Publisher (Kafka through the spool; JSONL) ─▶ wait until every link is delivered
        ─▶ commit the offsets of the polled embeddings
    so an embedding's offset is committed only after the links it produced are acknowledged: a
    matcher that dies in between reads those embeddings again (at-least-once; the links it then
    makes again have new event ids only if its decisions differ).

Kafka does the distribution (consumer groups, partitions, committed offsets); nothing is
coordinated here. The gallery lives in the matcher's memory: one matcher must see every camera
of a site, so it should hold every partition of the site's embeddings topic (it logs a warning
when it does not); a restarted matcher starts with an empty gallery.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pipeline.consumer import Seen
from pipeline.matcher import Matcher
from pipeline.messages import MessageError, decode, embedding_from_dict, link_message
from pipeline.metrics import PipelineMetrics
from pipeline.sinks import Publisher
from pipeline.types import ClipEmbedding

__all__ = ["MatcherService"]

log = logging.getLogger(__name__)


class MatcherService:
    """Consumes tracklet embeddings, matches them, publishes links, commits offsets.

    Args:
        client_options: kafka-python connection settings (`KafkaConfig.client_options`).
        topic: The embeddings topic.
        group_id: The matchers' consumer group.
        matcher: The gallery.
        publisher: Where links go; its Kafka sink must already be started.
        metrics: Stage metrics ("match", "publish") and the gallery size.
        max_poll_interval_ms: The group's rebalance timeout.
        delivery_timeout_s: How long one batch's links may take to be acknowledged before the
            service logs it and keeps waiting (offsets stay uncommitted meanwhile).
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
        max_poll_interval_ms: int = 300_000,
        delivery_timeout_s: float = 30.0,
    ) -> None:
        from kafka import KafkaConsumer

        self.topic, self.matcher, self.publisher, self.metrics = topic, matcher, publisher, metrics
        self.delivery_timeout_s = delivery_timeout_s
        self._consumer = KafkaConsumer(
            **client_options,
            group_id=group_id,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_poll_interval_ms=max_poll_interval_ms,
            session_timeout_ms=max(6_000, max_poll_interval_ms // 5),
            heartbeat_interval_ms=500,
        )
        self._consumer.subscribe([topic])
        self._stop = threading.Event()
        self._seen = Seen()
        self.embeddings = self.links = self.invalid = self.duplicates = 0
        self.committed_batches = 0
        self._warned_partial = False

    def request_stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Runs until `request_stop`; the batch in hand is finished and committed first."""
        log.info("matcher: consuming %s", self.topic)
        while not self._stop.is_set():
            batches = self._consumer.poll(timeout_ms=500, max_records=500)
            if not batches:
                continue
            self._check_assignment()
            embeddings = self._decode(batches)
            if embeddings:
                self._match(embeddings)
            if not self._deliver():
                break  # stopping with links undelivered: leave the offsets uncommitted
            self._commit()

    def close(self) -> None:
        self._consumer.close()

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
            "duplicates": self.duplicates,
            "identities": self.matcher.identities,
            "sinks": self.publisher.state(),
        }

    def _decode(self, batches: dict) -> list[ClipEmbedding]:
        out = []
        for records in batches.values():
            for record in records:
                try:
                    document = decode(record.value)
                    embedding = embedding_from_dict(document)
                except MessageError as e:
                    self.invalid += 1
                    self.metrics.stage_errors.labels(stage="match").inc()
                    log.warning(
                        "matcher: skipping an invalid message at %s[%d]@%d: %s",
                        record.topic,
                        record.partition,
                        record.offset,
                        e,
                    )
                    continue
                if self._seen.add(document["event_id"]):
                    out.append(embedding)
                else:
                    self.duplicates += 1
        return out

    def _match(self, embeddings: list[ClipEmbedding]) -> None:
        start = time.perf_counter()
        try:
            links = self.matcher.update(embeddings)
        except ValueError as e:  # e.g. embeddings of another model than the gallery's
            self.metrics.stage_errors.labels(stage="match").inc()
            log.error(
                "matcher: a batch of %d embeddings could not be matched: %s", len(embeddings), e
            )
            return
        self.metrics.stage_latency.labels(stage="match").observe(time.perf_counter() - start)
        self.metrics.batch_size.labels(stage="match").observe(len(embeddings))
        self.metrics.gallery_identities.set(self.matcher.identities)
        self.embeddings += len(embeddings)
        now = time.time()
        self.publisher.publish([link_message(link, produced_at=now) for link in links])
        self.links += len(links)

    def _deliver(self) -> bool:
        """Waits until every link so far is delivered (what makes the commit safe); False if
        asked to stop first."""
        while not self.publisher.flush(self.delivery_timeout_s):
            log.warning(
                "matcher: links not acknowledged after %.0f s; offsets stay uncommitted "
                "until they are",
                self.delivery_timeout_s,
            )
            if self._stop.is_set():
                return False
        return True

    def _commit(self) -> None:
        from kafka.errors import KafkaError

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

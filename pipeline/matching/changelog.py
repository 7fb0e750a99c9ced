"""The matcher's gallery kept in a compacted Kafka topic and restored before it consumes, the way
Kafka Streams keeps a state store in a changelog topic.

    start:  init_transactions (fences an older matcher with the same transactional id)
            ─▶ read the changelog from its start to its end (read_committed)
            ─▶ the gallery, and the next embeddings offset of each partition it reflects
    each batch, once its links are acknowledged, one transaction:
            tracklet/<camera>/<id>, identity/<global id>   the changed ones (null value: gone)
            checkpoint                            the gallery's head + the next offset per partition
            the same offsets ─▶ the consumer group (send_offsets_to_transaction)

The topic has one partition and `cleanup.policy=compact`: the broker keeps the newest record of
each key, so the topic holds about one record per tracklet and identity of the gallery and
restoring reads the gallery, not its history.

Why transactions and a checkpoint record both: the transaction makes the changelog records and
the group's offsets one atomic step on Apache Kafka, and its `transactional.id` (the changelog
topic's name) fences a second matcher of the same site. Tansu, the test broker, runs the
transaction protocol and commits the offsets only with the transaction, but shows the records of
an aborted or unfinished transaction to `read_committed` readers. So the state is trusted up to
the last checkpoint record only, and the restored matcher seeks each partition to the offsets
*in that checkpoint* rather than to the group's: state and position come from one record and
never disagree, on either broker. Records after the last checkpoint (a batch cut short by a
crash) are ignored, and the first transaction after a restore writes those keys again with their
restored values, so that no later checkpoint can ever vouch for them.

Hand-written because kafka-python has no state stores; the transactions, fencing and compaction
are Kafka's.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.matching.state import GalleryHead, GalleryState, IdentityState, TrackletState

__all__ = ["ChangelogError", "ChangelogFenced", "GalleryChangelog", "Restored", "fold", "is_fenced"]

log = logging.getLogger(__name__)

CHECKPOINT = b"checkpoint"
_TRACKLET, _IDENTITY = "tracklet/", "identity/"
_SCHEMA = "reidstream.matcher_checkpoint/1"


class ChangelogError(RuntimeError):
    """The changelog topic cannot be used: unreadable records, or a gallery that does not hold
    together."""


class ChangelogFenced(RuntimeError):
    """Another matcher with the same transactional id (the same changelog) has started: this one
    must stop, its writes would be refused."""


@dataclass
class Restored:
    """What the changelog held: the gallery (None when it is empty) and the next offset of each
    embeddings partition (topic, partition) that gallery reflects."""

    state: GalleryState | None
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    records: int = 0
    ignored: int = 0
    seconds: float = 0.0


# ------------------------------------------------------------------------------- encoding


def encode_changes(changes: GalleryState) -> list[tuple[bytes, bytes | None]]:
    """(key, value) records of the changed tracklets and identities; None values delete."""
    records: list[tuple[bytes, bytes | None]] = []
    for (camera_id, tracklet_id), t in changes.tracklets.items():
        key = f"{_TRACKLET}{camera_id}/{tracklet_id}".encode()  # camera ids hold no '/'
        records.append((key, None if t is None else _tracklet(t)))
    for global_id, i in changes.identities.items():
        value = (
            None if i is None else _json({"serial": i.serial, "slot": i.slot, "members": i.members})
        )
        records.append((f"{_IDENTITY}{global_id}".encode(), value))
    return records


def encode_checkpoint(head: GalleryHead, offsets: dict[tuple[str, int], int]) -> bytes:
    """The record that closes a batch: the gallery's head and where each partition resumes."""
    return _json(
        {
            "schema": _SCHEMA,
            "id_prefix": head.id_prefix,
            "next_id": head.next_id,
            "now": None if head.now == float("-inf") else head.now,
            "model": head.model,
            "dim": head.dim,
            "offsets": [[topic, p, o] for (topic, p), o in sorted(offsets.items())],
            "written_at": time.time(),
        }
    )


def _tracklet(t: TrackletState) -> bytes:
    return _json(
        {
            "camera_id": t.camera_id,
            "track_id": t.track_id,
            "start_time": t.start_time,
            "end_time": t.end_time,
            "open": t.open,
            "total": base64.b64encode(np.asarray(t.total, "<f4").tobytes()).decode("ascii"),
        }
    )


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode()


# ------------------------------------------------------------------------------- restoring


def fold(records: list[tuple[bytes, bytes | None]]) -> tuple[Restored, dict[bytes, bytes | None]]:
    """The gallery that `records` (key, value), in log order, hold up to their last checkpoint.

    Returns:
        What was restored, and the keys written after the last checkpoint with the values to
        write them again with (their restored value, or None where they had none).

    Raises:
        ChangelogError: A record that cannot be read, or a gallery that does not hold together.
    """
    store: dict[bytes, bytes] = {}
    pending: list[tuple[bytes, bytes | None]] = []
    checkpoint: dict[str, Any] | None = None
    for key, value in records:
        if key != CHECKPOINT:
            pending.append((key, value))
            continue
        for k, v in pending:
            if v is None:
                store.pop(k, None)
            else:
                store[k] = v
        pending, checkpoint = [], _load_json(key, value)
    repair = {k: store.get(k) for k, _ in pending}
    restored = Restored(None, records=len(records), ignored=len(pending))
    if checkpoint is not None:
        restored.state = _state(checkpoint, store)
        restored.offsets = {(t, int(p)): int(o) for t, p, o in checkpoint["offsets"]}
    return restored, repair


def _state(checkpoint: dict[str, Any], store: dict[bytes, bytes]) -> GalleryState:
    try:
        now = checkpoint["now"]
        head = GalleryHead(
            checkpoint["id_prefix"],
            int(checkpoint["next_id"]),
            float("-inf") if now is None else float(now),
            checkpoint["model"],
            checkpoint["dim"],
        )
        state = GalleryState(head)
        for key, value in store.items():
            name, document = key.decode(), _load_json(key, value)
            if name.startswith(_TRACKLET):
                t = _tracklet_state(name, document)
                state.tracklets[t.camera_id, t.tracklet_id] = t
            elif name.startswith(_IDENTITY):
                gid = name[len(_IDENTITY) :]
                members = tuple((str(c), str(t)) for c, t in document["members"])
                state.identities[gid] = IdentityState(
                    gid, int(document["serial"]), int(document["slot"]), members
                )
            else:
                raise ChangelogError(f"record {name!r}: not a tracklet, identity or checkpoint")
    except (KeyError, TypeError, ValueError) as e:
        raise ChangelogError(f"a record lacks a field or has a bad one: {e!r}") from e
    return state


def _tracklet_state(name: str, document: dict[str, Any]) -> TrackletState:
    total = np.frombuffer(base64.b64decode(document["total"], validate=True), "<f4")
    camera_id, _, tracklet_id = name[len(_TRACKLET) :].partition("/")
    if camera_id != document["camera_id"] or not tracklet_id:
        raise ChangelogError(f"record {name!r}: the key does not name camera/tracklet")
    return TrackletState(
        tracklet_id,
        camera_id,
        int(document["track_id"]),
        float(document["start_time"]),
        float(document["end_time"]),
        total.astype(np.float32),
        bool(document["open"]),
    )


def _load_json(key: bytes, value: bytes | None) -> dict[str, Any]:
    try:
        document = json.loads(value or b"")
    except ValueError as e:
        raise ChangelogError(f"record {key!r}: not JSON ({e})") from e
    if not isinstance(document, dict):
        raise ChangelogError(f"record {key!r}: expected a JSON object, got {value[:80]!r}")
    return document


# ---------------------------------------------------------------------------------- Kafka


def is_fenced(error: BaseException) -> bool:
    """Whether `error` says another producer took the transactional id. kafka-python raises the
    fencing error itself, or (once a send has failed on it) a plain KafkaError carrying it as an
    argument or cause, so all three are looked through."""
    from kafka.errors import InvalidProducerEpochError, ProducerFencedError

    todo, seen = [error], set()
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, (ProducerFencedError, InvalidProducerEpochError)):
            return True
        todo += [a for a in e.args if isinstance(a, BaseException)]
        todo += [c for c in (e.__cause__, e.__context__) if c is not None]
    return False


class GalleryChangelog:
    """The gallery's changelog topic: restored once at start, then one transaction per batch.

    Args:
        client_options: kafka-python connection settings (`KafkaConfig.client_options`).
        topic: The changelog topic; also the producer's `transactional.id`, so that one
            changelog has one writer.
    """

    def __init__(self, client_options: dict[str, Any], topic: str) -> None:
        self.client_options, self.topic = client_options, topic
        self._producer: Any = None
        # Records not yet in a committed transaction: the keys to write again after a restore,
        # and the changes of batches whose transaction failed.
        self._unwritten: dict[bytes, bytes | None] = {}

    def start(self) -> Restored:
        """Creates the topic if missing, fences any older writer, and reads the gallery back.

        Raises:
            ChangelogError: The topic holds records that cannot be read.
        """
        from kafka import KafkaProducer

        self._ensure_topic()
        self._producer = KafkaProducer(
            **self.client_options, transactional_id=self.topic, acks="all", retries=5
        )
        self._producer.init_transactions()  # aborts a dead writer's open transaction
        began = time.perf_counter()
        restored, self._unwritten = fold(self._read())
        restored.seconds = time.perf_counter() - began
        return restored

    def commit(
        self, changes: GalleryState, offsets: dict[tuple[str, int], int], group_metadata: Any
    ) -> bool:
        """Writes `changes` and the checkpoint and commits `offsets` to the group, in one
        transaction. False if it failed (a broker outage, a rebalance): the changes then go with
        the next batch's transaction, and until one succeeds a restart resumes at the last one.

        Raises:
            ChangelogFenced: Another matcher took the transactional id.
        """
        self._unwritten.update(encode_changes(changes))
        checkpoint = encode_checkpoint(changes.head, offsets)
        try:
            self._transaction(list(self._unwritten.items()), checkpoint, offsets, group_metadata)
        except ChangelogFenced:
            raise
        except Exception as e:  # kafka-python raises KafkaError and plain timeouts alike
            log.warning(
                "changelog %s: transaction failed (%r); its %d records go with the next batch",
                self.topic,
                e,
                len(self._unwritten),
            )
            self._abort()
            return False
        self._unwritten = {}
        return True

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)

    def _transaction(
        self,
        records: list[tuple[bytes, bytes | None]],
        checkpoint: bytes,
        offsets: dict[tuple[str, int], int],
        group_metadata: Any,
    ) -> None:
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        producer = self._producer
        try:
            producer.begin_transaction()
            for key, value in [*records, (CHECKPOINT, checkpoint)]:
                producer.send(self.topic, key=key, value=value, partition=0)
            committed = {
                TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()
            }
            producer.send_offsets_to_transaction(committed, group_metadata)
            producer.commit_transaction()
        except Exception as e:
            if not is_fenced(e):
                raise
            raise ChangelogFenced(
                f"changelog {self.topic}: another matcher has started with the same "
                f"transactional id and fenced this one ({e!r})"
            ) from e

    def _abort(self) -> None:
        try:
            self._producer.abort_transaction()
        except Exception as e:  # the transaction may never have begun; the next begin tells
            log.debug("changelog %s: abort: %r", self.topic, e)

    def _ensure_topic(self) -> None:
        """Creates the topic compacted, one partition, the broker's replication, if missing."""
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(**self.client_options)
        try:
            topic = NewTopic(self.topic, 1, -1, topic_configs={"cleanup.policy": "compact"})
            admin.create_topics([topic])
            log.info("changelog %s: created (cleanup.policy=compact)", self.topic)
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()

    def _read(self) -> list[tuple[bytes, bytes | None]]:
        """Every record of the topic, in order, up to the end it had when reading began."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            **self.client_options, isolation_level="read_committed", enable_auto_commit=False
        )
        partition = TopicPartition(self.topic, 0)
        try:
            consumer.assign([partition])
            consumer.seek_to_beginning(partition)
            end = consumer.end_offsets([partition])[partition]
            records: list[tuple[bytes, bytes | None]] = []
            while consumer.position(partition) < end:
                for batch in consumer.poll(timeout_ms=1000, max_records=10_000).values():
                    records += [(r.key, r.value) for r in batch]
        finally:
            consumer.close()
        return records

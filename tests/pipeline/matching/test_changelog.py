"""The matcher's durable gallery: its changes, the changelog records they make, and a matcher
rebuilt from them deciding exactly as one that never stopped; then the same on the test broker."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaTimeoutError

from pipeline.matching.changelog import (
    CHECKPOINT,
    ChangelogError,
    ChangelogFenced,
    GalleryChangelog,
    encode_changes,
    encode_checkpoint,
    fold,
    is_fenced,
)
from pipeline.matching.matcher import Matcher, match_in_order
from pipeline.messages.encoding import closed_message, decode, embedding_message
from pipeline.messages.types import ClipEmbedding
from tests.pipeline.matching.people import MODEL, people_stream

#: Batches of this many items: small, so that identities are decided across many batches.
BATCH = 7
#: Identities expire and the gallery overflows, so that rows move and identities are dropped.
TIGHT = {"ttl_s": 25.0, "max_identities": 8}


def chunks(items: list, size: int = BATCH) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def record_batches(matcher: Matcher, batches: list[list]) -> list[tuple[bytes, bytes | None]]:
    """Matches `batches`, writing each one's changes and checkpoint as the service does."""
    records: list[tuple[bytes, bytes | None]] = []
    for i, batch in enumerate(batches):
        match_in_order(matcher, batch)
        changes = matcher.take_changes()
        records += encode_changes(changes)
        records.append((CHECKPOINT, encode_checkpoint(changes.head, {("embeddings", 0): i})))
    return records


@pytest.mark.parametrize("limits", [{}, TIGHT], ids=["roomy", "tight"])
@pytest.mark.parametrize("cut", [1, 9, 30])
def test_a_restored_matcher_decides_as_one_that_never_stopped(cut, limits):
    batches = chunks(people_stream())
    whole = Matcher(threshold=0.5, id_prefix="g", **limits)
    expected = [match_in_order(whole, batch) for batch in batches]

    first = Matcher(threshold=0.5, id_prefix="g", **limits)
    first.track_changes()
    restored, repair = fold(record_batches(first, batches[:cut]))
    assert restored.offsets == {("embeddings", 0): cut - 1} and not repair
    second = Matcher(threshold=0.5, **limits)  # its own random id prefix, replaced by the state's
    second.load(restored.state)
    assert second.identities == first.identities
    got = [match_in_order(second, batch) for batch in batches[cut:]]
    assert got == expected[cut:]

    # What the restore saves: a matcher started empty at the cut hands out other ids.
    fresh = Matcher(threshold=0.5, id_prefix="g", **limits)
    assert [match_in_order(fresh, batch) for batch in batches[cut:]] != expected[cut:]


def test_the_tight_gallery_drops_and_moves_identities():
    """The `tight` case above is only a test of dropped and moved rows if there are some."""
    m = Matcher(threshold=0.5, id_prefix="g", **TIGHT)
    m.track_changes()
    records = record_batches(m, chunks(people_stream()))
    tombstones = [k for k, v in records if v is None and k.startswith(b"identity/")]
    made = {k for k, _ in records if k.startswith(b"identity/")}
    assert len(tombstones) > 5 and len(made) > m.identities + 5


def test_records_after_the_last_checkpoint_are_ignored_and_written_again():
    m = Matcher(threshold=0.5, id_prefix="g")
    m.track_changes()
    batches = chunks(people_stream())
    records = record_batches(m, batches[:3])
    kept, _ = fold(records)
    match_in_order(m, batches[3])
    unfinished = encode_changes(m.take_changes())  # a batch cut short: no checkpoint
    restored, repair = fold(records + unfinished)
    assert restored.ignored == len(unfinished)
    assert restored.state.head == kept.state.head
    assert restored.state.identities == kept.state.identities
    assert restored.state.tracklets.keys() == kept.state.tracklets.keys()
    # Each key of the unfinished batch is written again with its value as of the checkpoint.
    assert repair.keys() == {k for k, _ in unfinished}
    last = dict(records)
    assert repair == {k: last.get(k) for k in repair}
    assert None in repair.values() and any(v is not None for v in repair.values())


def test_an_empty_changelog_restores_nothing():
    restored, repair = fold([])
    assert restored.state is None and restored.offsets == {} and not repair


@pytest.mark.parametrize(
    "record",
    [
        (b"tracklet/cam1.1", b"{not json"),
        (b"tracklet/cam1.1", b'{"camera_id": "cam1"}'),
        (b"elsewhere/1", b"{}"),
    ],
)
def test_an_unreadable_record_is_a_clear_error(record):
    m = Matcher(threshold=0.5, id_prefix="g")
    m.track_changes()
    records = record_batches(m, chunks(people_stream())[:2])
    with pytest.raises(ChangelogError, match=r"record|field"):
        fold([record, *records])


def test_a_state_that_does_not_hold_together_is_refused():
    m = Matcher(threshold=0.5, id_prefix="g")
    m.track_changes()
    records = record_batches(m, chunks(people_stream())[:2])
    member = next(k for k, v in records if k.startswith(b"tracklet/") and v is not None)
    restored, _ = fold([*records, (member, None), *records[-1:]])
    with pytest.raises(ValueError, match="member"):
        Matcher().load(restored.state)


# ------------------------------------------------------------------------------ on the broker


@pytest.mark.kafka
def test_the_changelog_on_the_broker_restores_the_gallery_and_fences_an_older_writer(
    kafka_broker,
):
    options = {"bootstrap_servers": [kafka_broker.bootstrap_servers]}
    topic, group = f"gallery-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    batches = chunks(people_stream())
    m = Matcher(threshold=0.5, id_prefix="g")
    m.track_changes()
    first = GalleryChangelog(options, topic)
    try:
        assert first.start().state is None
        for i, batch in enumerate(batches[:10]):
            match_in_order(m, batch)
            assert first.commit(m.take_changes(), {("embeddings", 0): 10 * i}, group)
        second = GalleryChangelog(options, topic)  # fences the first
        try:
            restored = second.start()
            match_in_order(m, batches[10])
            with pytest.raises(ChangelogFenced):
                first.commit(m.take_changes(), {("embeddings", 0): 100}, group)
        finally:
            second.close()
    finally:
        first.close()
    assert restored.offsets == {("embeddings", 0): 90}
    again = Matcher()
    again.load(restored.state)
    assert again.identities == len(restored.state.identities) > 0
    ids = {link.global_id for link in match_in_order(again, batches[10])}
    assert ids and all(gid.startswith("g-") for gid in ids)
    assert np.isfinite(again.now)


def test_fencing_is_recognised_however_kafka_python_wraps_it():
    from kafka.errors import KafkaError, KafkaTimeoutError, ProducerFencedError

    assert is_fenced(ProducerFencedError())
    # What a send raises once an earlier request of the transaction was fenced.
    assert is_fenced(KafkaError("Cannot perform send because ...", ProducerFencedError()))
    wrapped = KafkaError("commit failed")
    wrapped.__cause__ = ProducerFencedError()
    assert is_fenced(wrapped)
    assert not is_fenced(KafkaTimeoutError("broker away"))
    assert not is_fenced(KafkaError("other", KafkaTimeoutError()))


# ------------------------------------------------------------ kill -9 of `reidstream matcher`

REIDSTREAM = str(Path(sys.executable).with_name("reidstream"))


class Site:
    """One `reidstream matcher` run's topics, group and processes against the test broker."""

    def __init__(self, broker, tmp_path: Path, name: str, embeddings_topic: str) -> None:
        run_id = uuid.uuid4().hex[:8]
        self.servers, self.tmp_path, self.name = broker.bootstrap_servers, tmp_path, name
        self.links_topic, self.group = f"links-{run_id}", f"matcher-{run_id}"
        self.embeddings = TopicPartition(embeddings_topic, 0)
        self.config = tmp_path / f"{name}.yaml"
        self.config.write_text(
            f"""
kafka:
  bootstrap_servers: ["{self.servers}"]
  links_topic: {self.links_topic}
  embeddings_topic: {embeddings_topic}
  group_id: {self.group}
  max_poll_interval_ms: 2000
run: {{out_dir: "{tmp_path / name}"}}
matcher: {{threshold: 0.5, model: {MODEL}, max_behind_s: 4e9}}  # times count from 0
"""
        )
        self.log = tmp_path / f"{name}.log"

    def start(self) -> subprocess.Popen:
        with self.log.open("a") as log:
            return subprocess.Popen(
                [REIDSTREAM, "matcher", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def committed(self) -> int:
        consumer = KafkaConsumer(bootstrap_servers=self.servers, group_id=self.group)
        try:
            return consumer.committed(self.embeddings) or 0
        finally:
            consumer.close()

    def wait_committed(self, process: subprocess.Popen, at_least: int, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while (done := self.committed()) < at_least:
            assert process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, (done, self.log.read_text()[-3000:])
            time.sleep(0.02)
        return done

    def stop(self, process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, self.log.read_text()[-3000:]

    def links(self) -> set[tuple]:
        """The links made, each once, with the run's random id prefix taken out of the ids."""
        documents: dict[str, dict] = {}
        consumer = KafkaConsumer(
            self.links_topic, bootstrap_servers=self.servers, auto_offset_reset="earliest"
        )
        try:
            while batch := consumer.poll(timeout_ms=3000):
                for records in batch.values():
                    documents.update((d["event_id"], d) for d in map(decode, _values(records)))
        finally:
            consumer.close()
        prefixes = {d["global_id"].rsplit("-", 1)[0] for d in documents.values()}
        assert len(prefixes) == 1, prefixes  # a restored matcher goes on with the same prefix
        return {
            (d["global_id"].rsplit("-", 1)[1], d["tracklet_id"], d["end_time"], d["similarity"])
            for d in documents.values()
        }


def _values(records) -> list[bytes]:
    return [r.value for r in records]


@pytest.fixture
def embeddings_topic(kafka_broker) -> tuple[str, int]:
    """A one-partition topic holding a deterministic stream of ~3000 embeddings and ends."""
    name = f"embeddings-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(name, 1, 1)])
    finally:
        admin.close()
    items = people_stream(seed=3, people=60, visits=12, dim=512)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    for item in items:
        encode = embedding_message if isinstance(item, ClipEmbedding) else closed_message
        message = encode(item, produced_at=0.0)
        producer.send(name, key=message.key.encode(), value=message.value)
    producer.flush()
    producer.close()
    return name, len(items)


@pytest.mark.kafka
@pytest.mark.slow
def test_a_matcher_killed_and_restarted_keeps_every_global_id(
    kafka_broker, tmp_path, embeddings_topic
):
    topic, total = embeddings_topic
    whole = Site(kafka_broker, tmp_path, "whole", topic)
    process = whole.start()
    try:
        whole.wait_committed(process, total, timeout_s=180)
        whole.stop(process)
    finally:
        process.kill()

    killed = Site(kafka_broker, tmp_path, "killed", topic)
    process = killed.start()
    try:
        killed.wait_committed(process, 1, timeout_s=120)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        at_kill = killed.committed()
        process = killed.start()
        killed.wait_committed(process, total, timeout_s=180)
        killed.stop(process)
    finally:
        process.kill()
    log = killed.log.read_text()
    print(f"killed at offset {at_kill} of {total}; {log.count('restored')} restores")
    assert 0 < at_kill < total  # killed mid-run, with a gallery to restore
    restored = re.findall(r"restored (\d+) identities", log)
    assert len(restored) == 2 and restored[0] == "0" and int(restored[1]) > 0, log[-3000:]

    made, remade = whole.links(), killed.links()
    assert len(made) > 1000
    assert remade == made


@pytest.mark.kafka
def test_the_changes_of_a_failed_transaction_go_with_the_next_one(kafka_broker, monkeypatch):
    options = {"bootstrap_servers": [kafka_broker.bootstrap_servers]}
    topic, group = f"gallery-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    batches = chunks(people_stream())
    m = Matcher(threshold=0.5, id_prefix="g")
    m.track_changes()
    changelog = GalleryChangelog(options, topic)
    try:
        changelog.start()
        match_in_order(m, batches[0])
        transaction = changelog._transaction

        def outage(*args):
            raise KafkaTimeoutError("broker unreachable")

        monkeypatch.setattr(changelog, "_transaction", outage)
        assert not changelog.commit(m.take_changes(), {("embeddings", 0): 7}, group)
        monkeypatch.setattr(changelog, "_transaction", transaction)
        match_in_order(m, batches[1])
        assert changelog.commit(m.take_changes(), {("embeddings", 0): 14}, group)
    finally:
        changelog.close()
    again = GalleryChangelog(options, topic)
    try:
        restored = again.start()
    finally:
        again.close()
    assert restored.offsets == {("embeddings", 0): 14}
    restored_matcher = Matcher()
    restored_matcher.load(restored.state)
    assert restored_matcher.identities == m.identities
    later = batches[2]
    assert match_in_order(restored_matcher, later) == match_in_order(m, later)

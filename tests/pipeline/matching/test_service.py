"""The distributed topology as deployed: two `reidstream worker` processes (cameras split between
them) and one `reidstream matcher` process against the test broker.

The workers share one synthetic scene: worker A reads cam1 and cam2, worker B cam3. People walk
past all three, so the matcher must link tracklets across the workers' embeddings; it commits
its offsets only after the links are acknowledged, and stops cleanly on SIGTERM.

Then the matcher against hostile input: every kind of record it cannot use, produced among good
ones, is skipped, counted by reason, copied to the dead-letter topic and committed past.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from pipeline.matching.matcher import Matcher
from pipeline.matching.plausibility import Plausibility
from pipeline.matching.service import MatcherService
from pipeline.messages.consumer import LinkConsumer
from pipeline.messages.encoding import (
    REJECT_REASONS,
    closed_message,
    decode,
    embedding_message,
    link_message,
)
from pipeline.messages.rejects import REASON_HEADER
from pipeline.messages.sinks import JsonlSink, Publisher
from pipeline.messages.types import ClipEmbedding, IdentityLink, TrackletClosed
from pipeline.monitoring.metrics import PipelineMetrics

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

REIDSTREAM = str(Path(sys.executable).with_name("reidstream"))


def test_two_workers_and_a_matcher(kafka_broker, tmp_path):
    run_id = uuid.uuid4().hex[:8]
    links_topic, embeddings_topic = f"links-{run_id}", f"embeddings-{run_id}"
    site = tmp_path / "site.yaml"
    site.write_text(
        f"""
kafka:
  bootstrap_servers: ["{kafka_broker.bootstrap_servers}"]
  links_topic: {links_topic}
  embeddings_topic: {embeddings_topic}
  group_id: matcher-{run_id}
  max_poll_interval_ms: 2000
synthetic: {{cameras: 3, people: 6, duration_s: 45, fps: 5, size: [240, 426], replay: fast}}
metrics: {{address: "127.0.0.1:0"}}
"""
    )

    def start(command: str, name: str, *overrides: str) -> subprocess.Popen:
        log = (tmp_path / f"{name}.log").open("w")
        args = [REIDSTREAM, command, "--config", str(site), f"run.out_dir={tmp_path / name}"]
        return subprocess.Popen([*args, *overrides], stdout=log, stderr=subprocess.STDOUT)

    matcher = start("matcher", "matcher", "output.sinks=[kafka, jsonl]")
    workers = [
        start("worker", "worker-a", "synthetic.only_cameras=[cam1, cam2]"),
        start("worker", "worker-b", "synthetic.only_cameras=[cam3]"),
    ]
    try:
        for worker in workers:
            assert worker.wait(300) == 0, (tmp_path / "worker-a.log").read_text()[-3000:]
        made = tmp_path / "matcher" / "links.jsonl"
        # The matcher is done when its output has stopped growing for a while.
        last, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + 120
        while time.monotonic() - stable_since < 8 and time.monotonic() < deadline:
            size = made.stat().st_size if made.exists() else 0
            if size != last:
                last, stable_since = size, time.monotonic()
            time.sleep(0.5)
        matcher.send_signal(signal.SIGTERM)
        assert matcher.wait(60) == 0, (tmp_path / "matcher.log").read_text()[-3000:]
    finally:
        for process in [matcher, *workers]:
            if process.poll() is None:
                process.kill()

    log = (tmp_path / "matcher.log").read_text()
    assert "SIGTERM received" in log
    assert "skipped the record" not in log  # the workers' own records are all plausible
    documents = [decode(line) for line in made.read_bytes().splitlines()]
    assert documents
    received = []
    with LinkConsumer({"bootstrap_servers": [kafka_broker.bootstrap_servers]}, links_topic) as c:
        deadline = time.monotonic() + 30
        while len(received) < len(documents) and time.monotonic() < deadline:
            received += c.poll(0.5)
        latest = c.latest
    assert {r.document["event_id"] for r in received} == {d["event_id"] for d in documents}

    # Links from both workers' cameras, and people linked across the two workers.
    cameras_of = defaultdict(set)
    for link in latest.values():
        cameras_of[link.global_id].add(link.camera_id)
    assert set().union(*cameras_of.values()) == {"cam1", "cam2", "cam3"}
    across = [g for g, cams in cameras_of.items() if "cam3" in cams and cams & {"cam1", "cam2"}]
    assert across, dict(cameras_of)
    print(
        f"{len(documents)} links, {len(latest)} tracklets, {len(cameras_of)} global ids, "
        f"{len(across)} seen by both workers"
    )

    # Every embedding offset the matcher read is committed: for each partition, one past its
    # last record. (Read back rather than asked with end_offsets: Tansu reports the base offset
    # of a partition's last batch there.)
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap_servers, group_id=f"matcher-{run_id}"
    )
    try:
        partitions = [
            TopicPartition(embeddings_topic, p)
            for p in consumer.partitions_for_topic(embeddings_topic)
        ]
        committed = {tp: consumer.committed(tp) or 0 for tp in partitions}
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        last = dict.fromkeys(partitions, -1)
        while batch := consumer.poll(timeout_ms=2000):
            for tp, records in batch.items():
                last[tp] = max(last[tp], records[-1].offset)
    finally:
        consumer.close()
    assert committed == {tp: offset + 1 for tp, offset in last.items()}
    assert sum(committed.values()) > 0


# ----------------------------------------------------------------------------- poison records

NOW = time.time()
DIM = 8
PERSON = np.ones(DIM, np.float32) / np.sqrt(DIM)


def clip(camera: str, tracklet: str, start: float, *, seed: int) -> ClipEmbedding:
    noise = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32) * 0.05
    vector = (PERSON + noise) / np.linalg.norm(PERSON + noise)
    n = int(start * 10) % 100_000
    return ClipEmbedding(
        camera, 1, tracklet, n, n + 9, NOW + start, NOW + start + 1, vector, "m", NOW + start
    )


def document(clip_embedding: ClipEmbedding, **change) -> bytes:
    body = json.loads(embedding_message(clip_embedding).value) | change
    return json.dumps({k: v for k, v in body.items() if v is not DROP}).encode()


DROP = object()
BASE = clip("cam1", "cam1.w.9", -30, seed=9)
HOSTILE = {
    "wrong_model": document(BASE, model="other"),  # first: it must not decide the model
    "tombstone": None,
    "undecodable": b"\x00\xff not json",
    "schema": document(BASE, event_id=DROP),
    "schema/types": document(BASE, track_id="seven"),
    "implausible_value": document(BASE, end_time=float("nan")),  # a NaN literal
    "implausible_value/1e20": document(
        BASE,
        embedding=base64.b64encode(np.full(DIM, 1e20, "<f4").tobytes()).decode(),
    ),
    "implausible_time": document(
        BASE, start_time=NOW + 1e6, end_time=NOW + 1e6 + 1, tracklet_start=NOW + 1e6
    ),
    "wrong_model/dim": document(
        BASE, dim=2 * DIM, embedding=base64.b64encode(np.ones(2 * DIM, "<f4").tobytes()).decode()
    ),
    "invalid": document(BASE, end_time=BASE.start_time - 5),
    "schema/link": link_message(
        IdentityLink("g-1", "cam1", 1, "cam1.w.9", NOW - 30, NOW - 29)
    ).value,
}


def poisoned_topic() -> list[tuple[bytes | None, str | None]]:
    """(value, reason) of each record in topic order: one person walking from cam1 to cam2,
    with every kind of unusable record among the good ones (reason None)."""
    good = [
        embedding_message(clip("cam1", "cam1.w.1", -20, seed=1)).value,
        embedding_message(clip("cam1", "cam1.w.1", -19, seed=2)).value,
        closed_message(TrackletClosed("cam1", 1, "cam1.w.1", NOW - 18)).value,
        embedding_message(clip("cam2", "cam2.w.1", -10, seed=3)).value,
        closed_message(TrackletClosed("cam2", 1, "cam2.w.1", NOW - 9)).value,
    ]
    records: list[tuple[bytes | None, str | None]] = []
    bad = list(HOSTILE.items())
    for i, value in enumerate(good):
        records += [(v, r.split("/")[0]) for r, v in bad[i * 3 : i * 3 + 3]] + [(value, None)]
    return records


def read_back(bootstrap: str, topic: str) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        out = []
        while batch := consumer.poll(timeout_ms=2000):
            out += [r for records in batch.values() for r in records]
        return out
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    try:
        return {
            p: consumer.committed(TopicPartition(topic, p)) or 0
            for p in consumer.partitions_for_topic(topic)
        }
    finally:
        consumer.close()


def test_the_matcher_skips_counts_dead_letters_and_commits_past_every_unusable_record(
    kafka_broker, tmp_path
):
    bootstrap, run_id = kafka_broker.bootstrap_servers, uuid.uuid4().hex[:8]
    topic, dlq, group = f"embeddings-{run_id}", f"rejected-{run_id}", f"matcher-{run_id}"
    records = poisoned_topic()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for value, _ in records:
        producer.send(topic, key=b"cam", value=value)  # one key: one partition, in order
    producer.flush()
    producer.close()

    metrics = PipelineMetrics(CollectorRegistry())
    publisher = Publisher([JsonlSink(tmp_path / "links.jsonl", metrics, observe_latency=True)])
    service = MatcherService(
        {"bootstrap_servers": [bootstrap]},
        topic,
        group,
        Matcher(threshold=0.5, id_prefix="g"),
        publisher,
        metrics,
        plausibility=Plausibility("m", DIM),
        dead_letter_topic=dlq,
        max_poll_interval_ms=2000,
    )
    thread = threading.Thread(target=service.run)
    thread.start()
    bad = [reason for _, reason in records if reason is not None]
    try:
        deadline = time.monotonic() + 60
        while service.rejects.total + service.embeddings < len(bad) + 3:
            assert thread.is_alive() and time.monotonic() < deadline, service.health()
            time.sleep(0.2)
        assert thread.is_alive()  # it never exits on input
    finally:
        service.request_stop()
        thread.join(30)
        service.close()
        publisher.close(5)

    # The good records were matched: one person, one global id on both cameras.
    links = [json.loads(line) for line in (tmp_path / "links.jsonl").read_text().splitlines()]
    assert {(link["camera_id"], link["tracklet_id"]) for link in links} == {
        ("cam1", "cam1.w.1"),
        ("cam2", "cam2.w.1"),
    }
    assert len({link["global_id"] for link in links}) == 1
    assert service.matcher.model == "m" and service.matcher.dim == DIM

    # Each bad record counted under its reason, in the service and in the metric.
    expected = Counter(bad)
    assert {r: n for r, n in service.rejects.counts.items() if n} == expected
    for reason in REJECT_REASONS:
        sample = metrics.registry.get_sample_value(
            "reidstream_records_rejected_total", {"consumer": "matcher", "reason": reason}
        )
        assert sample == expected.get(reason, 0), reason

    # Each one is on the dead-letter topic as it came, with its reason in a header.
    letters = read_back(bootstrap, dlq)
    assert [(r.value, dict(r.headers)[REASON_HEADER].decode()) for r in letters] == [
        (value, reason) for value, reason in records if reason is not None
    ]
    assert all(
        dict(r.headers)["reidstream.source"].startswith(f"{topic}/".encode()) for r in letters
    )

    # And the committed offset is past every record, bad ones included.
    last = max(r.offset for r in read_back(bootstrap, topic))
    assert sum(committed_offsets(bootstrap, group, topic).values()) == last + 1

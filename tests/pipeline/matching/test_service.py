"""The distributed topology as deployed: two `reidstream worker` processes (cameras split between
them) and one `reidstream matcher` process against the test broker.

The workers share one synthetic scene: worker A reads cam1 and cam2, worker B cam3. People walk
past all three, so the matcher must link tracklets across the workers' embeddings; it commits
its offsets only after the links are acknowledged, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from pipeline.messages.consumer import LinkConsumer
from pipeline.messages.encoding import decode

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

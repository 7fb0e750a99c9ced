"""Real footage end to end: three synchronised store cameras, the YOLOv5n ONNX detector, the
OSNet ONNX ReID engine, links published to the test broker (skipped where the footage is absent).

No ground truth exists for this footage, so what is checked is what must hold whatever the
people do: links are published and read back, every global id is seen on a camera, and no global
id is on one camera twice at the same time.
"""

from __future__ import annotations

import csv
import itertools
import time
import uuid
from collections import defaultdict

import pytest

from pipeline.assemble import build_job
from pipeline.config import load_config
from pipeline.messages.consumer import LinkConsumer
from pipeline.settings import ReidstreamConfig
from tests.conftest import shared_file

pytestmark = [pytest.mark.slow, pytest.mark.kafka]


def test_store_cameras_end_to_end(tmp_path, kafka_broker, yolov5n_onnx, osnet_onnx):
    videos = [shared_file(f"video/store_cam{i}.mp4") for i in (1, 2, 3)]
    topic = f"store-links-{uuid.uuid4().hex[:8]}"
    cameras = ", ".join(
        f"{{id: store{i}, uri: '{v}', replay: fast}}" for i, v in enumerate(videos, 1)
    )
    cfg = load_config(ReidstreamConfig, environ={}, overrides=[
        f"cameras=[{cameras}]", "detector.name=onnx-yolo", f"detector.weights={yolov5n_onnx}",
        "reid.engine=external-onnx", f"reid.onnx_path={osnet_onnx}", "reid.intra_op_threads=1",
        "matcher.threshold=0.7", "output.sinks=[kafka, jsonl]", "metrics.address=",
        f"kafka.bootstrap_servers={kafka_broker.bootstrap_servers}", f"kafka.links_topic={topic}",
        "run.record=true", f"run.out_dir={tmp_path}",
    ])  # fmt: skip
    summary = build_job(cfg).run()
    assert {c: s["frames"] for c, s in summary.cameras.items()} == {
        "store1": 419, "store2": 419, "store3": 419
    }  # fmt: skip
    delivered = summary.sinks["kafka"]["delivered"]
    assert delivered == summary.stages["publish"] > 0 and summary.sinks["kafka"]["spooled"] == 0

    received = []
    with LinkConsumer({"bootstrap_servers": [kafka_broker.bootstrap_servers]}, topic) as consumer:
        deadline = time.monotonic() + 30
        while len(received) < delivered and time.monotonic() < deadline:
            received += consumer.poll(0.5)
        latest = consumer.latest
    assert len(received) == delivered
    global_ids = {link.global_id for link in latest.values()}
    cameras_of = defaultdict(set)
    for link in latest.values():
        cameras_of[link.global_id].add(link.camera_id)
    assert global_ids and all(cameras_of[g] <= {"store1", "store2", "store3"} for g in global_ids)

    # No global id twice on one camera at one time: per camera and frame, the tracked boxes
    # carry distinct global ids.
    spans: dict[str, list] = defaultdict(list)
    with open(summary.outputs["tracks"]) as f:
        for row in csv.DictReader(f):
            link = latest.get(row["tracklet_id"])
            if link is not None:
                spans[(row["camera"], row["frame"])].append(link.global_id)
    assert spans
    for ids in spans.values():
        assert len(ids) == len(set(ids))
    # Tracklets of one global id on one camera never overlap in time.
    by_id = defaultdict(list)
    for link in latest.values():
        by_id[(link.global_id, link.camera_id)].append(link)
    for links in by_id.values():
        for a, b in itertools.combinations(links, 2):
            assert a.end_time < b.start_time or b.end_time < a.start_time
    cross = sum(len(c) > 1 for c in cameras_of.values())
    print(f"{delivered} links, {len(latest)} tracklets, {len(global_ids)} global ids, "
          f"{cross} on more than one camera")  # fmt: skip

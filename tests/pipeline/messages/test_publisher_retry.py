"""The publisher on a disk that refuses writes: it keeps and retries, pauses intake, and counts
only what it must give up at shutdown; the JSONL sink writes a batch whole or not at all."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry

from pipeline.messages.encoding import Message
from pipeline.messages.sinks import Publisher
from pipeline.monitoring.metrics import PipelineMetrics


def batch(n: int, kind: str = "link") -> list[Message]:
    return [Message(kind, "g", b"{}", f"e{i}", "cam1", 1.0) for i in range(n)]


class RefusingSink:
    """Stores batches; refuses with ENOSPC while `full` is set (or raises `other`)."""

    name = "disk"

    def __init__(self, other: Exception | None = None) -> None:
        self.full, self.other = threading.Event(), other
        self.stored: list[Message] = []
        self.refused = 0

    def publish(self, messages):
        if self.other is not None:
            raise self.other
        if self.full.is_set():
            self.refused += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        self.stored += messages

    def flush(self, timeout):
        return True

    def close(self, timeout):
        pass

    def state(self):
        return {"stored": len(self.stored)}


def lost(metrics: PipelineMetrics, sink: str, kind: str) -> float:
    value = metrics.registry.get_sample_value(
        "reidstream_messages_lost_total", {"sink": sink, "kind": kind}
    )
    return value or 0.0


def test_a_refused_batch_is_retried_while_intake_pauses_and_nothing_is_lost():
    sink, metrics = RefusingSink(), PipelineMetrics(CollectorRegistry())
    publisher = Publisher([sink], metrics=metrics, retry_initial_s=0.01, retry_max_s=0.02)
    paused: list[bool] = []
    publisher.on_blocked = paused.append
    sink.full.set()
    writer = threading.Thread(target=publisher.publish, args=(batch(3),))
    writer.start()
    while sink.refused < 3:
        writer.join(0.01)
    assert writer.is_alive() and paused == [True]
    assert "No space left" in publisher.state()["disk"]["blocked"]
    sink.full.clear()  # space freed
    writer.join(5)
    assert not writer.is_alive() and paused == [True, False]
    assert [m.event_id for m in sink.stored] == ["e0", "e1", "e2"]
    assert publisher.lost == {} and lost(metrics, "disk", "link") == 0


def test_what_the_disk_still_refuses_at_shutdown_is_counted_lost(caplog):
    sink, metrics = RefusingSink(), PipelineMetrics(CollectorRegistry())
    publisher = Publisher([sink], metrics=metrics, retry_initial_s=0.01, retry_max_s=0.02)
    sink.full.set()
    writer = threading.Thread(target=publisher.publish, args=(batch(4),))
    writer.start()
    while sink.refused < 2:
        writer.join(0.01)
    publisher.abandon()
    writer.join(5)
    publisher.publish(batch(2, "embedding"))  # after abandon: not retried, counted at once
    assert publisher.lost == {"disk": {"link": 4, "embedding": 2}} and publisher.lost_total == 6
    assert lost(metrics, "disk", "link") == 4 and lost(metrics, "disk", "embedding") == 2
    assert publisher.state()["disk"]["lost"] == {"link": 4, "embedding": 2}
    assert [r.levelname for r in caplog.records if "lost" in r.message] == ["ERROR", "ERROR"]


def test_a_sink_failing_otherwise_loses_its_batch_counted_and_the_others_still_get_it():
    broken, good = RefusingSink(other=ValueError("bug")), RefusingSink()
    good.name = "good"
    publisher = Publisher([broken, good])
    publisher.publish(batch(2))
    assert publisher.lost == {"disk": {"link": 2}} and len(good.stored) == 2


#: The JSONL sink under a real file-size limit (EFBIG past it, as ENOSPC on a full disk).
_JSONL = """
import json, resource, sys
from pipeline.messages.encoding import Message
from pipeline.messages.sinks import JsonlSink
from pipeline.monitoring.metrics import PipelineMetrics
from prometheus_client import CollectorRegistry
resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, resource.RLIM_INFINITY))
sink = JsonlSink(sys.argv[1], PipelineMetrics(CollectorRegistry()), observe_latency=False)
doc = lambda i: Message("link", "g", json.dumps({"n": i, "pad": "x" * 300}).encode(), "", "c", 1.0)
i, refused = 0, None
while refused is None:
    try:
        sink.publish([doc(i), doc(i + 1)])
        i += 2
    except OSError as e:
        refused = e.errno
with open(sys.argv[1], "rb") as f:
    size_after_refusal = len(f.read())
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
sink.publish([doc(i), doc(i + 1)])
print(json.dumps({"refused": refused, "written": i, "size": size_after_refusal}))
"""


def test_the_jsonl_sink_writes_a_batch_whole_or_not_at_all_on_a_full_disk(tmp_path):
    path = tmp_path / "links.jsonl"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    done = subprocess.run(
        [sys.executable, "-c", _JSONL, str(path)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["refused"] == errno.EFBIG and result["size"] < 10_000
    numbers = [json.loads(line)["n"] for line in path.read_text().splitlines()]
    assert numbers == list(range(result["written"] + 2))  # no torn line, nothing twice

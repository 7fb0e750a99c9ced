"""The spool: ordered, bounded, and what it holds survives a restart."""

from __future__ import annotations

import threading

import pytest

from pipeline.messages.encoding import Message
from pipeline.messages.spool import Spool, SpoolFull


def message(i: int, size: int = 10) -> Message:
    return Message("link", f"g-{i % 3}", b"x" * size, f"e{i}", "cam1", float(i))


def test_messages_come_out_in_order_and_leave_when_acknowledged(tmp_path):
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append([message(i) for i in range(5)])
    spool.append([message(5)])
    assert len(spool) == 6 and spool.size_bytes == 60
    first = spool.peek(4)
    assert [m.event_id for _, m in first] == ["e0", "e1", "e2", "e3"]
    assert first[0][1] == message(0)
    spool.ack([i for i, _ in first[:2]])
    assert [m.event_id for _, m in spool.peek(10)] == ["e2", "e3", "e4", "e5"]
    assert len(spool) == 4 and spool.size_bytes == 40


def test_what_was_not_acknowledged_is_there_after_a_restart(tmp_path):
    spool = Spool(tmp_path, max_bytes=10_000)
    spool.append([message(i) for i in range(3)])
    spool.ack([spool.peek(1)[0][0]])
    spool.close()
    again = Spool(tmp_path, max_bytes=10_000)
    assert [m.event_id for _, m in again.peek(10)] == ["e1", "e2"]
    assert (len(again), again.size_bytes) == (2, 20)
    again.append([message(9)])
    assert [m.event_id for _, m in again.peek(10)] == ["e1", "e2", "e9"]


def test_a_full_spool_makes_append_wait_until_acknowledgements_make_room(tmp_path):
    spool = Spool(tmp_path, max_bytes=30)
    spool.append([message(i) for i in range(3)])  # 30 bytes: full
    with pytest.raises(SpoolFull, match="stayed full"):
        spool.append([message(3)], timeout=0.05)
    ids = [i for i, _ in spool.peek(2)]
    threading.Timer(0.05, lambda: spool.ack(ids)).start()
    spool.append([message(3)], timeout=5.0)
    assert [m.event_id for _, m in spool.peek(10)] == ["e2", "e3"]


def test_an_oversized_batch_goes_into_an_empty_spool(tmp_path):
    spool = Spool(tmp_path, max_bytes=5)
    spool.append([message(0, size=100)], timeout=0.1)  # would otherwise never fit
    assert len(spool) == 1


def test_a_corrupt_spool_file_is_a_clear_error(tmp_path):
    (tmp_path / Spool.FILE).write_bytes(b"not a database" * 100)
    with pytest.raises(OSError, match=r"spool .* cannot be used"):
        Spool(tmp_path, max_bytes=100)


#: Run in a child process under a real file-size limit (writes past it fail with EFBIG, as on a
#: full disk; Python ignores SIGXFSZ): appends until the disk refuses, then frees space.
_FULL_DISK = """
import json, resource, sys
from pipeline.messages.encoding import Message
from pipeline.messages.spool import Spool, SpoolWriteError
resource.setrlimit(resource.RLIMIT_FSIZE, (48 * 1024, resource.RLIM_INFINITY))
spool = Spool(sys.argv[1], max_bytes=2**30)
batch = lambda i: [Message("link", "g", b"x" * 300, f"e{i}.{j}", "cam1", 1.0) for j in range(5)]
i, refused = 0, None
while refused is None and i < 1000:
    try:
        spool.append(batch(i))
        i += 1
    except SpoolWriteError as e:
        refused = str(e)
stored = len(spool)
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
spool.append(batch(i))  # the same batch again, once space is free
ids = [m.event_id for _, m in spool.peek(100000)]
print(json.dumps({"batches": i, "refused": refused, "stored": stored, "ids": ids}))
"""


def test_a_write_the_full_disk_refuses_stores_nothing_and_can_be_retried(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["refused"] is not None and result["batches"] > 0
    assert result["stored"] == 5 * result["batches"]  # the refused batch left nothing behind
    expected = [f"e{i}.{j}" for i in range(result["batches"] + 1) for j in range(5)]
    assert result["ids"] == expected  # retried once: stored once, in order

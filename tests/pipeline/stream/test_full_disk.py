"""The job on a full disk: a real one, made by a file-size limit on the `reidstream run` process.

`RLIMIT_FSIZE` makes every write past the limit fail with EFBIG (Python ignores SIGXFSZ, so the
process is not killed), exactly as a full volume fails with ENOSPC; the test raises the limit
again with `prlimit` to play the operator who frees space. The broker is unreachable (a closed
port), so every link stays in the spool and the spool is what fills the disk.

    transient: spool full -> intake paused, live cameras drop -> limit raised -> resumed,
               every link in the spool, nothing lost, exit 0
    permanent: spool full until the end -> the links not stored are counted lost (ERROR,
               summary.json), exit 1; spooled + lost = every link the publish stage handled
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.messages.spool import Spool

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux prlimit"),
]

#: Per-file limit: below what the spool reaches in the run (about 50 KB), above config.yaml and
#: the 32 KB block SQLite sizes its WAL index (spool.sqlite-shm) in.
LIMIT = 36 * 1024
UNLIMITED = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)


def start_run(out: Path) -> subprocess.Popen:
    """`reidstream run` on the live synthetic scene (40 s), links to an unreachable broker."""
    args = [
        sys.executable,
        "-m",
        "pipeline",
        "run",
        f"run.out_dir={out}",
        "synthetic.replay=native",
        "synthetic.duration_s=40",
        "synthetic.people=6",
        "synthetic.seed=1",
        "output.sinks=[kafka]",
        "kafka.bootstrap_servers=127.0.0.1:9",
        "kafka.request_timeout_ms=1000",
        "metrics.address=",
        "run.shutdown_timeout_s=3",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}
    with open(out.parent / f"{out.name}.log", "wb") as log:  # the child keeps its own handle
        return subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            preexec_fn=lambda: resource.setrlimit(
                resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY)
            ),
        )


def wait_for_lasting_pause(log: Path, hold: float, timeout: float) -> None:
    """Waits until intake has stayed paused for `hold` s. The first refusals are often the
    write-ahead log's, which the spool clears at once by checkpointing; a lasting pause is the
    database itself at the limit."""
    deadline, since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        paused = text.count("intake paused") > text.count("intake resumed")
        since = (since or time.monotonic()) if paused else None
        if since is not None and time.monotonic() - since >= hold:
            return
        time.sleep(0.1)
    raise AssertionError(f"no lasting pause within {timeout} s:\n{log.read_text()[-3000:]}")


def spooled_links(out: Path) -> list[str]:
    """Event ids of the links left in the run's spool, oldest first."""
    spool = Spool(out / "spool", max_bytes=2**30)
    try:
        return [m.event_id for _, m in spool.peek(100_000) if m.kind == "link"]
    finally:
        spool.close()


def test_a_disk_full_for_a_while_pauses_intake_and_loses_nothing(tmp_path):
    out = tmp_path / "run"
    proc = start_run(out)
    log = tmp_path / "run.log"
    try:
        wait_for_lasting_pause(log, hold=2.0, timeout=60)
        time.sleep(2)  # the cameras keep going meanwhile: their frames are dropped, counted
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, UNLIMITED)  # space freed
        proc.communicate(timeout=120)
    finally:
        proc.kill()
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "intake resumed" in text
    assert " ERROR " not in text, text[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lost"] == {}
    assert sum(c["dropped"] for c in summary["cameras"].values()) > 0  # intake really paused
    links = spooled_links(out)
    assert len(links) == len(set(links)) == summary["stages"]["publish"] > 0
    assert summary["sinks"]["kafka"]["spooled"] == len(links)


def test_a_disk_still_full_at_shutdown_counts_the_lost_links_and_exits_1(tmp_path):
    out = tmp_path / "run"
    proc = start_run(out)
    try:
        stdout, _ = proc.communicate(timeout=150)
    finally:
        proc.kill()
    text = (tmp_path / "run.log").read_text()
    assert proc.returncode == 1, text[-3000:]
    assert "intake paused" in text
    assert "ERROR pipeline.messages.sinks: kafka sink:" in text and "messages lost" in text
    summary = json.loads((out / "summary.json").read_text())
    lost = summary["lost"]["messages"]["kafka"]["link"]
    assert lost > 0
    assert b"LOST" in stdout
    # Nothing vanished silently: every link the publish stage handled is spooled or counted.
    links = spooled_links(out)
    assert len(links) + lost == summary["stages"]["publish"]
    assert summary["sinks"]["kafka"]["lost"] == {"link": lost}

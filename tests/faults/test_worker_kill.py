"""Fault: `reidstream worker` killed with -9 mid-run, while the broker is unreachable, and
started again on the same out_dir; `reidstream matcher` runs throughout.

The broker is frozen for a few seconds before the kill (`TansuBroker.pause`), so that the
worker's spool holds embeddings the broker has not acknowledged when the process dies: the
restarted worker must send them. Without the freeze the spool is nearly always empty at any
moment, and the kill would test nothing.

Guarantee: every embedding in the spool at the kill reaches the embeddings topic after the
restart; every link the matcher made is delivered.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from pipeline.demo.broker import TansuBroker
from pipeline.messages.spool import Spool
from tests.faults.harness import PEOPLE, ROWS, SCENE, Site, Tally, kill, wait_for
from tests.pipeline.matching.test_service import read_back

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]


def spooled(site: Site, name: str) -> set[str]:
    """Event ids of the messages in the spool of the process NAME."""
    spool = Spool(site.out(name) / "spool", max_bytes=2**30)
    try:
        return {m.event_id for _, m in spool.peek(100_000)}
    finally:
        spool.close()


def test_a_worker_killed_mid_run_loses_nothing_it_spooled(tmp_path):
    broker = TansuBroker(tmp_path / "broker.log")
    broker.start()
    site = Site(broker.bootstrap_servers, tmp_path, SCENE)
    matcher = site.start("matcher", "matcher", "output.sinks=[kafka, jsonl]")
    worker = site.start("worker", "worker")
    try:
        wait_for(lambda: len(site.made("matcher")) >= 3, 90, "links before the kill")
        fault_at = time.time()
        broker.pause()
        time.sleep(5)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        pending = spooled(site, "worker")
        broker.resume()
        worker = site.start("worker", "worker", "run.max_duration_s=10")
        assert site.finish(worker, "worker", 120) == 0, site.tail("worker")
        assert site.stop_when_idle(matcher, "matcher") == 0, site.tail("matcher")
        records = read_back(broker.bootstrap_servers, site.embeddings_topic)
        sent = {json.loads(r.value)["event_id"] for r in records}
        tally = Tally(site.made("matcher"), site.delivered(), fault_at)
    finally:
        kill(worker, matcher)
        broker.stop()
    ROWS.append(
        tally.row(
            f"kill -9 of a worker mid-run ({len(pending)} embeddings in its spool), restarted",
            f"{PEOPLE} people (the restart runs 10 s)",
        )
    )
    assert len(pending) >= 3, "the spool held nothing at the kill: it tested nothing"
    assert pending <= sent, sorted(pending - sent)
    assert not tally.lost and tally.made

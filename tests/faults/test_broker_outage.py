"""Fault: the broker stops answering for 12 s in the middle of a `reidstream run`.

The broker is frozen (`TansuBroker.pause`, SIGSTOP) rather than stopped: the test broker keeps
its messages in memory, so a stopped one would take what it had acknowledged with it, which a
Kafka cluster does not; a frozen one keeps them, so every link of the run can be counted on the
topic at the end. To the job it is an outage all the same: requests hang and time out.

Guarantee: every link made is delivered (the spool holds them through the outage); the run
exits 0 and its summary says nothing was lost.
"""

from __future__ import annotations

import json
import time

import pytest

from pipeline.demo.broker import TansuBroker
from tests.faults.harness import PEOPLE, ROWS, SCENE, Site, Tally, kill, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]

OUTAGE_S = 12


def test_a_broker_outage_mid_run_loses_no_link(tmp_path):
    broker = TansuBroker(tmp_path / "broker.log")
    broker.start()
    site = Site(broker.bootstrap_servers, tmp_path, SCENE)
    run = site.start("run", "run", "output.sinks=[kafka, jsonl]")
    try:
        wait_for(lambda: len(site.made("run")) >= 5, 90, "links before the outage")
        fault_at = time.time()
        broker.pause()
        time.sleep(OUTAGE_S)
        broker.resume()
        status = site.finish(run, "run", 120)
        tally = Tally(site.made("run"), site.delivered(), fault_at)
    finally:
        kill(run)
        broker.stop()
    log = site.log("run").read_text()
    summary = json.loads((site.out("run") / "summary.json").read_text())
    ROWS.append(tally.row(f"broker unreachable {OUTAGE_S} s mid-run", f"{PEOPLE} people"))
    assert status == 0, log[-3000:]
    during = [d for d in tally.made if fault_at <= d["produced_at"] < fault_at + OUTAGE_S]
    assert during, "no link was made during the outage: it tested nothing"
    assert "kafka sink" in log and summary["sinks"]["kafka"]["spooled"] == 0
    assert summary["lost"] == {}
    assert not tally.lost, sorted(tally.lost)
    assert len(tally.made_ids) == summary["stages"]["publish"] > 10

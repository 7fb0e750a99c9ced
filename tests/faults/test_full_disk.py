"""Fault: the spool's disk is full (a file-size limit on `reidstream run`, as in
`tests/pipeline/stream/test_full_disk.py`, whose run it starts: the broker is unreachable, so
every link goes to the spool and the spool fills the disk).

    transient   the limit is raised again while the run goes on: guarantee: nothing lost,
                exit 0, and every link reaches the topic when the next start sends the spool
    permanent   the disk stays full to the end: guarantee: the links not stored are counted in
                summary.json, the summary printed says LOST, exit 1; every link stored reaches
                the topic on the next start, so made = delivered + counted lost

Both run at once (the scene is paced like live cameras, so they hardly compete for the CPU).
"Next start" is `reidstream run` again on the same out_dir against the broker, stopped after a
second (`run.max_duration_s`): it sends what the spool holds before it exits.
"""

from __future__ import annotations

import json
import resource
import time
from dataclasses import replace

import pytest

from tests.faults.harness import PEOPLE, ROWS, Site, Tally, kill
from tests.pipeline.stream.test_full_disk import (
    UNLIMITED,
    spooled_links,
    start_run,
    wait_for_lasting_pause,
)

pytestmark = [
    pytest.mark.faults,
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux prlimit"),
]


def deliver_spool(servers: str, tmp_path, name: str) -> Tally:
    """Starts `reidstream run` again on the run NAME's out_dir against the broker, so that it
    sends the spool; the links of the first run against what reached the topic."""
    stored = set(spooled_links(tmp_path / name))
    site = Site(servers, tmp_path)
    again = site.start("run", name, "output.sinks=[kafka]", "run.max_duration_s=1")
    try:
        assert site.finish(again, name, 120) == 0, site.tail(name)
    finally:
        kill(again)
    return Tally([], [d for d in site.delivered() if d["event_id"] in stored])


def test_a_full_disk_pauses_then_loses_nothing_or_counts_what_it_lost(kafka_broker, tmp_path):
    transient, permanent = start_run(tmp_path / "transient"), start_run(tmp_path / "permanent")
    try:
        wait_for_lasting_pause(tmp_path / "transient.log", hold=2.0, timeout=60)
        fault_at = time.time()
        time.sleep(2)  # the cameras keep going meanwhile: their frames are dropped, counted
        resource.prlimit(transient.pid, resource.RLIMIT_FSIZE, UNLIMITED)  # space freed
        statuses = transient.wait(120), permanent.wait(150)
    finally:
        kill(transient, permanent)
    results = {}
    for name, status, fault in zip(
        ("transient", "permanent"), statuses, ("for a while", "until the end"), strict=True
    ):
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        tally = deliver_spool(kafka_broker.bootstrap_servers, tmp_path, name)
        tally.fault_at = fault_at
        made = summary["stages"]["publish"]  # every link made; the lost ones have no record
        lost = summary["lost"].get("messages", {}).get("kafka", {}).get("link", 0)
        row = tally.row(f"spool's disk full {fault} (exit {status})", f"{PEOPLE} people")
        ROWS.append(replace(row, made=made, lost=made - row.delivered))
        assert made > 0 and made == len(tally.delivered_ids) + lost, (name, made, lost)
        results[name] = (status, lost)
    assert results["transient"] == (0, 0)
    status, lost = results["permanent"]
    assert status == 1 and lost > 0

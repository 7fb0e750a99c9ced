"""Faults of `reidstream matcher`: killed with -9 mid-run, and poison records among its input.

Both read a deterministic stream of tracklet embeddings (`people_stream`: people walking from
camera to camera) from a one-partition topic, and both are held against an uninterrupted matcher
that read the same stream clean. Link identities are compared without the run's random global-id
prefix (a restored matcher keeps its own; another matcher has another).

    kill -9   guarantee: the restarted matcher restores its gallery from the changelog and makes
              the same links with the same global ids as the uninterrupted run; none is lost
    poison    tombstones, garbage, a missing event_id, a 1e20 vector, a far-future time and
              another model among the records: the matcher stays up, rejects each (counted by
              reason on the dead-letter topic) and makes the same links as on the clean stream
"""

from __future__ import annotations

import base64
import signal
import time
import uuid
from collections import Counter

import numpy as np
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from pipeline.messages.encoding import closed_message, embedding_message
from pipeline.messages.rejects import REASON_HEADER
from pipeline.messages.types import ClipEmbedding, TrackletClosed
from tests.faults.harness import ROWS, Site, Tally, kill
from tests.pipeline.matching.people import MODEL, people_stream
from tests.pipeline.matching.test_service import DROP, document, read_back

pytestmark = [pytest.mark.faults, pytest.mark.kafka, pytest.mark.slow]


def _capture_time(item: ClipEmbedding | TrackletClosed) -> float:
    return item.last_seen if isinstance(item, TrackletClosed) else item.end_time


#: In capture-time order, as the matcher orders each poll: then where a poll ends (which the
#: poison records shift) does not change what it decides.
STREAM = sorted(people_stream(seed=3, people=30, visits=8, dim=64), key=_capture_time)
#: Times of the stream count from 0; the matcher's clock must accept them.
MATCHER = f"matcher: {{threshold: 0.5, model: {MODEL}, max_behind_s: 4e9}}"
SINKS = "output.sinks=[kafka, jsonl]"


def produce(servers: str, records: list[bytes | None]) -> str:
    """A new one-partition topic holding `records` in order; its name."""
    topic = f"embeddings-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=servers)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=servers)
    for value in records:
        producer.send(topic, key=b"cam", value=value)
    producer.flush()
    producer.close()
    return topic


def encoded(items: list) -> list[bytes]:
    encode = {True: embedding_message, False: closed_message}
    return [encode[isinstance(i, ClipEmbedding)](i, produced_at=0.0).value for i in items]


def identities(links: list[dict]) -> set[tuple]:
    """The links, each once, with the run's global-id prefix taken out."""
    prefixes = {d["global_id"].rsplit("-", 1)[0] for d in links}
    assert len(prefixes) <= 1, prefixes  # a restored matcher goes on with the same prefix
    return {
        (d["global_id"].rsplit("-", 1)[1], d["tracklet_id"], d["end_time"], d["similarity"])
        for d in links
    }


def latest_identity(links: list[dict]) -> dict[str, str]:
    """Each tracklet's global id (prefix taken out) by its latest link: what a consumer keeps."""
    latest = {}
    for d in sorted(links, key=lambda d: d["produced_at"]):
        latest[d["tracklet_id"]] = d["global_id"].rsplit("-", 1)[1]
    return latest


def run_through(site: Site, name: str, total: int, *overrides: str) -> None:
    """Runs the matcher NAME of `site` until it has committed `total` records, then stops it."""
    process = site.start("matcher", name, SINKS, *overrides)
    try:
        site.wait_committed(process, name, total)
        process.send_signal(signal.SIGTERM)
        assert site.finish(process, name, 60) == 0, site.tail(name)
    finally:
        kill(process)


@pytest.fixture(scope="module")
def clean(kafka_broker, tmp_path_factory) -> tuple[str, list[dict], int]:
    """(the clean stream's topic, the links of an uninterrupted matcher, their global ids)."""
    servers = kafka_broker.bootstrap_servers
    topic = produce(servers, encoded(STREAM))
    site = Site(servers, tmp_path_factory.mktemp("uninterrupted"), MATCHER, topic)
    run_through(site, "matcher", len(STREAM))
    links = site.delivered()
    return topic, links, len({d["global_id"] for d in links})


def test_a_matcher_killed_and_restarted_keeps_every_link_and_global_id(
    kafka_broker, tmp_path, clean
):
    topic, expected, expected_ids = clean
    site = Site(kafka_broker.bootstrap_servers, tmp_path, MATCHER, topic)
    process = site.start("matcher", "matcher", SINKS)
    try:
        site.wait_committed(process, "matcher", 1)
        fault_at = time.time()
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        at_kill = site.committed()
    finally:
        kill(process)
    run_through(site, "matcher", len(STREAM))
    tally = Tally(site.made("matcher"), site.delivered(), fault_at)
    ROWS.append(
        tally.row("kill -9 of the matcher mid-run, restarted", f"{expected_ids} uninterrupted")
    )
    log = site.log("matcher").read_text()
    assert 0 < at_kill < len(STREAM), at_kill  # killed mid-run, with a gallery to restore
    assert "restored 0 identities" in log and log.count("restored") >= 2, log[-3000:]
    assert not tally.lost
    assert identities(tally.topic) == identities(expected)


# ----------------------------------------------------------------------------- poison records


def poison(base: ClipEmbedding) -> dict[str, bytes | None]:
    """One record of each kind a hostile or broken producer sends, by the reason it gets."""
    future = time.time() + 1e6
    huge = np.full(base.embedding.shape[0], 1e20, "<f4").tobytes()
    return {
        "wrong_model": document(base, model="another-model"),  # first: it must not decide
        "tombstone": None,
        "undecodable": b"\x00\xff garbage",
        "schema": document(base, event_id=DROP),
        "implausible_value": document(base, embedding=base64.b64encode(huge).decode()),
        "implausible_time": document(
            base, start_time=future, end_time=future + 1, tracklet_start=future
        ),
    }


def poisoned(every: int = 40) -> tuple[list[bytes | None], Counter]:
    """The clean stream with one poison record of the next kind before every `every`-th record;
    the records and how many of each reason there are."""
    kinds = list(poison(STREAM[0]).items())
    records: list[bytes | None] = []
    reasons: Counter = Counter()
    for i, value in enumerate(encoded(STREAM)):
        if i % every == 0:
            reason, bad = kinds[(i // every) % len(kinds)]
            records.append(bad)
            reasons[reason] += 1
        records.append(value)
    return records, reasons


def test_poison_records_are_rejected_by_reason_and_leave_the_links_as_they_were(
    kafka_broker, tmp_path, clean
):
    _, expected, expected_ids = clean
    servers = kafka_broker.bootstrap_servers
    records, reasons = poisoned()
    dead_letters = f"rejected-{uuid.uuid4().hex[:8]}"
    site = Site(servers, tmp_path, MATCHER, produce(servers, records))
    run_through(site, "matcher", len(records), f"kafka.dead_letter_topic={dead_letters}")
    tally = Tally(site.made("matcher"), site.delivered())
    letters = read_back(servers, dead_letters)
    counted = Counter(dict(r.headers)[REASON_HEADER].decode() for r in letters)
    ROWS.append(
        tally.row(
            f"{sum(reasons.values())} poison records of {len(reasons)} kinds "
            f"({sum(counted.values())} rejected)",
            f"{expected_ids} clean",
        )
    )
    assert counted == reasons, (counted, reasons)
    assert not tally.lost
    # Where a poll ends moves with the poison records, and the matcher assigns a poll's
    # embeddings together, so an intermediate link may differ; what consumers keep may not.
    assert latest_identity(tally.topic) == latest_identity(expected)

"""`reidstream consume` reading what was published: each link once, records that are no links
skipped and committed past, and with a group at-least-once (committed after the links are
handled)."""

from __future__ import annotations

import json
import uuid

import pytest

from pipeline.cli import main
from pipeline.messages.encoding import decode, link_message
from pipeline.messages.rejects import REASON_HEADER
from pipeline.messages.types import IdentityLink
from pipeline.monitoring.metrics import METRICS


@pytest.mark.kafka
def test_consume_prints_and_writes_the_links_once(kafka_broker, tmp_path, capsys):
    from kafka import KafkaProducer

    topic = f"links-{uuid.uuid4().hex[:8]}"
    links = [IdentityLink(f"g-{i}", "cam1", i, f"t-{i}", 10.0 + i, 11.0 + i, 0.5) for i in range(4)]
    messages = [link_message(link) for link in links]
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    for message in [*messages, messages[1]]:  # one re-sent
        producer.send(topic, key=message.key.encode(), value=message.value)
    producer.flush()
    producer.close()
    out = tmp_path / "links.jsonl"
    code = main([
        "consume", "--idle-timeout", "4", "--out", str(out), "--json",
        f"kafka.bootstrap_servers={kafka_broker.bootstrap_servers}", f"kafka.links_topic={topic}",
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr()
    documents = [json.loads(line) for line in printed.out.splitlines()]
    assert sorted(d["event_id"] for d in documents) == sorted(m.event_id for m in messages)
    assert [decode(line)["event_id"] for line in out.read_text().splitlines()] == [
        d["event_id"] for d in documents
    ]
    assert "4 links (1 duplicates dropped, 0 rejected); 4 tracklets, 4 global ids" in printed.err


def rejected(reason: str) -> float:
    labels = {"consumer": "links", "reason": reason}
    return METRICS.registry.get_sample_value("reidstream_records_rejected_total", labels) or 0.0


@pytest.mark.kafka
@pytest.mark.slow
def test_consume_with_a_group_skips_bad_records_and_commits_only_what_it_handled(
    kafka_broker, tmp_path, capsys
):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    bootstrap, run_id = kafka_broker.bootstrap_servers, uuid.uuid4().hex[:8]
    topic, dlq, group = f"links-{run_id}", f"rejected-{run_id}", f"consume-{run_id}"
    links = [IdentityLink(f"g-{i}", "cam1", i, f"t-{i}", 10.0 + i, 11.0 + i, 0.5) for i in range(4)]
    values = [None, b"\x00garbage", *(link_message(link).value for link in links)]
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for value in values:
        producer.send(topic, key=b"k", value=value)  # one key: one partition, in this order
    producer.flush()
    producer.close()
    out = tmp_path / "links.jsonl"
    before = {reason: rejected(reason) for reason in ("tombstone", "undecodable")}

    def consume(*options: str) -> tuple[list[str], str]:
        code = main([
            "consume", "--group", group, "--out", str(out), "--json",
            "--dead-letter-topic", dlq, *options, f"kafka.bootstrap_servers={bootstrap}",
            f"kafka.links_topic={topic}", "kafka.max_poll_interval_ms=2000",
        ])  # fmt: skip
        assert code == 0
        printed = capsys.readouterr()
        return [json.loads(line)["global_id"] for line in printed.out.splitlines()], printed.err

    # Stopped after two links: the null value and the garbage are skipped, counted and
    # dead-lettered; only what was handled is committed.
    first, err = consume("--max", "2")
    assert first == ["g-0", "g-1"]
    assert "rejected: 1 tombstone, 1 undecodable" in err
    assert {r: rejected(r) - before[r] for r in before} == {"tombstone": 1, "undecodable": 1}
    # The next run of the group goes on after them: nothing lost, nothing twice, and the
    # rejected records are not read again.
    second, err = consume("--idle-timeout", "4")
    assert second == ["g-2", "g-3"]
    assert "0 rejected" in err
    assert [decode(line)["global_id"] for line in out.read_text().splitlines()] == [
        "g-0", "g-1", "g-2", "g-3"
    ]  # fmt: skip

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        assert sum(consumer.committed(tp) or 0 for tp in partitions) == len(values)
        letters = [TopicPartition(dlq, p) for p in consumer.partitions_for_topic(dlq)]
        consumer.assign(letters)
        consumer.seek_to_beginning(*letters)
        copies = []
        while batch := consumer.poll(timeout_ms=2000):
            copies += [r for records in batch.values() for r in records]
    finally:
        consumer.close()
    assert [(r.value, dict(r.headers)[REASON_HEADER]) for r in copies] == [
        (None, b"tombstone"),
        (b"\x00garbage", b"undecodable"),
    ]

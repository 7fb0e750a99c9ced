"""The test broker speaks real Kafka: a produce/consume round trip with kafka-python."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

pytestmark = pytest.mark.kafka


def _consume(bootstrap: str, topic: str, group: str, expected: int) -> list:
    # Tansu completes a group join only when the rebalance timeout (max_poll_interval_ms) expires,
    # so it is kept short here.
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_interval_ms=2_000,
        session_timeout_ms=6_000,
        heartbeat_interval_ms=500,
        consumer_timeout_ms=8_000,
    )
    try:
        records = []
        for record in consumer:
            records.append(record)
            if len(records) == expected:
                break
        consumer.commit()
        return records
    finally:
        consumer.close()


def test_produce_consume_round_trip(kafka_broker):
    bootstrap = kafka_broker.bootstrap_servers
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        assert topic in admin.list_topics()
    finally:
        admin.close()

    sent = [(f"person-{i % 3}".encode(), f"link-{i}".encode()) for i in range(30)]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=5)
    try:
        metadata = [producer.send(topic, key=k, value=v).get(timeout=10) for k, v in sent]
    finally:
        producer.close()
    assert {m.partition for m in metadata} <= {0, 1}
    # One key always lands on one partition, which is what keeps a person's links in order.
    partitions_by_key = {}
    for (key, _), m in zip(sent, metadata, strict=True):
        partitions_by_key.setdefault(key, set()).add(m.partition)
    assert all(len(p) == 1 for p in partitions_by_key.values())

    records = _consume(bootstrap, topic, group="roundtrip", expected=len(sent))
    assert sorted((r.key, r.value) for r in records) == sorted(sent)
    for key in partitions_by_key:
        in_order = [r.value for r in records if r.key == key]
        assert in_order == [v for k, v in sent if k == key]

    # The committed offsets cover everything that was read.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id="roundtrip")
    try:
        committed = sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in (0, 1))
    finally:
        consumer.close()
    assert committed == len(sent)


def test_a_paused_broker_answers_nothing_and_keeps_what_it_stored(tmp_path):
    from kafka.errors import KafkaTimeoutError

    from pipeline.demo.broker import TansuBroker

    topic = "paused"
    with TansuBroker(tmp_path / "broker.log") as broker:
        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap_servers, acks="all", request_timeout_ms=1500
        )
        try:
            producer.send(topic, b"before").get(timeout=10)
            broker.pause()
            with pytest.raises(KafkaTimeoutError):
                producer.send(topic, b"during").get(timeout=3)
            broker.resume()
            producer.send(topic, b"after").get(timeout=10)
        finally:
            producer.close(1)
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap_servers,
            auto_offset_reset="earliest",
            consumer_timeout_ms=3000,
        )
        try:
            values = [r.value for r in consumer]
        finally:
            consumer.close()
    assert {b"before", b"after"} <= set(values)  # across partitions: in no particular order

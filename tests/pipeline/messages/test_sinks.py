"""Sinks against a real Kafka-protocol broker: delivery, order, outages, the reference consumer.

The outage tests run a broker of their own on a fixed port, stop it and start it again; its
memory storage forgets what it held, so each test reads what a broker life received before
stopping it.
"""

from __future__ import annotations

import time
import uuid

import pytest
from prometheus_client import CollectorRegistry

from pipeline.demo.broker import TansuBroker, free_port
from pipeline.messages.consumer import LinkConsumer, Seen
from pipeline.messages.encoding import link_message
from pipeline.messages.sinks import JsonlSink, KafkaSink, Publisher
from pipeline.messages.spool import Spool
from pipeline.messages.types import IdentityLink
from pipeline.monitoring.metrics import PipelineMetrics

pytestmark = pytest.mark.kafka


def links(n: int, start: int = 0) -> list:
    return [
        link_message(IdentityLink(f"g-{i % 4}", "cam1", i, f"t-{i}", 100.0 + i, 101.0 + i))
        for i in range(start, start + n)
    ]


def sink(bootstrap: str, topic: str, spool_dir, metrics, **kw) -> KafkaSink:
    options = {"bootstrap_servers": [bootstrap], "client_id": "test", "request_timeout_ms": 5000}
    spool = Spool(spool_dir, max_bytes=10_000_000)
    topics = {"link": topic, "embedding": topic + "-e"}
    return KafkaSink(options, topics, spool, metrics, send_timeout_s=5.0, **kw)


def read(bootstrap: str, topic: str, n: int, timeout: float = 30.0) -> list[IdentityLink]:
    """Links of `topic` (every partition, from the start, no group) until `n` distinct ones."""
    out: list[IdentityLink] = []
    deadline = time.monotonic() + timeout
    with LinkConsumer({"bootstrap_servers": [bootstrap]}, topic) as consumer:
        while len(out) < n and time.monotonic() < deadline:
            out += [received.link for received in consumer.poll(0.5)]
    return out


def value(metrics: PipelineMetrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_kafka_sink_delivers_in_order_per_key_and_empties_the_spool(kafka_broker, tmp_path):
    topic = f"links-{uuid.uuid4().hex[:8]}"
    metrics = PipelineMetrics(CollectorRegistry())
    kafka = sink(kafka_broker.bootstrap_servers, topic, tmp_path, metrics)
    kafka.start()
    sent = links(40)
    for i in range(0, 40, 10):
        kafka.publish(sent[i : i + 10])
    assert kafka.flush(20.0)
    got = read(kafka_broker.bootstrap_servers, topic, 40)
    assert sorted(link.event_id for link in got) == sorted(m.event_id for m in sent)
    for key in ("g-0", "g-1", "g-2", "g-3"):  # one key, one partition: in order
        order = [link.track_id for link in got if link.global_id == key]
        assert order == sorted(order)
    assert value(metrics, "reidstream_links_published_total", sink="kafka") == 40
    assert value(metrics, "reidstream_spool_messages") == 0
    count = value(metrics, "reidstream_frame_to_link_latency_seconds_count", camera="cam1")
    assert count == 40
    kafka.close(5.0)


def test_unreachable_broker_spools_counts_errors_and_delivers_when_it_comes(tmp_path):
    port = free_port()
    topic = "links-outage"
    metrics = PipelineMetrics(CollectorRegistry())
    kafka = sink(f"127.0.0.1:{port}", topic, tmp_path / "spool", metrics)
    kafka.start()
    kafka.publish(links(15))
    deadline = time.monotonic() + 20  # the first attempt fails after the 5 s bootstrap timeout
    while not value(metrics, "reidstream_publish_errors_total", sink="kafka"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert len(kafka.spool) == 15 and not kafka.state()["connected"]
    assert "KafkaTimeoutError" in kafka.state()["last_error"]
    assert value(metrics, "reidstream_spool_messages") == 15
    with TansuBroker(tmp_path / "broker.log", port=port) as broker:
        assert kafka.flush(40.0), kafka.state()
        got = read(broker.bootstrap_servers, topic, 15)
        assert len({link.event_id for link in got}) == 15
        kafka.close(5.0)
    assert value(metrics, "reidstream_links_published_total", sink="kafka") == 15


def test_a_producer_given_up_in_an_outage_stops_instead_of_sending_on_in_the_background(tmp_path):
    from kafka import KafkaProducer

    producers: list[KafkaProducer] = []

    def factory(**kw) -> KafkaProducer:
        producers.append(KafkaProducer(**kw))
        return producers[-1]

    metrics = PipelineMetrics(CollectorRegistry())
    with TansuBroker(tmp_path / "broker.log") as broker:
        kafka = sink(broker.bootstrap_servers, "links-frozen", tmp_path / "spool", metrics)
        kafka._factory = factory
        kafka.start()
        kafka.publish(links(3))
        assert kafka.flush(20.0)
        broker.pause()  # records wait in the producer when its round gives up on them
        kafka.publish(links(3, start=3))
        deadline = time.monotonic() + 30
        while not value(metrics, "reidstream_publish_errors_total", sink="kafka"):
            assert time.monotonic() < deadline, kafka.state()
            time.sleep(0.1)
        given_up = producers[0]
        given_up._sender.join(5)
        assert not given_up._sender.is_alive()  # kafka-python's close alone leaves it running
        broker.resume()
        assert kafka.flush(30.0), kafka.state()
        kafka.close(5.0)
    assert value(metrics, "reidstream_links_published_total", sink="kafka") == 6


def test_broker_restart_mid_stream_loses_no_link(tmp_path):
    port = free_port()
    topic = "links-restart"
    metrics = PipelineMetrics(CollectorRegistry())
    broker = TansuBroker(tmp_path / "broker.log", port=port)
    broker.start()
    kafka = sink(broker.bootstrap_servers, topic, tmp_path / "spool", metrics)
    kafka.start()
    try:
        first = links(20)
        kafka.publish(first)
        assert kafka.flush(20.0)
        before = read(broker.bootstrap_servers, topic, 20)
        broker.stop()
        second = links(25, start=20)
        for i in range(0, 25, 5):
            kafka.publish(second[i : i + 5])
            time.sleep(0.2)
        time.sleep(2.0)
        assert len(kafka.spool) == 25  # nothing lost while the broker is away
        broker.start()
        assert kafka.flush(40.0), kafka.state()
        after = read(broker.bootstrap_servers, topic, 25)
    finally:
        kafka.close(5.0)
        broker.stop()
    seen = {link.event_id for link in before + after}
    assert seen == {m.event_id for m in first + second}
    assert [link.track_id for link in after if link.global_id == "g-1"] == [21, 25, 29, 33, 37, 41]
    assert value(metrics, "reidstream_publish_errors_total", sink="kafka") >= 1


def test_what_a_crashed_run_left_in_the_spool_is_sent_by_the_next(kafka_broker, tmp_path):
    topic = f"links-{uuid.uuid4().hex[:8]}"
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.append(links(5))
    spool.close()  # the process died before sending
    kafka = sink(
        kafka_broker.bootstrap_servers, topic, tmp_path, PipelineMetrics(CollectorRegistry())
    )
    kafka.start()
    assert kafka.flush(20.0)
    kafka.close(1.0)
    assert len(read(kafka_broker.bootstrap_servers, topic, 5)) == 5


def test_consumer_drops_duplicates_and_invalid_messages_and_keeps_the_latest(
    kafka_broker, tmp_path
):
    from kafka import KafkaProducer

    topic = f"links-{uuid.uuid4().hex[:8]}"
    early = IdentityLink("g-1", "cam1", 1, "t-1", 0.0, 1.0)
    late = IdentityLink("g-2", "cam1", 1, "t-1", 0.0, 3.0, similarity=0.9)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    for message in [link_message(early), link_message(early), link_message(late)]:
        producer.send(topic, key=message.key.encode(), value=message.value)
    producer.send(topic, key=b"x", value=b'{"schema": "reidstream.identity_link/1"}')
    producer.flush()
    producer.close()
    got = []
    with LinkConsumer({"bootstrap_servers": [kafka_broker.bootstrap_servers]}, topic) as consumer:
        deadline = time.monotonic() + 20
        while len(got) < 2 and time.monotonic() < deadline:
            got += [r.link for r in consumer.poll(0.5)]
        time.sleep(0.5)
        got += [r.link for r in consumer.poll(0.5)]
        assert (consumer.duplicates, consumer.invalid) == (1, 1)
        assert consumer.latest["t-1"].global_id == "g-2"
    assert [link.event_id for link in got] == [early.event_id, late.event_id]


def test_seen_is_bounded():
    seen = Seen(capacity=2)
    assert seen.add("a") and seen.add("b") and not seen.add("a")
    assert seen.add("c") and seen.add("a")  # "a" was the oldest: forgotten


def test_jsonl_sink_and_publisher(tmp_path):
    metrics = PipelineMetrics(CollectorRegistry())
    path = tmp_path / "out" / "links.jsonl"
    publisher = Publisher([JsonlSink(path, metrics, observe_latency=True)])
    sent = links(5)
    publisher.publish(sent[:3])
    publisher.publish(sent[3:])
    assert publisher.flush(1.0)
    publisher.close(1.0)
    lines = path.read_bytes().splitlines()
    assert lines == [m.value for m in sent]
    assert value(metrics, "reidstream_links_published_total", sink="jsonl") == 5
    assert publisher.state() == {"jsonl": {"path": str(path), "written": 5}}

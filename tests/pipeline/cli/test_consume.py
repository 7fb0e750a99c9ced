"""The job's commands as a user runs them: `reidstream run` stopped by SIGINT, a broken
configuration, and `reidstream consume` reading what was published."""

from __future__ import annotations

import json
import uuid

import pytest

from pipeline.cli import main
from pipeline.messages.encoding import decode, link_message
from pipeline.messages.types import IdentityLink


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
    assert "4 links (1 duplicates dropped, 0 invalid); 4 tracklets, 4 global ids" in printed.err

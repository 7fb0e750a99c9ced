"""The delivery sections: Kafka connection options, TLS/SASL checks, the sinks."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.messages.settings import KafkaConfig, OutputConfig


def test_kafka_security_settings_pass_through_to_the_client():
    cfg = KafkaConfig(
        bootstrap_servers=("b1:9093",),
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="reid",
        sasl_plain_password="pw",
        ssl_cafile=Path("/etc/ca.pem"),
    )
    options = cfg.client_options()
    assert options == {
        "bootstrap_servers": ["b1:9093"],
        "client_id": "reidstream",
        "request_timeout_ms": 30_000,
        "security_protocol": "SASL_SSL",
        "ssl_check_hostname": True,
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "reid",
        "sasl_plain_password": "pw",
        "ssl_cafile": "/etc/ca.pem",
    }
    from kafka import KafkaProducer

    unknown = set(options) - set(KafkaProducer.DEFAULT_CONFIG)
    assert unknown == set()  # every option is one kafka-python takes


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "sasl_mechanism: security_protocol = 'SASL_SSL'"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN"}, "needs sasl_plain"),
    ],
)
def test_sasl_needs_its_mechanism_and_credentials(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KafkaConfig(**kwargs)


def test_each_sink_at_most_once_and_at_least_one():
    with pytest.raises(ValueError, match="at least one"):
        OutputConfig(sinks=())
    with pytest.raises(ValueError, match="each sink at most once"):
        OutputConfig(sinks=("jsonl", "jsonl"))

"""The root schema: every section composed, documented, and the checks across sections."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.config import (
    ConfigError,
    describe_config,
    load_config,
)
from pipeline.settings import ReidstreamConfig


def test_reidstream_schema_defaults_are_valid_and_documented():
    cfg = load_config(ReidstreamConfig, environ={})
    assert cfg == ReidstreamConfig()
    for row in describe_config(ReidstreamConfig):
        assert row.help, f"{row.key} has no help text"


def test_reidstream_environment():
    env = {
        "REIDSTREAM_KAFKA__BOOTSTRAP_SERVERS": "b1:9092,b2:9093",
        "REIDSTREAM_LOG_LEVEL": "DEBUG",
    }
    cfg = load_config(ReidstreamConfig, environ=env)
    assert cfg.kafka.bootstrap_servers == ("b1:9092", "b2:9093")
    assert cfg.log_level == "DEBUG"
    assert dataclasses.replace(cfg, log_level="INFO").kafka == cfg.kafka


@pytest.mark.parametrize(
    "override",
    [
        "device=gpu",
        "kafka.bootstrap_servers=broker",
        "kafka.request_timeout_ms=10",
        "log_level=debug",
    ],
)
def test_reidstream_rejects(override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        load_config(ReidstreamConfig, environ={}, overrides=[override])


def test_reidstream_cameras_and_their_checks(tmp_path):
    cfg = load_config(
        ReidstreamConfig,
        environ={},
        overrides=[
            "cameras=[{id: door, uri: /v/door.mp4}, {id: hall, uri: 'rtsp://u:p@h/s'},"
            " {id: desk, uri: 'webcam:1'}]",
            "matcher.overlapping_cameras=[[door, hall]]",
        ],
    )
    door, hall, desk = cfg.cameras
    assert (door.kind, door.is_live, hall.kind, hall.is_live) == ("file", False, "stream", True)
    assert (desk.kind, desk.webcam_index) == ("webcam", 1)
    bad = [
        ("cameras=[{id: a, uri: x}, {id: a, uri: y}]", "each id at most once"),
        ("cameras=[{id: 'a b', uri: x}]", "id = 'a b'"),
        ("cameras=[{id: a}]", "needs a uri"),
        ("matcher.overlapping_cameras=[[cam1, cam7]]", r"cameras \['cam7'\] are not configured"),
        ("synthetic.only_cameras=[cam9]", "not in the scene's cameras"),
        ("kafka.security_protocol=SASL_SSL", "sasl_mechanism"),
        ("output.sinks=[]", "at least one"),
    ]
    for override, message in bad:
        with pytest.raises(ConfigError, match=message):
            load_config(ReidstreamConfig, environ={}, overrides=[override])

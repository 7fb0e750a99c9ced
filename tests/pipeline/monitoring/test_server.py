"""The HTTP endpoint: /metrics, the liveness and readiness probes, redaction, the default bind."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from pipeline.config import load_config
from pipeline.monitoring.metrics import PipelineMetrics
from pipeline.monitoring.server import is_ready, serve_metrics
from pipeline.settings import ReidstreamConfig

OK = {"status": "ok", "cameras": [{"status": "connected"}], "sinks": {"jsonl": {"written": 3}}}
CAMERA_DOWN = {"status": "degraded", "cameras": [{"status": "reconnecting"}], "sinks": {}}
BROKER_DOWN = {"status": "ok", "sinks": {"kafka": {"connected": False, "spooled": 12}}}


@contextmanager
def serving(health: Any, live: Any = None) -> Iterator[str]:
    metrics = PipelineMetrics(CollectorRegistry())
    metrics.frames_in.labels(camera="c1").inc()
    server = serve_metrics("127.0.0.1:0", metrics, health, live)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.mark.parametrize(
    ("report", "ready"),
    [(OK, 200), (CAMERA_DOWN, 503), (BROKER_DOWN, 503), ({"status": "failing"}, 503)],
)
def test_a_camera_or_broker_outage_is_not_ready_but_alive(report, ready):
    with serving(lambda: report) as base:
        assert get(base + "/readyz")[0] == ready
        assert get(base + "/healthz")[0] == ready  # the earlier name of /readyz
        assert get(base + "/livez") == (200, json.dumps({"status": "alive"}, indent=1))
        assert json.loads(get(base + "/readyz")[1]) == report


def test_livez_fails_only_when_the_process_says_it_stopped_working():
    state = {"alive": True}
    with serving(lambda: CAMERA_DOWN, live=lambda: state["alive"]) as base:
        assert get(base + "/livez")[0] == 200
        state["alive"] = False
        assert get(base + "/livez") == (503, json.dumps({"status": "dead"}, indent=1))


def test_a_broken_report_still_answers_the_probes():
    def broken() -> dict:
        raise RuntimeError("rtsp://admin:hunter2@cam/ unreachable")

    with serving(broken, live=lambda: 1 / 0) as base:
        status, body = get(base + "/readyz")
        assert status == 503 and json.loads(body)["status"] == "failing"
        assert "hunter2" not in body and "admin:***@cam" in body
        assert get(base + "/livez")[0] == 503


def test_the_report_never_shows_credentials():
    report = {
        "status": "degraded",
        "cameras": [
            {"source": "rtsp://admin:hun/ter2@cam1/s", "last_error": "open admin:hunter2@cam2"},
            {"source": "http://cam3/mjpg?password=hunter2", "last_error": None},
        ],
    }
    with serving(lambda: report) as base:
        body = get(base + "/readyz")[1]
    assert "hunter2" not in body and "ter2" not in body
    assert "cam1/s" in body and "cam3/mjpg" in body


def test_metrics_and_unknown_paths():
    with serving(lambda: OK) as base:
        status, body = get(base + "/metrics")
        assert status == 200 and 'reidstream_frames_in_total{camera="c1"} 1.0' in body
        status, body = get(base + "/nope")
        assert status == 404 and "/livez" in body and "/readyz" in body


def test_the_endpoint_listens_on_loopback_unless_configured():
    assert load_config(ReidstreamConfig, environ={}).metrics.address == "127.0.0.1:9400"
    wide = load_config(ReidstreamConfig, environ={}, overrides=["metrics.address=0.0.0.0:9400"])
    assert wide.metrics.address == "0.0.0.0:9400"


def test_is_ready_reads_status_and_sinks():
    assert is_ready(OK)
    assert not is_ready(BROKER_DOWN) and not is_ready(CAMERA_DOWN)
    assert is_ready({"status": "ok", "sinks": {"kafka": {"connected": False, "spooled": 0}}})

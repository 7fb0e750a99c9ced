"""The HTTP endpoint: Prometheus metrics and the probes of an orchestrator.

    GET /metrics  the registry in Prometheus' text format (prometheus_client's WSGI app)
    GET /livez    liveness: 200 {"status": "alive"} while the process serves and its stage
                  threads run; 503 when one died (a restart is what helps then)
    GET /readyz   readiness and the health report, JSON: {"status": "ok" | "degraded" | "failing",
                  cameras, stages, sinks, ...}; 200 only when "ok" and every sink delivers, 503
                  otherwise (a camera down, the broker unreachable with messages waiting)
    GET /healthz  the same as /readyz (its earlier name)

The two probes answer different questions. A camera outage or a broker outage makes the process
not ready (503 on /readyz) but leaves it alive (200 on /livez): restarting it would not bring the
camera back, so a liveness probe on /livez never restart-loops a pod through an outage. The
report is built by a callable the pipeline passes in, so this module knows nothing of the stages;
every string in it goes through `pipeline.config.redact_text` first, so a camera URL's password
or an error message holding one is never served.

The server binds where `metrics.address` says, loopback by default: the report shows the
cameras and the brokers, and the metrics the site's layout, to anyone who can connect.

A threaded `wsgiref` server in a daemon thread; prometheus_client provides the exposition.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from pipeline.config import ConfigError, redact_values
from pipeline.monitoring.metrics import (
    HEALTH_PATH,
    LIVE_PATH,
    METRICS_PATH,
    READY_PATH,
    PipelineMetrics,
)

__all__ = ["MetricsServer", "is_ready", "parse_address", "serve_metrics"]

log = logging.getLogger(__name__)

HealthReport = Callable[[], dict[str, Any]]
Liveness = Callable[[], bool]

_OK, _UNAVAILABLE = "200 OK", "503 Service Unavailable"


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes every few seconds
        log.debug("http: " + format, *args)


def parse_address(address: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def is_ready(report: dict[str, Any]) -> bool:
    """Whether a health report means ready: status "ok", and no sink that has lost its broker
    with messages waiting (the matcher's report does not fold its sinks into its status)."""
    sinks = report.get("sinks") or {}
    stalled = [
        name
        for name, state in sinks.items()
        if isinstance(state, dict) and state.get("connected") is False and state.get("spooled")
    ]
    return report.get("status") == "ok" and not stalled


class MetricsServer:
    """Serves `registry` and the probes on `address` ('host:port'; port 0: any free).

    Args:
        address: Where to listen.
        registry: What /metrics exposes.
        health: Builds the health report of /readyz.
        live: Whether the process still works (/livez); None: alive while it serves.
    """

    def __init__(
        self,
        address: str,
        registry: CollectorRegistry,
        health: HealthReport,
        live: Liveness | None = None,
    ) -> None:
        host, port = parse_address(address)
        self._metrics_app = make_wsgi_app(registry)
        self._health, self._live = health, live
        self._server = make_server(host, port, self._app, _ThreadingServer, _QuietHandler)
        self.port = self._server.server_port
        self.address = f"{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info(
            "serving %s, %s and %s on http://%s", METRICS_PATH, LIVE_PATH, READY_PATH, self.address
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == METRICS_PATH:
            return self._metrics_app(environ, start_response)
        if path == LIVE_PATH:
            status, report = self._liveness()
        elif path in (READY_PATH, HEALTH_PATH):
            status, report = self._readiness()
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            paths = ", ".join((METRICS_PATH, LIVE_PATH, READY_PATH))
            return [f"not found; try {paths}\n".encode()]
        body = json.dumps(redact_values(report), indent=1, default=str).encode("utf-8")
        start_response(status, [("Content-Type", "application/json")])
        return [body]

    def _liveness(self) -> tuple[str, dict[str, Any]]:
        try:
            alive = self._live is None or self._live()
        except Exception as e:  # a broken check must still answer the probe
            return _UNAVAILABLE, {"status": "dead", "error": repr(e)}
        return (_OK, {"status": "alive"}) if alive else (_UNAVAILABLE, {"status": "dead"})

    def _readiness(self) -> tuple[str, dict[str, Any]]:
        try:
            report = self._health()
        except Exception as e:  # a broken report must still answer the probe
            report = {"status": "failing", "error": repr(e)}
        return (_OK if is_ready(report) else _UNAVAILABLE), report


def serve_metrics(
    address: str, metrics: PipelineMetrics, health: HealthReport, live: Liveness | None = None
) -> MetricsServer:
    """The /metrics, /livez and /readyz endpoint on `address` ("host:port"), bound (not yet
    serving); see `MetricsServer`.

    Raises:
        ConfigError: Nothing can listen on `address` (in use, or not an address of this host).
    """
    try:
        return MetricsServer(address, metrics.registry, health, live)
    except OSError as e:
        raise ConfigError(
            f"metrics.address = {address!r}: cannot listen there ({e.strerror or e}); give "
            f"another host:port, port 0 for any free one, or an empty value for no server"
        ) from e

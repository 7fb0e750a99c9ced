"""The HTTP endpoint: Prometheus metrics at /metrics, the health report at /healthz.

    GET /metrics  the registry in Prometheus' text format (prometheus_client's WSGI app)
    GET /healthz  JSON: {"status": "ok" | "degraded" | "failing", cameras, stages, sinks, ...}
                  200 unless failing (a stage thread died, or every camera is down): 503

"degraded" (still 200) means some cameras are reconnecting or failed, or the broker is
unreachable: the process goes on serving the rest, and restarting it would not help, so the
orchestrator's liveness probe should not kill it. The report is built by a callable the
pipeline passes in, so this module knows nothing of the stages.

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

from pipeline.config import ConfigError
from pipeline.monitoring.metrics import HEALTH_PATH, METRICS_PATH, PipelineMetrics

__all__ = ["MetricsServer", "parse_address", "serve_metrics"]

log = logging.getLogger(__name__)

HealthReport = Callable[[], dict[str, Any]]


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


class MetricsServer:
    """Serves `registry` and the health report on `address` ('host:port'; port 0: any free)."""

    def __init__(self, address: str, registry: CollectorRegistry, health: HealthReport) -> None:
        host, port = parse_address(address)
        self._metrics_app = make_wsgi_app(registry)
        self._health = health
        self._server = make_server(host, port, self._app, _ThreadingServer, _QuietHandler)
        self.port = self._server.server_port
        self.address = f"{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("serving %s and %s on http://%s", METRICS_PATH, HEALTH_PATH, self.address)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == METRICS_PATH:
            return self._metrics_app(environ, start_response)
        if path == HEALTH_PATH:
            try:
                report = self._health()
            except Exception as e:  # a broken report must still answer the probe
                report = {"status": "failing", "error": repr(e)}
            status = "503 Service Unavailable" if report["status"] == "failing" else "200 OK"
            body = json.dumps(report, indent=1, default=str).encode("utf-8")
            start_response(status, [("Content-Type", "application/json")])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [f"not found; try {METRICS_PATH} or {HEALTH_PATH}\n".encode()]


def serve_metrics(address: str, metrics: PipelineMetrics, health: HealthReport) -> MetricsServer:
    """The /metrics and /healthz endpoint on `address` ("host:port"), bound (not yet serving).

    Raises:
        ConfigError: Nothing can listen on `address` (in use, or not an address of this host).
    """
    try:
        return MetricsServer(address, metrics.registry, health)
    except OSError as e:
        raise ConfigError(
            f"metrics.address = {address!r}: cannot listen there ({e.strerror or e}); give "
            f"another host:port, port 0 for any free one, or an empty value for no server"
        ) from e

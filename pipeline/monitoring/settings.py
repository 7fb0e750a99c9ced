"""Configuration section of the metrics and health endpoint (`metrics.*`; composed into the root
schema by `pipeline.settings`; see `pipeline.config` for how a schema loads)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["MetricsServerConfig"]


@dataclass(frozen=True)
class MetricsServerConfig:
    """The HTTP endpoint serving Prometheus metrics and the health report."""

    address: str = field(
        default="127.0.0.1:9400",
        metadata={
            "pattern": r"|[A-Za-z0-9_.\-]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5}",
            "help": "host:port of /metrics, /livez and /readyz (port 0: any free port; empty: no "
            "server). Loopback by default: the report names cameras and brokers, so listening on "
            "every interface (0.0.0.0:9400, as the containers do) is a choice to make explicitly.",
            "port": "listen",
        },
    )

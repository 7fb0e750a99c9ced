"""The configuration schema of the `reidstream` commands (see `pipeline.config` for how it loads).

Each section is a frozen dataclass; every leaf documents what it does and what changing it trades.
`reidstream config --list` prints this schema; `reidstream config` prints the resolved values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipeline.config import setting

__all__ = ["KafkaConfig", "ReidstreamConfig"]

_HOST_PORT = r"[A-Za-z0-9_.\-]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5}"


@dataclass(frozen=True)
class KafkaConfig:
    """Connection to the Kafka cluster that carries identity links and tracklet embeddings."""

    bootstrap_servers: tuple[str, ...] = setting(
        ("localhost:9092",),
        pattern=_HOST_PORT,
        help="Brokers to bootstrap from, as host:port. More than one keeps start-up working "
        "while a broker is down; the client discovers the rest of the cluster itself.",
    )
    client_id: str = setting(
        "reidstream",
        pattern=r"[A-Za-z0-9._\-]{1,249}",
        help="Client id sent to the brokers; appears in broker logs and quotas.",
    )
    request_timeout_ms: int = setting(
        30_000,
        ge=1_000,
        help="How long a request waits for a broker's answer. Lower fails over faster on a dead "
        "broker; higher tolerates a slow, loaded cluster.",
    )


@dataclass(frozen=True)
class ReidstreamConfig:
    """Root of the configuration tree."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting(
        "INFO", help="Least severe log level printed."
    )
    device: str = setting(
        "auto",
        pattern=r"auto|cpu|cuda(:\d+)?",
        help="Torch device for the models: 'auto' takes the first CUDA device when there is one, "
        "else the CPU.",
    )
    kafka: KafkaConfig = field(default_factory=KafkaConfig)

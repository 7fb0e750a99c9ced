"""Configuration sections of delivery (`kafka.*`, `output.*`; composed into the root schema by
`pipeline.settings`; see `pipeline.config` for how a schema loads).

    kafka    the cluster, topics, consumer group and TLS/SASL of every Kafka client
    output   where messages go (Kafka with its spool, JSONL) and how undelivered ones are kept

Plain frozen dataclasses: each leaf's `metadata` says what it does and what changing it trades.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["KafkaConfig", "OutputConfig"]

_HOST_PORT = r"[A-Za-z0-9_.\-]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5}"

#: Kafka's legal topic names.
_TOPIC = r"[A-Za-z0-9._\-]{1,249}"


@dataclass(frozen=True)
class KafkaConfig:
    """Connection to the Kafka cluster that carries identity links and tracklet embeddings."""

    bootstrap_servers: tuple[str, ...] = field(
        default=("localhost:9092",),
        metadata={
            "pattern": _HOST_PORT,
            "port": "connect",
            "help": "Brokers to bootstrap from, as host:port. More than one keeps start-up working "
            "while a broker is down; the client discovers the rest of the cluster itself.",
        },
    )
    client_id: str = field(
        default="reidstream",
        metadata={
            "pattern": r"[A-Za-z0-9._\-]{1,249}",
            "help": "Client id sent to the brokers; appears in broker logs and quotas.",
        },
    )
    request_timeout_ms: int = field(
        default=30_000,
        metadata={
            "ge": 1_000,
            "help": "How long a request waits for a broker's answer. Lower fails over faster on a "
            "dead broker; higher tolerates a slow, loaded cluster.",
        },
    )
    links_topic: str = field(
        default="reidstream.identity_links",
        metadata={
            "pattern": _TOPIC,
            "help": "Topic of the identity links (reidstream.identity_link/1), keyed by global id.",
        },
    )
    embeddings_topic: str = field(
        default="reidstream.tracklet_embeddings",
        metadata={
            "pattern": _TOPIC,
            "help": "Topic of the workers' tracklet embeddings (reidstream.tracklet_embedding/1), "
            "keyed by camera id; one matcher must read all of a site's partitions.",
        },
    )
    group_id: str = field(
        default="reidstream-matcher",
        metadata={
            "pattern": r"[A-Za-z0-9._\-]{1,249}",
            "help": "Consumer group of `reidstream matcher` (offsets are committed only after the "
            "links they produced are acknowledged).",
        },
    )
    dead_letter_topic: str | None = field(
        default=None,
        metadata={
            "pattern": _TOPIC,
            "help": "Topic `reidstream matcher` copies each record it rejects to (its key and "
            "value as they came, the reason in the header reidstream.reject.reason); default: "
            "none, rejected records are only counted and logged. Offsets are committed past "
            "them only once the copies are acknowledged.",
        },
    )
    max_poll_interval_ms: int = field(
        default=300_000,
        metadata={
            "ge": 1_000,
            "help": "Consumer group rebalance timeout of `reidstream matcher` and `consume "
            "--group`: a member silent this long is replaced. Tansu, the local test broker, "
            "completes a group join only when it expires: set 2000-3000 there.",
        },
    )
    linger_ms: int = field(
        default=5,
        metadata={
            "ge": 0,
            "help": "How long the producer waits to fill a batch; higher sends fewer, larger "
            "requests at the cost of latency.",
        },
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = field(
        default="PLAINTEXT",
        metadata={"help": "How clients talk to the brokers (passed to kafka-python)."},
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = (
        field(default=None, metadata={"help": "SASL mechanism, with a SASL_* security_protocol."})
    )
    sasl_plain_username: str | None = field(
        default=None, metadata={"help": "SASL PLAIN/SCRAM user name."}
    )
    sasl_plain_password: str | None = field(
        default=None,
        metadata={
            "secret": True,
            "help": "SASL PLAIN/SCRAM password; give it in the environment "
            "(REIDSTREAM_KAFKA__SASL_PLAIN_PASSWORD) rather than a file. Never written out.",
        },
    )
    ssl_cafile: Path | None = field(
        default=None, metadata={"help": "CA certificate file to verify brokers with."}
    )
    ssl_certfile: Path | None = field(
        default=None, metadata={"help": "Client certificate file (mutual TLS)."}
    )
    ssl_keyfile: Path | None = field(
        default=None, metadata={"help": "Client private key file (mutual TLS)."}
    )
    ssl_password: str | None = field(
        default=None,
        metadata={"secret": True, "help": "Password of ssl_keyfile. Never written out."},
    )
    ssl_check_hostname: bool = field(
        default=True,
        metadata={"help": "Check that the broker's certificate names the host connected to."},
    )

    def __post_init__(self) -> None:
        sasl = self.security_protocol.startswith("SASL")
        if sasl and self.sasl_mechanism is None:
            raise ValueError(
                f"sasl_mechanism: security_protocol = {self.security_protocol!r} needs one"
            )
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and (
            self.sasl_plain_username is None or self.sasl_plain_password is None
        ):
            raise ValueError(
                f"sasl_mechanism = {self.sasl_mechanism!r} needs sasl_plain_username and "
                f"sasl_plain_password"
            )

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments every kafka-python client of reidstream takes (connection, TLS,
        SASL); producers and consumers add their own."""
        options: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
            "security_protocol": self.security_protocol,
            "ssl_check_hostname": self.ssl_check_hostname,
        }
        optional = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_plain_username,
            "sasl_plain_password": self.sasl_plain_password,
            "ssl_cafile": self.ssl_cafile,
            "ssl_certfile": self.ssl_certfile,
            "ssl_keyfile": self.ssl_keyfile,
            "ssl_password": self.ssl_password,
        }
        options |= {k: str(v) if isinstance(v, Path) else v for k, v in optional.items() if v}
        return options


@dataclass(frozen=True)
class OutputConfig:
    """Where messages go and how undelivered ones are kept."""

    sinks: tuple[Literal["kafka", "jsonl"], ...] = field(
        default=("kafka",),
        metadata={
            "help": "Where identity links (and, from a worker, tracklet embeddings) are published: "
            "'kafka' (kafka.*; with an on-disk spool while the broker is unreachable) and/or "
            "'jsonl' (one JSON message per line in jsonl_path, for runs without Kafka)."
        },
    )
    jsonl_path: Path | None = field(
        default=None,
        metadata={"help": "File the jsonl sink appends to (default: run.out_dir/links.jsonl)."},
    )
    spool_dir: Path | None = field(
        default=None,
        metadata={
            "help": "Folder of the Kafka spool, a SQLite file of the messages the broker has not "
            "acknowledged yet; it survives restarts, so a crash loses nothing (default: "
            "run.out_dir/spool). One spool per process."
        },
    )
    spool_max_mb: float = field(
        default=512.0,
        metadata={
            "gt": 0.0,
            "help": "Bound of the spool. When it is full, publishing waits: the stages behind it "
            "fill and live cameras drop frames (counted) rather than lose a link.",
        },
    )

    def __post_init__(self) -> None:
        if not self.sinks:
            raise ValueError("sinks: expected at least one of 'kafka', 'jsonl'")
        if len(set(self.sinks)) != len(self.sinks):
            raise ValueError(f"sinks = {list(self.sinks)}: each sink at most once")

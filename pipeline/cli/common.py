"""What several commands share: the configuration arguments, logging, signals, usage errors.

Light to import (no model library): `pipeline.cli` imports a command's module to add its
arguments, and ``reidstream <command> --help`` should not wait for torch.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.config import load_config, redact_text

__all__ = [
    "COMPILE_MODES",
    "RedactingFormatter",
    "UsageError",
    "add_config_arguments",
    "add_model_arguments",
    "check_model_arguments",
    "handle_signals",
    "load_from_args",
    "setup_logging",
    "usage_errors",
]

log = logging.getLogger(__name__)

#: `deploy.engines.torch_engine.COMPILE_MODES` (compile, bench engine), written out so that
#: --help needs no torch; a test holds them equal.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class UsageError(Exception):
    """The command cannot use what it was given (a file, a combination of flags); the CLI prints
    the message and exits with status 2."""


@contextlib.contextmanager
def usage_errors(*types: type[BaseException]) -> Iterator[None]:
    """Within the block, `types` mean the user's input cannot be used: they become `UsageError`.

    For errors of general types (OSError, ValueError) that are the input's fault only in one
    phase of a command, e.g. while opening a video, not while processing it.
    """
    try:
        yield
    except types as e:
        raise UsageError(str(e)) from e


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--config FILE`` and the trailing ``KEY=VALUE`` overrides."""
    parser.add_argument("--config", metavar="FILE", help="YAML configuration file")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override a key, e.g. kafka.bootstrap_servers=broker:9092 (applied after the file "
        "and the REIDSTREAM_* environment)",
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--model NAME`` and ``--checkpoint PATH`` (export, compile): either may be left out
    when the other says the model."""
    parser.add_argument(
        "--model",
        help="registered model name (default: the one a reidstream checkpoint's model spec names)",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="trained weights (default: random init); a reidstream checkpoint also gives the "
        "model, its overrides and its input size",
    )


def check_model_arguments(args: argparse.Namespace) -> None:
    """Raises `UsageError` when neither ``--model`` nor ``--checkpoint`` was given."""
    if args.model is None and args.checkpoint is None:
        raise UsageError("give --model NAME, or a --checkpoint written by reidstream train")


def load_from_args(args: argparse.Namespace, schema: type | None = None) -> Any:
    """Resolves the command's configuration (default: `pipeline.settings.ReidstreamConfig`) from
    the parsed arguments and the environment."""
    if schema is None:
        from pipeline.settings import ReidstreamConfig

        schema = ReidstreamConfig
    return load_config(schema, path=args.config, overrides=args.overrides)


class RedactingFormatter(logging.Formatter):
    """Formats a record, then hides the credentials of every URI in the whole line (message,
    arguments and traceback alike; `pipeline.config.redact_text`): a camera URL logged by any
    library, or an error that repeats it, never shows its password."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def setup_logging(level: str) -> None:
    """Logs to stderr at `level`, every line redacted (see `RedactingFormatter`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    if level != "DEBUG":
        # kafka-python logs every failed connection attempt as an error, several a second while
        # a broker is down; the sinks report outages themselves, counted and rate-limited.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)


@contextlib.contextmanager
def handle_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT/SIGTERM call `stop` once; a second one exits at once (KeyboardInterrupt)."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    calls = 0

    def handler(signum: int, frame: Any) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise KeyboardInterrupt
        log.warning(
            "%s received: draining and delivering (again to exit now)", signal.Signals(signum).name
        )
        stop()

    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)

"""Arguments and start-up shared by the subcommands that take a configuration."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TypeVar

from deploy.engines import EngineError
from pipeline.config import load_config
from pipeline.settings import ReidstreamConfig

__all__ = [
    "add_config_arguments",
    "add_model_arguments",
    "check_model_arguments",
    "load_from_args",
    "setup_logging",
]

T = TypeVar("T")


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
    """Raises `EngineError` when neither ``--model`` nor ``--checkpoint`` was given."""
    if args.model is None and args.checkpoint is None:
        raise EngineError("give --model NAME, or a --checkpoint written by reidstream train")


def load_from_args(args: argparse.Namespace, schema: type[T] = ReidstreamConfig) -> T:
    """Resolves the command's configuration from the parsed arguments and the environment."""
    return load_config(schema, path=args.config, overrides=args.overrides)


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "DEBUG":
        # kafka-python logs every failed connection attempt as an error, several a second while
        # a broker is down; the sinks report outages themselves, counted and rate-limited.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)

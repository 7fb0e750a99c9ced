"""Arguments and start-up shared by the subcommands that take a configuration."""

from __future__ import annotations

import argparse
import logging
from typing import TypeVar

from pipeline.config import load_config
from pipeline.settings import ReidstreamConfig

__all__ = ["add_config_arguments", "load_from_args", "setup_logging"]

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


def load_from_args(args: argparse.Namespace, schema: type[T] = ReidstreamConfig) -> T:
    """Resolves the command's configuration from the parsed arguments and the environment."""
    return load_config(schema, path=args.config, overrides=args.overrides)


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "DEBUG":
        # kafka-python logs every failed connection attempt as an error, several a second while
        # a broker is down; the sinks report outages themselves, counted and rate-limited.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)

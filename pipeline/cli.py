"""The `reidstream` command line: parses, builds and runs; each subcommand lives in `commands/`.

    reidstream [--version] <command> [--config FILE] [KEY=VALUE ...]

Every command that takes a configuration resolves it through `pipeline.config.load_config`
(defaults <- --config FILE <- REIDSTREAM_* environment <- KEY=VALUE) before it does anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import version

from pipeline.commands import COMMANDS
from pipeline.config import ConfigError

__all__ = ["build_parser", "main"]

#: Exit status for a usage or configuration error (as argparse uses).
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reidstream",
        description="Real-time cross-camera person re-identification: cameras -> detector + "
        "tracker -> video ReID -> identity links on Kafka.",
    )
    parser.add_argument(
        "--version", action="version", version=f"reidstream {version('reidstream')}"
    )
    subparsers = parser.add_subparsers(title="commands", metavar="<command>")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.run(args)
    except ConfigError as e:
        print(f"reidstream: invalid configuration:\n{e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        logging.getLogger(__name__).warning("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

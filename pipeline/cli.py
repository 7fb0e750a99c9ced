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
    args = _parse(parser, argv)
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


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parses `argv`, taking KEY=VALUE overrides wherever they stand.

    argparse alone stops collecting a command's trailing positionals at the first option after
    them (`track VIDEO --save-video k=v` would reject `k=v`), so leftovers that look like
    KEY=VALUE join the overrides, in command-line order; anything else is still an error.
    """
    args, extras = parser.parse_known_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as given, for reports
    if not extras:
        return args
    takes_overrides = isinstance(getattr(args, "overrides", None), list)
    stray = [e for e in extras if not takes_overrides or e.startswith("-") or "=" not in e]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    args.overrides = [*args.overrides, *extras]
    return args


if __name__ == "__main__":
    sys.exit(main())

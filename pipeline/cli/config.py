"""`reidstream config`: print the resolved configuration, or every key with its documentation."""

from __future__ import annotations

import argparse
import textwrap

from pipeline.cli.common import add_config_arguments, load_from_args
from pipeline.config import describe_config, dump_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Resolve defaults <- --config FILE <- REIDSTREAM_* environment <- KEY=VALUE "
        "and print the result as YAML (a file that --config reads back), or with --list every "
        "key with its type, default and meaning."
    )
    parser.add_argument(
        "--list", action="store_true", help="list every key with its type, default and help"
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.settings import ReidstreamConfig

    if args.list:
        for info in describe_config(ReidstreamConfig):
            print(f"{info.key}  ({info.type}; default {info.default!r})")
            print(textwrap.indent(textwrap.fill(info.help, 92), "    "))
        return 0
    print(dump_config(load_from_args(args)), end="")
    return 0

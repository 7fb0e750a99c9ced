"""Subcommands of `reidstream`; each module has `add_parser(subparsers)` that sets `run(args)`."""

from __future__ import annotations

from pipeline.commands import (
    bench,
    compile_cmd,
    config_cmd,
    consume_cmd,
    demo_cmd,
    doctor,
    eval_cmd,
    export_cmd,
    results,
    run_cmd,
    track,
    train,
)

#: In the order `reidstream --help` lists them.
COMMANDS = (
    demo_cmd,
    run_cmd,
    consume_cmd,
    config_cmd,
    doctor,
    track,
    train,
    eval_cmd,
    results,
    export_cmd,
    compile_cmd,
    bench,
)

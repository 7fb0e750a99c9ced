"""`reidstream doctor`: check that this machine can run reidstream, and say what it would use.

The checks are `pipeline.monitoring.doctor`'s. Exit status 1 when a required component fails;
optional ones (CUDA, TensorRT, a reachable broker) only warn.
"""

from __future__ import annotations

import argparse

from pipeline.cli.common import add_config_arguments, load_from_args, setup_logging

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Exercise every component reidstream depends on and report what this machine "
        "would use. Exits 1 when a required component fails; optional ones only warn."
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.monitoring.doctor import run_checks

    cfg = load_from_args(args)
    setup_logging(cfg.log_level)
    checks = run_checks(device=cfg.device, kafka_options=cfg.kafka.client_options())
    width = max(len(c.name) for c in checks)
    for check in checks:
        print(f"{check.status:>4}  {check.name:<{width}}  {check.detail}")
    failed = [c.name for c in checks if c.status == "FAIL"]
    print(
        f"\n{len(checks)} checks: {len(failed)} failed"
        + (f" ({', '.join(failed)})" if failed else "")
    )
    return 1 if failed else 0

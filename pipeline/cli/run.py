"""`reidstream run` and `worker`: the streaming job, all in one process or its camera side.

    reidstream run     --config site.yaml [KEY=VALUE ...]   cameras -> ... -> identity links
    reidstream worker  --config site.yaml [KEY=VALUE ...]   cameras -> ... -> tracklet embeddings

With no camera configured the source is the synthetic scene (synthetic.*). SIGINT or SIGTERM
stops the cameras; what was read is still processed and delivered (run.shutdown_timeout_s at
most), then the process exits: 0, or 1 when anything was lost (`RunSummary.lost`: messages a
sink's disk still refused at the shutdown deadline, items not processed by then) or when no
camera produced a single frame (each is named with its last error). A second signal exits at
once. The matching side of a worker is `reidstream matcher`; `run` with run.workers = N > 1
runs N workers and a matcher as one job (`pipeline.processes`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from pipeline.cli.common import (
    add_config_arguments,
    handle_signals,
    load_from_args,
    setup_logging,
    usage_errors,
)
from pipeline.config import redact_text

if TYPE_CHECKING:
    from pipeline.processes import ProcessJob
    from pipeline.stream.job import Job, RunSummary

__all__ = ["add_arguments", "frames_read", "print_summary", "run"]

_ROLES = {"run": "all", "worker": "worker"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description += (
        " Without cameras in the configuration, the synthetic multi-camera scene is the source. "
        "Ends when every source has ended, or on SIGINT/SIGTERM after draining the queues."
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.assemble import build_job

    cfg = load_from_args(args)
    setup_logging(cfg.log_level)
    with usage_errors(OSError):  # a file that cannot be read; FileNotFoundError among them
        if args.command == "run" and cfg.run.workers > 1:
            from pipeline.processes import ProcessJob

            argv = [*(["--config", args.config] if args.config else []), *args.overrides]
            job: Job | ProcessJob = ProcessJob(cfg, argv)
        else:
            job = build_job(cfg, role=_ROLES[args.command])  # type: ignore[arg-type]
    with handle_signals(job.request_stop):
        summary = job.run()
    print_summary(summary)
    return 1 if summary.lost or not frames_read(summary, args.command) else 0


def frames_read(summary: RunSummary, command: str) -> bool:
    """Whether any camera produced a frame; if none did, says so on stderr, naming each camera
    and why (a job on no input at all is a failure, not an empty success)."""
    if any(state["frames"] for state in summary.cameras.values()):
        return True
    print(
        f"reidstream {command}: no camera produced a frame:",
        file=sys.stderr,
    )
    for camera, state in summary.cameras.items():
        why = state.get("last_error") or f"status {state['status']}"
        print(f"  {camera}: {redact_text(str(why))}", file=sys.stderr)
    return False


def print_summary(summary: RunSummary) -> None:
    """What the run did, for the terminal; summary.json has all of it."""
    stages = ", ".join(f"{name} {n}" for name, n in summary.stages.items())
    print(f"{summary.role} job: {summary.duration_s:.1f} s, stopped by {summary.stopped_by}")
    for camera, state in summary.cameras.items():
        print(
            f"  {camera}: {state['status']}, {state['frames']} frames, {state['dropped']} "
            f"dropped, {state['reconnects']} reconnects"
        )
    print(f"  items per stage: {stages}")
    if summary.identities is not None:
        print(f"  global identities: {summary.identities}")
    for sink, state in summary.sinks.items():
        print(f"  sink {sink}: {redact_text(json.dumps(state))}")
    if summary.score is not None:
        s = summary.score
        print(
            f"  IDF1 {100 * s['idf1']:.1f} (IDP {100 * s['idp']:.1f}, IDR {100 * s['idr']:.1f}); "
            f"{s['predicted_ids']} global ids for {s['true_ids']} people"
        )
    for name, path in summary.outputs.items():
        print(f"  {name}: {path}")
    if summary.lost:
        print(f"  LOST: {json.dumps(summary.lost)}")

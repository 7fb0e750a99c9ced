"""`reidstream run`, `worker` and `matcher`: the streaming job, all in one process or split
into its camera side and its matching side (see `pipeline.distributed`).

    reidstream run     --config site.yaml [KEY=VALUE ...]   cameras -> ... -> identity links
    reidstream worker  --config site.yaml [KEY=VALUE ...]   cameras -> ... -> tracklet embeddings
    reidstream matcher --config site.yaml [KEY=VALUE ...]   tracklet embeddings -> identity links

With no camera configured the source is the synthetic scene (synthetic.*). SIGINT or SIGTERM
stops the cameras; what was read is still processed and delivered (run.shutdown_timeout_s at
most), then the process exits. A second signal exits at once.

Exit status: 0 done; 1 the job failed; 2 a configuration error or an unusable input.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from deploy.engines import EngineError
from detectors import DetectorError
from pipeline.commands.common import add_config_arguments, load_from_args, setup_logging
from pipeline.distributed import MatcherService
from pipeline.metrics import METRICS
from pipeline.runtime import Job, RunSummary, build_matcher, build_publisher, serve_metrics

__all__ = ["add_parser", "handle_signals", "print_summary"]

log = logging.getLogger(__name__)

EXIT_USAGE = 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    for name, role, text in (
        ("run", "all", "run the pipeline: cameras -> identity links on Kafka"),
        ("worker", "worker", "run the camera side: cameras -> tracklet embeddings on Kafka"),
    ):
        parser = subparsers.add_parser(
            name,
            help=text,
            description=f"{text[0].upper()}{text[1:]}. Without cameras in the configuration, "
            "the synthetic multi-camera scene is the source. Ends when every source has ended, "
            "or on SIGINT/SIGTERM after draining the queues.",
        )
        add_config_arguments(parser)
        parser.set_defaults(run=lambda args, name=name, role=role: run(args, name, role))
    add_matcher_parser(subparsers)


@contextmanager
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


def add_matcher_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "matcher",
        help="run the matcher: tracklet embeddings on Kafka -> identity links on Kafka",
        description="Consume the workers' tracklet embeddings (kafka.embeddings_topic, consumer "
        "group kafka.group_id), assign global identities (matcher.*) and publish identity "
        "links (output.*). Offsets are committed only after the links are acknowledged. Runs "
        "until SIGINT/SIGTERM.",
    )
    add_config_arguments(parser)
    parser.set_defaults(run=run_matcher)


def run_matcher(args: argparse.Namespace) -> int:
    cfg = load_from_args(args)
    setup_logging(cfg.log_level)
    publisher = build_publisher(cfg, METRICS)
    publisher.start()
    service = MatcherService(
        cfg.kafka.client_options(),
        cfg.kafka.embeddings_topic,
        cfg.kafka.group_id,
        build_matcher(cfg),
        publisher,
        METRICS,
        max_poll_interval_ms=cfg.kafka.max_poll_interval_ms,
    )
    server = None
    if cfg.metrics.address:
        server = serve_metrics(cfg.metrics.address, METRICS, service.health)
        server.start()
    try:
        with handle_signals(service.request_stop):
            service.run()
    finally:
        publisher.close(cfg.run.shutdown_timeout_s)
        service.close()
        if server is not None:
            server.close()
    print(
        f"matcher: {service.embeddings} embeddings, {service.links} links, "
        f"{service.matcher.identities} identities, {service.committed_batches} commits, "
        f"{service.invalid} invalid and {service.duplicates} duplicate messages skipped"
    )
    return 0


def run(args: argparse.Namespace, name: str, role: str) -> int:
    cfg = load_from_args(args)
    setup_logging(cfg.log_level)
    try:
        job = Job.build(cfg, role=role)  # type: ignore[arg-type]
    except (FileNotFoundError, EngineError, DetectorError, OSError) as e:
        print(f"reidstream {name}: {e}", file=sys.stderr)
        return EXIT_USAGE
    with handle_signals(job.request_stop):
        summary = job.run()
    print_summary(summary)
    return 0


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
        print(f"  sink {sink}: {json.dumps(state)}")
    if summary.score is not None:
        s = summary.score
        print(
            f"  IDF1 {100 * s['idf1']:.1f} (IDP {100 * s['idp']:.1f}, IDR {100 * s['idr']:.1f}); "
            f"{s['predicted_ids']} global ids for {s['true_ids']} people"
        )
    for name, path in summary.outputs.items():
        print(f"  {name}: {path}")

"""`reidstream matcher`: the matching side of a distributed site (see
`pipeline.matching.service`).

    reidstream matcher --config site.yaml [KEY=VALUE ...]   tracklet embeddings -> identity links

Consumes the workers' tracklet embeddings in consumer group kafka.group_id, commits offsets
only after the links they produced are acknowledged, and runs until SIGINT/SIGTERM. The gallery
is read back from its changelog topic first (matcher.changelog); exits 1 when another matcher
of the site has fenced this one.
"""

from __future__ import annotations

import argparse

from pipeline.cli.common import add_config_arguments, handle_signals, load_from_args, setup_logging

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Consume the workers' tracklet embeddings (kafka.embeddings_topic, consumer group "
        "kafka.group_id), assign global identities (matcher.*) and publish identity links "
        "(output.*). Offsets are committed only after the links are acknowledged. Runs until "
        "SIGINT/SIGTERM."
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.assemble import build_matcher_service, build_publisher
    from pipeline.monitoring.metrics import METRICS
    from pipeline.monitoring.server import serve_metrics

    cfg = load_from_args(args)
    setup_logging(cfg.log_level)
    publisher = build_publisher(cfg, METRICS)
    publisher.start()
    service = build_matcher_service(cfg, publisher)
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
    if service.fenced:
        print("matcher: stopped: another matcher of this site took over its changelog")
        return 1
    return 0

"""`reidstream consume`: read the identity links from Kafka, print them or write them.

    reidstream consume [--group G] [--latest] [--out links.jsonl] [--json] [--max N]
                       [--idle-timeout S] [--no-check] [--dead-letter-topic T]
                       [--config FILE] [KEY=VALUE ...]

The reference consumer (`pipeline.messages.consumer.LinkConsumer`): duplicates (same event_id)
are dropped, every document is checked against the reidstream.identity_link/1 JSON Schema, and
at the end the latest global id of each tracklet is summarised. The topic and the connection
come from the kafka.* settings. Without --group every partition is read from the oldest link
kept (--latest: from now on) and nothing is committed; with a group, offsets are committed after
each batch is printed and written (--out is flushed to disk first): at-least-once, a consumer
killed in between prints those links again. A record that is not a usable link (a null value,
not JSON, against the schema) is skipped, counted by reason, logged, copied to
--dead-letter-topic if given, and committed past. Stops after --max links, --idle-timeout
seconds without a link, or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli.common import add_config_arguments, handle_signals, load_from_args, setup_logging

if TYPE_CHECKING:
    from pipeline.messages.consumer import LinkConsumer

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Read kafka.links_topic, drop duplicate links (by event_id), check them against the "
        "reidstream.identity_link/1 schema and print them (or write them as JSON lines). The "
        "example consumer for downstream teams."
    )
    parser.add_argument("--group", help="consumer group (default: none, nothing committed)")
    parser.add_argument(
        "--latest", action="store_true", help="start at the next link, not the oldest kept"
    )
    parser.add_argument("--out", type=Path, metavar="FILE", help="append links to FILE (JSONL)")
    parser.add_argument("--json", action="store_true", help="print JSON documents, one per line")
    parser.add_argument("--max", type=int, metavar="N", help="stop after N links")
    parser.add_argument(
        "--idle-timeout", type=float, metavar="S", help="stop after S seconds without a link"
    )
    parser.add_argument(
        "--no-check", action="store_true", help="skip the JSON Schema check (faster)"
    )
    parser.add_argument(
        "--dead-letter-topic",
        metavar="TOPIC",
        help="copy records that are not usable links to TOPIC (reason in a header)",
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.messages.consumer import LinkConsumer, describe_link

    cfg = load_from_args(args)
    setup_logging(cfg.log_level)
    consumer = LinkConsumer(
        cfg.kafka.client_options(),
        cfg.kafka.links_topic,
        group_id=args.group,
        from_beginning=not args.latest,
        check_schema=not args.no_check,
        max_poll_interval_ms=cfg.kafka.max_poll_interval_ms,
        dead_letter_topic=args.dead_letter_topic,
    )
    out = args.out.open("a", encoding="utf-8") if args.out else None
    stopped = False

    def request_stop() -> None:
        nonlocal stopped
        stopped = True

    def make_durable() -> None:  # before the batch's offsets are committed
        if out is not None:
            out.flush()
            os.fsync(out.fileno())

    count = 0
    with consumer, handle_signals(request_stop):
        links = consumer.follow(
            max_links=args.max,
            idle_timeout_s=args.idle_timeout,
            stop=lambda: stopped,
            on_batch=make_durable,
        )
        for received in links:
            document = json.dumps(received.document, separators=(",", ":"))
            if out is not None:
                out.write(document + "\n")
            print(document if args.json else describe_link(received.link), flush=True)
            count += 1
        print(_summary(count, consumer), file=sys.stderr)
    if out is not None:
        out.close()
    return 0


def _summary(count: int, consumer: LinkConsumer) -> str:
    rejected = ", ".join(f"{n} {reason}" for reason, n in consumer.rejects.counts.items() if n)
    return (
        f"{count} links ({consumer.duplicates} duplicates dropped, {consumer.invalid} "
        f"rejected{': ' + rejected if rejected else ''}); {consumer.summary()}"
    )

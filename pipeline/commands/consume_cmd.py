"""`reidstream consume`: read the identity links from Kafka, print them or write them.

    reidstream consume [--group G] [--latest] [--out links.jsonl] [--json] [--max N]
                       [--idle-timeout S] [--no-check] [--config FILE] [KEY=VALUE ...]

The reference consumer (`pipeline.consumer.LinkConsumer`): duplicates (same event_id) are
dropped, every document is checked against the reidstream.identity_link/1 JSON Schema, and at
the end the latest global id of each tracklet is summarised. The topic and the connection come
from the kafka.* settings. Without --group every partition is read from the oldest link kept
(--latest: from now on) and nothing is committed; with a group, offsets are committed after each
batch is printed or written.

Exit status: 0 done (--max links read, --idle-timeout passed, or SIGINT); 2 a configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from pipeline.commands.common import add_config_arguments, load_from_args, setup_logging
from pipeline.commands.run_cmd import handle_signals
from pipeline.consumer import LinkConsumer
from pipeline.types import IdentityLink

__all__ = ["add_parser", "describe_link"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "consume",
        help="print or write the identity links published on Kafka",
        description="Read kafka.links_topic, drop duplicate links (by event_id), check them "
        "against the reidstream.identity_link/1 schema and print them (or write them as JSON "
        "lines). The example consumer for downstream teams.",
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
    add_config_arguments(parser)
    parser.set_defaults(run=run)


def describe_link(link: IdentityLink) -> str:
    """One readable line: when, where, which tracklet, which person, how sure."""
    when = datetime.fromtimestamp(link.end_time, UTC).strftime("%H:%M:%S.%f")[:-4]
    how = "new identity" if link.similarity is None else f"similarity {link.similarity:.2f}"
    return (
        f"{when}  {link.camera_id:>8} track {link.track_id:<4} -> {link.global_id}  "
        f"({how}; tracklet {link.tracklet_id})"
    )


def run(args: argparse.Namespace) -> int:
    cfg = load_from_args(args)
    setup_logging(cfg.log_level)
    consumer = LinkConsumer(
        cfg.kafka.client_options(),
        cfg.kafka.links_topic,
        group_id=args.group,
        from_beginning=not args.latest,
        check_schema=not args.no_check,
    )
    out = args.out.open("a", encoding="utf-8") if args.out else None
    stop = False

    def request_stop() -> None:
        nonlocal stop
        stop = True

    count, last = 0, time.monotonic()
    with consumer, handle_signals(request_stop):
        while not stop:
            links = consumer.poll(0.5)
            if links:
                last = time.monotonic()
            for received in links:
                document = json.dumps(received.document, separators=(",", ":"))
                if out is not None:
                    out.write(document + "\n")
                print(document if args.json else describe_link(received.link), flush=True)
                count += 1
                if args.max is not None and count >= args.max:
                    stop = True
                    break
            if args.idle_timeout is not None and time.monotonic() - last > args.idle_timeout:
                break
        summary(consumer, count)
    if out is not None:
        out.close()
    return 0


def summary(consumer: LinkConsumer, count: int) -> None:
    people = Counter(link.global_id for link in consumer.latest.values())
    cross = sum(
        1
        for gid in people
        if len({link.camera_id for link in consumer.latest.values() if link.global_id == gid}) > 1
    )
    print(
        f"{count} links ({consumer.duplicates} duplicates dropped, {consumer.invalid} invalid); "
        f"{len(consumer.latest)} tracklets, {len(people)} global ids, {cross} of them seen on "
        f"more than one camera",
        file=sys.stderr,
    )

"""The `reidstream` command line: argument parsing and dispatch; the work is in the packages.

    reidstream [--version] <command> [--config FILE] [KEY=VALUE ...]

Each command is a module of this package with `add_arguments(parser)` and `run(args) -> int`,
imported only when its command is chosen: `reidstream --help` loads no model library, and a
command loads only what it uses. Every command that takes a configuration resolves it through
`pipeline.config.load_config` (defaults <- --config FILE <- REIDSTREAM_* environment <-
KEY=VALUE) before it does anything else.

Exit status, decided here for every command: 0 done; 1 a failed check or job; 2 a usage or
configuration error, or an input the command cannot use (`USAGE_ERRORS`); 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version

__all__ = ["COMMANDS", "EXIT_USAGE", "USAGE_ERRORS", "build_parser", "exit_status", "main"]

#: Exit status for a usage or configuration error, or an unusable input (as argparse uses).
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Errors that mean the command was given something it cannot use, by defining module and class
#: name, so that matching them imports nothing: a command that never loaded a module cannot
#: have raised its errors. Other exceptions are bugs and keep their traceback.
USAGE_ERRORS: dict[str, tuple[str, ...]] = {
    "pipeline.config": ("ConfigError",),
    "pipeline.cli.common": ("UsageError",),
    "pipeline.matching.changelog": ("ChangelogError",),
    "deploy.engines.base": ("EngineError",),
    "detectors.base": ("DetectorError",),
    "detectors.video": ("VideoError",),
    "trainers.datasets.base": ("DatasetError",),
    "trainers.checkpoint": ("CheckpointError",),
    "trainers.recipe": ("SetupError",),
    "trainers.adapt.store": ("StoreError",),
    "reid_models.weights": ("WeightsError",),
}


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, the module that implements it and its line in --help."""

    name: str
    module: str
    help: str


#: In the order `reidstream --help` lists them.
COMMANDS = (
    Command(
        "demo",
        "pipeline.cli.demo",
        "run the whole job on the synthetic scene, with a local broker, and score it",
    ),
    Command("run", "pipeline.cli.run", "run the pipeline: cameras -> identity links on Kafka"),
    Command(
        "worker",
        "pipeline.cli.run",
        "run the camera side: cameras -> tracklet embeddings on Kafka",
    ),
    Command(
        "matcher",
        "pipeline.cli.matcher",
        "run the matcher: tracklet embeddings on Kafka -> identity links on Kafka",
    ),
    Command(
        "consume", "pipeline.cli.consume", "print or write the identity links published on Kafka"
    ),
    Command(
        "explain",
        "pipeline.cli.explain",
        "show why the matcher linked a tracklet where it did (a run's decisions.jsonl)",
    ),
    Command("config", "pipeline.cli.config", "print the resolved configuration as YAML"),
    Command(
        "doctor", "pipeline.cli.doctor", "check the installation, devices and Kafka connectivity"
    ),
    Command(
        "track",
        "pipeline.cli.track",
        "detect and track people in a video file; write MOTChallenge results",
    ),
    Command(
        "train", "pipeline.cli.train", "train a video ReID model from a recipe and evaluate it"
    ),
    Command(
        "adapt",
        "pipeline.cli.adapt",
        "adapt a temporal ReID model to a site from its own unlabelled cameras",
    ),
    Command(
        "calibrate",
        "pipeline.cli.calibrate",
        "propose matcher.threshold from a site's own cameras, with a plot of the similarities",
    ),
    Command("eval", "pipeline.cli.eval", "evaluate trained checkpoints on the test split"),
    Command(
        "results", "pipeline.cli.results", "print published results beside measured ones (markdown)"
    ),
    Command(
        "convert",
        "pipeline.cli.convert",
        "convert a checkpoint of the official AP3D, GLTR or M3D code into a reidstream checkpoint",
    ),
    Command(
        "export",
        "pipeline.cli.export",
        "export a ReID model to ONNX or TorchScript (+ JSON sidecar) and check parity",
    ),
    Command(
        "compile",
        "pipeline.cli.compile",
        "build an optimised ONNX, a torch.compile warm-up or a cached TensorRT plan",
    ),
    Command("bench", "pipeline.cli.bench", "run a benchmark and print its figures"),
)
_BY_NAME = {c.name: c for c in COMMANDS}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser: every command listed, and the arguments of `command` (only) added.

    Args:
        command: The chosen command, whose module is imported for its arguments; None adds
            none (enough for ``reidstream --help``).
    """
    parser = argparse.ArgumentParser(
        prog="reidstream",
        description="Real-time cross-camera person re-identification: cameras -> detector + "
        "tracker -> video ReID -> identity links on Kafka.",
    )
    parser.add_argument(
        "--version", action="version", version=f"reidstream {version('reidstream')}"
    )
    subparsers = parser.add_subparsers(title="commands", metavar="<command>")
    for c in COMMANDS:
        sub = subparsers.add_parser(
            c.name, help=c.help, description=f"{c.help[0].upper()}{c.help[1:]}."
        )
        sub.set_defaults(command=c.name)
        if c.name == command:
            importlib.import_module(c.module).add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in _BY_NAME else None)
    args = _parse(parser, argv)
    if getattr(args, "command", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return importlib.import_module(_BY_NAME[args.command].module).run(args)
    except KeyboardInterrupt:
        logging.getLogger(__name__).warning("interrupted")
        return EXIT_INTERRUPTED
    except Exception as e:
        status = exit_status(e)
        if status is None:
            raise
        print(_describe(args.command, e), file=sys.stderr)
        return status


def exit_status(error: BaseException) -> int | None:
    """`EXIT_USAGE` for the errors of `USAGE_ERRORS`; None for any other (a bug)."""
    for module, names in USAGE_ERRORS.items():
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(error, tuple(getattr(loaded, n) for n in names)):
            return EXIT_USAGE
    return None


def _describe(command: str, error: BaseException) -> str:
    """The message for a usage error, credentials in it hidden (a bad value may be a URL)."""
    from pipeline.config import ConfigError, redact_text

    if isinstance(error, ConfigError):
        return redact_text(f"reidstream {command}: invalid configuration:\n{error}")
    return redact_text(f"reidstream {command}: {error}")


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parses `argv`, taking KEY=VALUE overrides wherever they stand.

    argparse alone stops collecting a command's trailing positionals at the first option after
    them (`track VIDEO --save-video k=v` would reject `k=v`), so leftovers that look like
    KEY=VALUE join the overrides, in command-line order; anything else is still an error.
    """
    args, extras = parser.parse_known_args(argv)
    args.argv = argv  # as given, for reports
    if not extras:
        return args
    takes_overrides = isinstance(getattr(args, "overrides", None), list)
    stray = [e for e in extras if not takes_overrides or e.startswith("-") or "=" not in e]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    args.overrides = [*args.overrides, *extras]
    return args

"""`reidstream bench <target>`: benchmarks that print measured figures (never assertions).

    reidstream bench loader|engine|detector|temporal|models|pipeline|site|matcher [ARGS ...]

Every target's arguments are defined here and nowhere else (argparse only). Nothing heavy is
imported at module level, so ``reidstream bench [<target>] --help`` loads neither torch nor
OpenCV; choices owned by a heavy module are written out (`INDEX_KINDS` here, `COMPILE_MODES` in
`pipeline.cli.common`) and a test holds them equal to their source. The work is in
`pipeline.bench.<target>`, imported when the target runs and called with keyword arguments.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.cli.common import COMPILE_MODES, UsageError, add_config_arguments, setup_logging

__all__ = ["INDEX_KINDS", "TARGETS", "add_arguments", "parse_size", "parse_variant", "run"]

#: `pipeline.matching.matcher.INDEX_KINDS`, written out so that --help needs no numpy or scipy.
INDEX_KINDS = ("exact", "faiss")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Measure one part of reidstream on this machine and print the figures."
    targets = parser.add_subparsers(title="targets", metavar="<target>", dest="target")
    targets.required = True
    for name, target in TARGETS.items():
        sub = targets.add_parser(name, help=target.help, description=target.description)
        target.add_arguments(sub)
        sub.add_argument("--log-level", default="WARNING", help="logging level")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    return TARGETS[args.target].run(args)


# ----------------------------------------------------------------------------- argument types


def parse_size(text: str) -> tuple[int, int]:
    """``"256x128"`` -> (256, 128): frame height and width."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected HxW, e.g. 256x128") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"size {text!r}: both sides must be >= 1")
    return h, w


#: A variant's label: it names the variant's output folder, so no path separators or spaces.
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
#: The comma before a variant's next KEY=: a value may itself hold commas (sinks=jsonl,kafka).
_NEXT_KEY = re.compile(r",(?=\s*[A-Za-z_][A-Za-z0-9_.]*\s*=)")


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``"k3-320:detect.max_batch=3,tracklets.stride=4"`` -> ("k3-320", ["detect.max_batch=3",
    "tracklets.stride=4"]): a label and the KEY=VALUE overrides of the job's configuration
    (checked against the schema when the benchmark resolves it)."""
    label, sep, rest = text.partition(":")
    example = "e.g. k3:detect.max_batch=3,tracklets.stride=4"
    if not sep or not _LABEL.fullmatch(label):
        raise argparse.ArgumentTypeError(
            f"variant {text!r}: expected LABEL:KEY=VALUE[,KEY=VALUE...], {example}; a label is "
            "letters, digits, '_', '.', '+' and '-'"
        )
    overrides = [item.strip() for item in _NEXT_KEY.split(rest)]
    bad = [item for item in overrides if "=" not in item or not item.partition("=")[0].strip()]
    if bad:
        raise argparse.ArgumentTypeError(
            f"variant {text!r}: {', '.join(map(repr, bad))} is not KEY=VALUE ({example})"
        )
    return label, overrides


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _indexes(text: str) -> list[str]:
    values = text.split(",")
    unknown = [v for v in values if v not in INDEX_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown index {', '.join(unknown)}: expected some of {', '.join(INDEX_KINDS)}"
        )
    return values


def _file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: no such file")
    return path


def _check_models(names: Sequence[str]) -> None:
    """Raises `UsageError` naming the registered models when one of `names` is not."""
    from reid_models import list_models

    unknown = [n for n in names if n not in list_models()]
    if unknown:
        raise UsageError(
            f"unknown model {', '.join(unknown)}; registered: {', '.join(list_models())}"
        )


# ------------------------------------------------------------------------------------- loader


def _loader_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root", type=Path, help="MARS root (default: render a temporary synthetic one)"
    )
    parser.add_argument("--model", default="ap3d_r50", help="model whose PretrainedCfg to load for")
    parser.add_argument("--workers", type=int, default=2, help="loader worker processes")
    parser.add_argument("--batch", type=int, default=32, help="clips per batch (P x K)")
    parser.add_argument("--instances", type=int, default=4, help="K: clips per identity")
    parser.add_argument("--seconds", type=float, default=20.0, help="time the loader this long")


def _run_loader(args: argparse.Namespace) -> int:
    from pipeline.bench import loader

    _check_models([args.model])
    loader.run(
        root=args.root,
        model=args.model,
        workers=args.workers,
        batch_size=args.batch,
        num_instances=args.instances,
        seconds=args.seconds,
    )
    return 0


# ------------------------------------------------------------------------------------- engine


def _engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models", nargs="+", default=["c2d_r50", "ap3d_r50"], metavar="NAME",
        help="registered models, or image ReID .onnx files (with --engines external-onnx openvino)",
    )  # fmt: skip
    parser.add_argument(
        "--engines", nargs="+", default=["torch"], metavar="ENGINE",
        help="torch, onnxruntime and/or tensorrt; for an .onnx image model external-onnx "
        "(ONNX Runtime) and/or openvino (the same file converted to OpenVINO IR, fp32)",
    )  # fmt: skip
    parser.add_argument(
        "--precisions", nargs="+", default=["fp32"], choices=["fp32", "fp16", "bf16", "int8"]
    )
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8], metavar="B")
    parser.add_argument("--clip-len", type=int, default=4, metavar="T", help="frames per clip")
    parser.add_argument("--size", type=parse_size, default=(256, 128), help="frame HxW")
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per row")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    parser.add_argument("--device", default="cpu", help="cpu or cuda:N")
    parser.add_argument("--checkpoint", type=Path, help="weights (default: random init)")
    parser.add_argument(
        "--compile", default="none", choices=["none", *COMPILE_MODES],
        help="torch engine: torch.compile mode (none: eager)",
    )  # fmt: skip
    parser.add_argument("--channels-last", action="store_true", help="torch: channels_last_3d")
    parser.add_argument(
        "--frame-convs", action="store_true", help="torch: per-frame Conv3d run as conv2d"
    )
    parser.add_argument(
        "--no-freezing", action="store_true", help="torch.compile without Inductor freezing"
    )
    parser.add_argument("--cache-dir", type=Path, help="tensorrt: engine cache folder")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the rows as JSON")


def _run_engine(args: argparse.Namespace) -> int:
    from pipeline.bench import engine

    _check_models([m for m in args.models if not m.lower().endswith(".onnx")])
    missing = [m for m in args.models if m.lower().endswith(".onnx") and not Path(m).is_file()]
    if missing:
        raise UsageError(f"image ReID model file(s) not found: {', '.join(missing)}")
    settings = engine.EngineSettings(
        clip_len=args.clip_len,
        size=args.size,
        seconds=args.seconds,
        warmup=args.warmup,
        device=args.device,
        checkpoint=args.checkpoint,
        compile=args.compile,
        channels_last=args.channels_last,
        frame_convs=args.frame_convs,
        freezing=not args.no_freezing,
        cache_dir=args.cache_dir,
    )
    rows = engine.run(
        models=args.models,
        engines=args.engines,
        precisions=args.precisions,
        batch_sizes=args.batch_sizes,
        settings=settings,
        json_path=args.json,
    )
    return 0 if rows else 1


# ----------------------------------------------------------------------------------- detector


def _detector_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", type=_file, required=True, help="YOLOv5 ONNX (COCO)")
    parser.add_argument(
        "--video", type=_file, action="append", required=True, help="video file (repeatable)"
    )
    parser.add_argument("--frames", type=int, default=100, help="frames per video and row")
    parser.add_argument("--tracker", default="bytetrack", choices=["bytetrack", "botsort"])
    parser.add_argument("--pt-yaml", help="also time a random-weight .pt of this architecture")
    parser.add_argument(
        "--input-sizes",
        type=_ints,
        metavar="S,..",
        help="instead: onnx-yolo at these input sizes (longer side, multiples of 32) against its "
        "640 square input: ms/frame, recall and precision at IoU 0.5",
    )


def _run_detector(args: argparse.Namespace) -> int:
    from pipeline.bench import detector

    detector.run(
        weights=args.weights,
        videos=args.video,
        frames=args.frames,
        tracker=args.tracker,
        pt_yaml=args.pt_yaml,
        input_sizes=args.input_sizes,
    )
    return 0


def _interval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", type=_file, required=True, help="YOLOv5 ONNX (COCO)")
    parser.add_argument(
        "--video", type=_file, action="append", required=True, help="video file (repeatable)"
    )
    parser.add_argument("--frames", type=int, default=300, help="frames per video")
    parser.add_argument(
        "--intervals", type=_ints, default=[2, 3, 5], help="detection intervals, e.g. 2,3,5"
    )


def _run_interval(args: argparse.Namespace) -> int:
    from pipeline.bench import interval

    interval.run(
        weights=args.weights, videos=args.video, frames=args.frames, intervals=args.intervals
    )
    return 0


# ----------------------------------------------------------------------------------- temporal


def _temporal_arguments(parser: argparse.ArgumentParser) -> None:
    recipe = "default: the synthetic recipe's"
    parser.add_argument("--root", type=Path, help="synthetic dataset (generated when absent)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--ids", type=int, default=24, help="train and test identities each")
    parser.add_argument("--models", nargs="+", default=["c2d_r18", "ap3d_r18"])
    parser.add_argument("--out", type=Path, help="checkpoints folder (default: a temporary one)")
    parser.add_argument("--clip-len", type=int, help=f"frames per clip ({recipe})")
    parser.add_argument(
        "--sampling", choices=("stride", "consecutive"), help=f"clip sampling ({recipe})"
    )
    parser.add_argument("--stride", type=int, help=f"frames between samples ({recipe})")
    parser.add_argument("--device", default="cpu", help="e.g. cuda:0")
    parser.add_argument("--workers", type=int, default=0, help="loader processes")


def _run_temporal(args: argparse.Namespace) -> int:
    from pipeline.bench import temporal

    _check_models(args.models)
    temporal.run(
        root=args.root,
        epochs=args.epochs,
        ids=args.ids,
        models=args.models,
        out=args.out,
        clip_len=args.clip_len,
        sampling=args.sampling,
        stride=args.stride,
        device=args.device,
        workers=args.workers,
    )
    return 0


# ------------------------------------------------------------------------------------- models


def _models_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models", nargs="+", metavar="NAME", help="models to measure (default: every registered)"
    )


def _run_models(args: argparse.Namespace) -> int:
    from pipeline.bench import models

    if args.models is not None:
        _check_models(args.models)
    models.run(models=args.models)
    return 0


# ----------------------------------------------------------------------------------- pipeline


def _pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--clip", type=Path, help="video replayed as every camera (default: the synthetic scene)"
    )
    parser.add_argument(
        "--cameras",
        type=int,
        help="cameras (the sweep's first point); default 1 for a clip, 2 for the synthetic scene",
    )
    parser.add_argument("--sweep", action="store_true", help="find the most cameras kept up with")
    parser.add_argument("--max-cameras", type=int, help="sweep bound (default 64; 16 synthetic)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument(
        "--null-detector",
        action="store_true",
        help="boxes without a detector (pipeline.bench.nulls.NullDetector)",
    )
    parser.add_argument("--people", type=int, default=8, help="boxes per frame of --null-detector")
    parser.add_argument(
        "--null-reid",
        action="store_true",
        help="embeddings without a model (pipeline.bench.nulls.NullEngine)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive baseline")
    parser.add_argument(
        "--variant",
        type=parse_variant,
        action="append",
        default=[],
        metavar="LABEL:KEY=VALUE[,KEY=VALUE...]",
        help="measure the job with these overrides on top of the configuration, under LABEL "
        "(repeatable: the variants run side by side; default: the job as configured, labelled "
        "reidstream)",
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=1,
        metavar="N",
        help="rounds of the whole set (baseline, then each variant), interleaved; the report "
        "gives the median and range over them",
    )
    parser.add_argument(
        "--processes",
        action="store_true",
        help="measure every variant as a `reidstream run` process from outside, its /metrics "
        "and links (as variants with run.workers > 1 always are), so that process counts "
        "compare alike; needs --clip",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/bench-pipeline"), help="output folder"
    )


def _run_pipeline(args: argparse.Namespace) -> int:
    from pipeline.bench import report

    report.run(
        config=args.config,
        overrides=args.overrides,
        variants=args.variant,
        repeat=args.repeat,
        clip=args.clip,
        cameras=args.cameras,
        sweep_cameras=args.sweep,
        max_cameras=args.max_cameras,
        duration=args.duration,
        warmup=args.warmup,
        null_detector=args.people if args.null_detector else None,
        null_reid=args.null_reid,
        processes=args.processes,
        baseline=not args.no_baseline,
        out=args.out,
        command=shlex.join(["reidstream", *args.argv]),
    )
    return 0


# --------------------------------------------------------------------------------------- site


def _site_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--truth",
        type=Path,
        required=True,
        help="folder of hand-checked identities: <camera id>.txt, rows frame,person,x1,y1,x2,y2",
    )
    parser.add_argument(
        "--start-s",
        type=float,
        default=0.0,
        help="score the footage from this second on (what adaptation did not see)",
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        help="an adapted model (reidstream adapt's model.pt) to score beside the configured one; "
        "repeatable",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench-site"), help="output folder")


def _run_site(args: argparse.Namespace) -> int:
    from pipeline.bench import site

    site.run(
        config=args.config,
        overrides=args.overrides,
        truth=args.truth,
        start_s=args.start_s,
        checkpoints=args.checkpoint,
        out=args.out,
        command=shlex.join(["reidstream", *args.argv]),
    )
    return 0


# ------------------------------------------------------------------------------------ matcher


def _matcher_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--identities", type=_ints, default=[1000, 10000, 100000], metavar="N,..")
    parser.add_argument("--dim", type=_ints, default=[512, 2048], metavar="D,..")
    parser.add_argument("--batch", type=int, default=32, help="clips per update")
    parser.add_argument("--batches", type=int, default=50, help="timed updates per row")
    parser.add_argument(
        "--index", type=_indexes, default=list(INDEX_KINDS), metavar="KIND,..",
        help=f"search of the above-threshold identities: some of {', '.join(INDEX_KINDS)}",
    )  # fmt: skip
    parser.add_argument(
        "--nprobe", type=_ints, default=[64], metavar="P,..", help="faiss: lists searched"
    )
    parser.add_argument("--cameras", type=int, default=8, help="cameras of the gallery")
    parser.add_argument("--seed", type=int, default=0, help="seed of the gallery and queries")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the rows as JSON")


def _run_matcher(args: argparse.Namespace) -> int:
    from pipeline.bench import matcher

    rows = matcher.run(
        identities=args.identities,
        dims=args.dim,
        indexes=args.index,
        nprobes=args.nprobe,
        batch=args.batch,
        batches=args.batches,
        cameras=args.cameras,
        seed=args.seed,
        json_path=args.json,
    )
    return 0 if rows else 1


# ------------------------------------------------------------------------------------ targets


@dataclass(frozen=True)
class Target:
    """A benchmark: its line in ``reidstream bench --help``, its description, its arguments and
    the function that runs it (exit status)."""

    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


#: In the order `reidstream bench --help` lists them.
TARGETS = {
    "loader": Target(
        "training loader throughput (clips/s) on a MARS-format tree",
        "Measure the training data loader of a model: frame decode rate and clips/s in one "
        "process, then clips/s out of the DataLoader with --workers workers.",
        _loader_arguments,
        _run_loader,
    ),
    "engine": Target(
        "ReID engine throughput: clips/s, latency p50/p99, GFLOP/s, share of bf16 peak",
        "Time engine.embed per model, engine, precision and batch size; print a Markdown table "
        "(and --json). On a GPU the bf16 matmul peak is measured in the same run.",
        _engine_arguments,
        _run_engine,
    ),
    "detector": Target(
        "detector + tracker throughput on videos: frames/s per backend beside model.track()",
        "Detect and track people in the first --frames frames of each video with every detector "
        "backend (YOLOv5 ONNX through ONNX Runtime and through Ultralytics, OpenCV HOG) and the "
        "tracker wrapper, then with Ultralytics' own model.track() loop; print steady-state "
        "frames/s and ms per stage as a Markdown table.",
        _detector_arguments,
        _run_detector,
    ),
    "interval": Target(
        "detect.interval: the tracker's predicted boxes on skipped frames against detecting all",
        "Run the detector on every frame of each video, then ByteTrack with the detections of "
        "every k-th frame only, predicting the frames between as the streaming job does; print "
        "how well the predicted boxes overlap the every-frame tracks (IoU) as a Markdown table.",
        _interval_arguments,
        _run_interval,
    ),
    "temporal": Target(
        "does temporal modelling pay off? C2D against temporal ResNet-18s, trained here",
        "Train each model with the synthetic recipe on identities that look alike and differ "
        "only in walking cadence; print its mAP and rank-1 beside the chance level.",
        _temporal_arguments,
        _run_temporal,
    ),
    "models": Target(
        "model sizes: parameters and multiply-accumulates beside the papers' figures",
        "Count each model's parameters and multiply-accumulates at its paper's training clip "
        "(batch 1) and print them beside the papers' figures, then the other figures the papers "
        "print or the specs derive (Markdown).",
        _models_arguments,
        _run_models,
    ),
    "pipeline": Target(
        "the job on N live cameras: per-stage load, frames/s, frame-to-link latency, "
        "the most cameras kept up with, against a naive baseline",
        "Replay a clip as N live cameras (or run the synthetic scene with N cameras) "
        "through the job and report, per stage, items/s, busy fraction, batch sizes, latency "
        "and queue depth, and end to end, frames/s per camera, drops, frame-to-link latency, "
        "CPU, RSS and GPU use; with --sweep, the most cameras it keeps up with. The naive "
        "baseline (one loop per camera, one ReID call per clip) runs on the same cameras. "
        "Each --variant runs the job with its own overrides beside it; --repeat N runs the set "
        "N times, interleaved, and reports the median and range and the ratios to the baseline.",
        _pipeline_arguments,
        _run_pipeline,
    ),
    "site": Target(
        "a site's recordings with hand-checked identities: pair mAP, rank-1 and IDF1 per model",
        "Run the job on the configured camera files (from --start-s on) with the configured ReID "
        "model and with each --checkpoint; score cross-camera pair mAP / rank-1 of the "
        "tracklets and the IDF1 of the global ids against the hand-checked identities.",
        _site_arguments,
        _run_site,
    ),
    "matcher": Target(
        "cross-camera matching: ms per batch and memory against 1k-100k identities",
        "Time Matcher.update on query batches against synthetic galleries per size, "
        "embedding size and index; print a Markdown table (and --json).",
        _matcher_arguments,
        _run_matcher,
    ),
}

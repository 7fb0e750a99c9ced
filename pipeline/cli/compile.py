"""`reidstream compile`: prepare a ReID model for one runtime ahead of serving.

    reidstream compile --engine onnxruntime|torch-compile|tensorrt [--model NAME]
                       [--checkpoint PATH] [--out DIR] [--device cpu|cuda:N] [--precision P]
                       [--clip-len T] [--batch B] [--min-batch N] [--opt-batch N]
                       [--workspace-gib G] [--calibration-dir DIR] [--cache-dir DIR]
                       [--compile-mode MODE]

    onnxruntime    DIR/NAME.onnx + DIR/NAME.opt.onnx (ONNX Runtime's optimised graph), parity
    torch-compile  torch.compile warm-up: compile seconds and steady latency
    tensorrt       DIR/NAME.onnx + the TensorRT plan in the engine cache (a rerun is a cache hit)

The work is `deploy.compile.compile_model`. Exit status: 0 done; 2 a usage error, an unusable
model or checkpoint, or a runtime that is not installed (the message says how to install it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.common import (
    COMPILE_MODES,
    add_model_arguments,
    check_model_arguments,
    setup_logging,
    usage_errors,
)

#: `deploy.compile.COMPILE_TARGETS`, written out so that --help needs no torch (a test holds
#: them equal).
COMPILE_TARGETS = ("onnxruntime", "torch-compile", "tensorrt")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Build and cache what one runtime needs to serve a model, and report the "
        "build time (and, for onnxruntime, the optimised graph's agreement with PyTorch)."
    )
    parser.add_argument("--engine", required=True, choices=COMPILE_TARGETS, help="runtime")
    add_model_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("compiled"), metavar="DIR")
    parser.add_argument("--device", default=None, help="cpu or cuda:N (tensorrt: cuda:0)")
    parser.add_argument("--precision", default=None, help="fp32, fp16, bf16 or int8 (tensorrt)")
    parser.add_argument("--clip-len", type=int, help="T of the graph (default: the model's)")
    parser.add_argument("--batch", type=int, default=8, help="max batch (tensorrt profile max)")
    parser.add_argument("--min-batch", type=int, default=1, help="tensorrt: profile min")
    parser.add_argument("--opt-batch", type=int, help="tensorrt: profile opt (default: --batch)")
    parser.add_argument("--workspace-gib", type=float, default=4.0, help="tensorrt workspace")
    parser.add_argument("--calibration-dir", type=Path, help="tensorrt int8: folder of clips")
    parser.add_argument("--cache-dir", type=Path, help="tensorrt: engine cache (DIR/engines)")
    parser.add_argument(
        "--compile-mode", default="default", choices=COMPILE_MODES, help="torch-compile mode"
    )
    parser.add_argument("--log-level", default="INFO", help="logging level")


def _options(args: argparse.Namespace) -> dict[str, object]:
    """`compile_model`'s target-specific keyword arguments from the flags."""
    if args.engine == "onnxruntime":
        return {"clip_len": args.clip_len}
    if args.engine == "torch-compile":
        return {
            "precision": args.precision or "fp32",
            "batch": args.batch,
            "clip_len": args.clip_len,
            "mode": args.compile_mode,
        }
    options: dict[str, object] = {
        "clip_len": args.clip_len,
        "precision": args.precision or "fp16",
        "min_batch": args.min_batch,
        "opt_batch": args.opt_batch or args.batch,
        "max_batch": args.batch,
        "workspace_gib": args.workspace_gib,
        "calibration_dir": args.calibration_dir,
    }
    if args.cache_dir is not None:
        options["cache_dir"] = args.cache_dir
    return options


def run(args: argparse.Namespace) -> int:
    from deploy.compile import compile_model

    setup_logging(args.log_level)
    device = args.device or ("cuda:0" if args.engine == "tensorrt" else "cpu")
    check_model_arguments(args)
    with usage_errors(ValueError):
        result = compile_model(
            args.engine,
            model_name=args.model,
            checkpoint=args.checkpoint,
            out_dir=args.out,
            device=device,
            **_options(args),
        )
    origin = " (cache hit)" if result.cache_hit else ""
    print(f"{result.target} {result.model}: {result.seconds:.1f} s{origin}")
    if result.path is not None:
        print(f"wrote {result.path}")
    for key, value in result.details.items():
        print(f"  {key}: {value:.6g}" if isinstance(value, float) else f"  {key}: {value}")
    return 0

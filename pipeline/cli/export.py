"""`reidstream export`: write a model's graph (ONNX or TorchScript) and check it against PyTorch.

    reidstream export --model NAME [--checkpoint PATH] --format onnx|torchscript --out DIR
                      [--clip-len T] [--opset 17] [--parity-clips 4]
    reidstream export --checkpoint runs/x/best.pt ...   the checkpoint's model spec names the
                                                        model, its overrides and PretrainedCfg

    model (+ checkpoint) ─ deploy.export ─▶ DIR/NAME.onnx | DIR/NAME.ts   batch axis dynamic
                                           DIR/NAME.json                 sidecar (PretrainedCfg, T)
      ─ the written file run by its engine (onnxruntime | torch) on random clips, beside the eager
        fp32 model ─▶ "parity: min cosine ..., mean cosine ..., max abs ..."

A model or checkpoint that cannot be used exits with status 2 (`pipeline.cli`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.common import (
    add_model_arguments,
    check_model_arguments,
    setup_logging,
    usage_errors,
)

_SUFFIX = {"onnx": ".onnx", "torchscript": ".ts"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write the model's graph with a dynamic batch axis and its JSON sidecar, "
        "then run the written file on random clips and print its agreement with PyTorch."
    )
    add_model_arguments(parser)
    parser.add_argument("--format", choices=sorted(_SUFFIX), default="onnx", help="graph format")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--clip-len", type=int, help="T of the graph (default: the model's)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset")
    parser.add_argument("--parity-clips", type=int, default=4, help="clips in the parity check")
    parser.add_argument("--log-level", default="WARNING", help="logging level")


def run(args: argparse.Namespace) -> int:
    from deploy.compile import random_clips
    from deploy.engines import create_engine
    from deploy.engines.torch_engine import load_model
    from deploy.export import export_onnx, export_torchscript, parity

    setup_logging(args.log_level)
    check_model_arguments(args)
    with usage_errors(ValueError):
        model = load_model(args.model, checkpoint=args.checkpoint)
        name = args.model or model.model_name
        path = args.out / f"{name}{_SUFFIX[args.format]}"
        if args.format == "onnx":
            export_onnx(model, path, clip_len=args.clip_len, opset=args.opset, model_name=name)
            engine = create_engine("onnxruntime", onnx_path=path, max_batch=args.parity_clips)
        else:
            export_torchscript(model, path, clip_len=args.clip_len, model_name=name)
            engine = create_engine("torch", checkpoint=path, max_batch=args.parity_clips)
    with engine:
        clips = random_clips(model, batch=args.parity_clips, clip_len=engine.clip_len or 1)
        report = parity(model, engine, clips)
    print(f"wrote {path}")
    print(f"wrote {path.with_suffix('.json')}")
    print(
        f"parity vs PyTorch ({args.parity_clips} clips, {engine.name}): min cosine "
        f"{report.min_cosine:.6f}, mean cosine {report.mean_cosine:.6f}, "
        f"max abs {report.max_abs:.2e}"
    )
    return 0

"""Throughput of the ReID engines per model, engine, precision and batch size.

    python -m deploy.benchmark --models c2d_r50 ap3d_r50 --engines torch onnxruntime \\
        --precisions fp32 bf16 --batch-sizes 1 8 64 --clip-len 4 --size 256x128 \\
        [--seconds 5] [--device cuda:0] [--compile max-autotune] [--channels-last] \\
        [--frame-convs] [--json OUT.json]

(also `reidstream bench engine ...`, same arguments). For every combination, in one process:

    engine.embed(clips)     clips (B, T, H, W, 3) uint8 already on the engine's device
      ├─ warm-up calls (compilation, cuDNN autotuning, TensorRT plan load) left out
      └─ timed calls for --seconds: wall time per call, the device synchronised around each
         (embed returns host memory, so a call ends when the GPU has finished)
         ─▶ clips/s, latency p50 / p99 per call

    FLOPs per clip: counted once per model with torch.utils.flop_counter.FlopCounterMode on the
    eager fp32 model (every matmul and convolution, as `reid_models.summary` counts them:
    FLOPs = 2 x MACs) at the benchmarked T and size ─▶ achieved GFLOP/s = clips/s x FLOPs.
    On a GPU, the peak it is compared with is measured in the same run: the best of several
    timings of a bf16 torch.matmul of 8192^3 (`measure_bf16_peak`).

What the figures include: preprocessing on the device (uint8 -> float, normalise; the resize is a
no-op at the model's size) and the copy of the (B, D) embeddings to the host; not the upload of
the crops. Without --checkpoint the weights are a random init drawn from one seed, so every run
times the same network (some draws make bf16 activations overflow, which the engine refuses as
non-finite embeddings). Not a test: the numbers depend on the machine and its load; the CPU's
load average is printed beside them.

GPU settings that raise throughput (each a flag, none changes the function computed):
``--precisions bf16`` (autocast; under `torch.compile` with freezing the weights are cast once),
``--channels-last`` (channels_last_3d), ``--frame-convs`` (per-frame Conv3d as conv2d, see
`deploy.compile.frame_convs_as_2d`), ``--compile MODE`` (Inductor with freezing: BatchNorm folded
into the convolutions; ``reduce-overhead``/``max-autotune`` add CUDA graphs); cuDNN autotuning
(``torch.backends.cudnn.benchmark``) is on for every CUDA row.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from deploy.compile import frame_convs_as_2d, inductor_freezing
from deploy.engines import create_engine
from deploy.engines.base import Engine, EngineError
from deploy.engines.torch_engine import COMPILE_MODES, load_model
from reid_models.base import ReIDModel

__all__ = [
    "BenchRow",
    "add_arguments",
    "flops_per_clip",
    "format_table",
    "main",
    "measure_bf16_peak",
    "parse_size",
    "run",
    "run_benchmark",
]

logger = logging.getLogger(__name__)

#: Seed of the random init when no checkpoint is given.
INIT_SEED = 0


@dataclass(frozen=True)
class BenchRow:
    """One measured (model, engine, precision, batch) combination.

    Attributes:
        gflop_per_clip: FLOPs of one clip's forward pass, in 1e9.
        gflops: Achieved GFLOP/s (clips/s x gflop_per_clip).
        peak_fraction: `gflops` over the measured bf16 matmul peak (GPU rows only).
        options: The engine options of the row (compile mode, layouts).
    """

    model: str
    engine: str
    precision: str
    batch: int
    clip_len: int
    size: str
    device: str
    calls: int
    clips_per_s: float
    p50_ms: float
    p99_ms: float
    gflop_per_clip: float
    gflops: float
    peak_fraction: float | None
    options: str


def parse_size(text: str) -> tuple[int, int]:
    """``"256x128"`` -> (256, 128): frame height and width."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected HxW, e.g. 256x128") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"size {text!r}: both sides must be >= 1")
    return h, w


def flops_per_clip(model: ReIDModel, *, clip_len: int, size: tuple[int, int]) -> float:
    """FLOPs of one (1, C, clip_len, H, W) forward pass of eval-mode `model` on the CPU."""
    channels = model.pretrained_cfg.input_size[0]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(torch.zeros(1, channels, clip_len, *size))
    return float(counter.get_total_flops())


def measure_bf16_peak(device: str, *, n: int = 8192, repeats: int = 5, iters: int = 10) -> float:
    """The best bf16 matmul rate on `device` in FLOP/s: (n x n) @ (n x n), CUDA-event timed."""
    gen = torch.Generator(device).manual_seed(0)
    a = torch.randn(n, n, device=device, generator=gen).to(torch.bfloat16)
    b = torch.randn(n, n, device=device, generator=gen).to(torch.bfloat16)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            a @ b
        end.record()
        end.synchronize()
        best = max(best, iters * 2 * n**3 / (start.elapsed_time(end) / 1e3))
    return best


def _build_model(name: str, *, size: tuple[int, int], checkpoint: Path | None) -> ReIDModel:
    # The same random init in every run; the caller's RNG is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        model = load_model(name, checkpoint=checkpoint)
    c = model.pretrained_cfg.input_size[0]
    # The benchmarked size becomes the model's input size, so preprocessing does not resize.
    model.pretrained_cfg = model.pretrained_cfg.with_changes(input_size=(c, *size))
    return model


def _make_engine(
    engine: str, model: ReIDModel, *, name: str, args: argparse.Namespace, row: dict[str, Any]
) -> Engine:
    """The engine `engine` for `model` at ``row``'s precision and batch; exports the ONNX graph
    once per model."""
    work: Path = row["work"]
    common = {"device": args.device, "precision": row["precision"], "max_batch": row["batch"]}
    if engine == "torch":
        if args.frame_convs:
            frame_convs_as_2d(model)
        options = {"channels_last": args.channels_last, "compile": args.compile != "none"}
        if args.compile != "none":
            options["compile_mode"] = args.compile
        return create_engine("torch", model=model, **common, **options)
    onnx_path = work / f"{name}-T{args.clip_len}-{args.size[0]}x{args.size[1]}.onnx"
    if not onnx_path.exists():
        from deploy.export import export_onnx

        export_onnx(model, onnx_path, clip_len=args.clip_len, model_name=name)
    if engine == "tensorrt":
        cache = args.cache_dir or work / "engines"
        return create_engine("tensorrt", onnx_path=onnx_path, cache_dir=cache, **common)
    return create_engine(engine, onnx_path=onnx_path, model=name, **common)


def _time_calls(engine: Engine, clips: torch.Tensor, *, seconds: float, warmup: int) -> list[float]:
    """Seconds per `embed` call after `warmup` calls; at least 3 calls, then until `seconds`."""
    cuda = clips.device.type == "cuda"
    for _ in range(warmup):
        engine.embed(clips)
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(times) < 3 or time.perf_counter() < deadline:
        if cuda:
            torch.cuda.synchronize(clips.device)
        start = time.perf_counter()
        engine.embed(clips)
        if cuda:
            torch.cuda.synchronize(clips.device)
        times.append(time.perf_counter() - start)
    return times


def _options_label(engine: str, args: argparse.Namespace) -> str:
    if engine != "torch":
        return ""
    parts = [f"compile={args.compile}" if args.compile != "none" else "eager"]
    if args.channels_last:
        parts.append("channels_last")
    if args.frame_convs:
        parts.append("frame_convs_2d")
    if args.compile != "none" and not args.no_freezing:
        parts.append("freezing")
    return " ".join(parts)


def _bench_one(
    name: str, engine_name: str, *, args: argparse.Namespace, row: dict[str, Any]
) -> BenchRow:
    """Measures one combination; ``row`` holds precision, batch, flops, peak and work folder."""
    batch, flops, peak = row["batch"], row["flops"], row["peak"]
    model = _build_model(name, size=args.size, checkpoint=args.checkpoint)
    gen = torch.Generator().manual_seed(0)
    shape = (batch, args.clip_len, *args.size, 3)
    clips = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen).to(args.device)
    with inductor_freezing(not args.no_freezing):
        engine = _make_engine(engine_name, model, name=name, args=args, row=row)
        with engine:
            times = _time_calls(engine, clips, seconds=args.seconds, warmup=args.warmup)
    clips_per_s = batch * len(times) / sum(times)
    gflops = clips_per_s * flops / 1e9
    return BenchRow(
        model=name,
        engine=engine_name,
        precision=row["precision"],
        batch=batch,
        clip_len=args.clip_len,
        size=f"{args.size[0]}x{args.size[1]}",
        device=args.device,
        calls=len(times),
        clips_per_s=clips_per_s,
        p50_ms=1000 * float(np.percentile(times, 50)),
        p99_ms=1000 * float(np.percentile(times, 99)),
        gflop_per_clip=flops / 1e9,
        gflops=gflops,
        peak_fraction=None if peak is None else gflops * 1e9 / peak,
        options=_options_label(engine_name, args),
    )


def run_benchmark(args: argparse.Namespace) -> tuple[list[BenchRow], list[str], float | None]:
    """Runs every combination of `args`; returns the rows, the skipped ones (with why) and the
    measured bf16 peak in FLOP/s (None on the CPU)."""
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True
    peak = measure_bf16_peak(args.device) if cuda else None
    rows: list[BenchRow] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="reidstream-bench-engine-") as folder:
        for name in args.models:
            flops = flops_per_clip(
                _build_model(name, size=args.size, checkpoint=args.checkpoint),
                clip_len=args.clip_len,
                size=args.size,
            )
            for engine, precision, batch in (
                (e, p, b) for e in args.engines for p in args.precisions for b in args.batch_sizes
            ):
                label = f"{name} {engine} {precision} batch {batch}"
                combo = {"precision": precision, "batch": batch, "flops": flops, "peak": peak}
                try:
                    row = _bench_one(name, engine, args=args, row={**combo, "work": Path(folder)})
                except EngineError as e:  # a combination the engine does not run here
                    skipped.append(f"{label}: {e}")
                    continue
                logger.info("%s: %.1f clips/s", label, row.clips_per_s)
                rows.append(row)
    return rows, skipped, peak


_HEADER = (
    "model", "engine", "precision", "batch", "clips/s", "p50 ms", "p99 ms",
    "GFLOP/clip", "GFLOP/s", "% bf16 peak", "options",
)  # fmt: skip


def format_table(rows: Sequence[BenchRow]) -> str:
    """The rows as a Markdown table."""
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for r in rows:
        peak = "" if r.peak_fraction is None else f"{100 * r.peak_fraction:.1f}"
        cells = (
            r.model, r.engine, r.precision, str(r.batch), f"{r.clips_per_s:.1f}",
            f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}", f"{r.gflop_per_clip:.2f}", f"{r.gflops:.0f}",
            peak, r.options,
        )  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's arguments (shared by `python -m deploy.benchmark` and the CLI)."""
    parser.add_argument("--models", nargs="+", default=["c2d_r50", "ap3d_r50"], metavar="NAME")
    parser.add_argument(
        "--engines", nargs="+", default=["torch"], metavar="ENGINE",
        help="torch, onnxruntime and/or tensorrt",
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


def run(args: argparse.Namespace) -> int:
    """Runs the benchmark of parsed `args`; prints the table (and writes --json)."""
    load = os.getloadavg()[0]
    print(f"device {args.device}; CPU threads {os.cpu_count()}; load average {load:.2f} at start")
    rows, skipped, peak = run_benchmark(args)
    if peak is not None:
        print(f"measured bf16 matmul peak: {peak / 1e12:.0f} TFLOP/s (8192^3, best of 5)")
    print(f"load average {os.getloadavg()[0]:.2f} at end\n")
    print(format_table(rows))
    for line in skipped:
        print(f"skipped: {line}")
    if args.json is not None:
        document: dict[str, Any] = {
            "device": args.device,
            "gpu": torch.cuda.get_device_name(args.device) if peak is not None else None,
            "torch": torch.__version__,
            "peak_bf16_flops": peak,
            "rows": [asdict(r) for r in rows],
            "skipped": skipped,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0 if rows else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.benchmark", description=__doc__)
    add_arguments(parser)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

"""`reidstream bench engine`: ReID engine throughput per model, engine, precision and batch.

    reidstream bench engine --models c2d_r50 ap3d_r50 --engines torch onnxruntime \\
        --precisions fp32 bf16 --batch-sizes 1 8 64 --clip-len 4 --size 256x128 \\
        [--seconds 5] [--device cuda:0] [--compile max-autotune] [--channels-last] \\
        [--frame-convs] [--json OUT.json]

For every combination, in one process:

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

An image ReID ``.onnx`` file given in place of a model name (``--models osnet_x0_25_msmt17.onnx
--engines external-onnx openvino``) is timed as the pipeline runs it: per frame, then averaged
(`deploy.engines.external`). ONNX Runtime runs the file; OpenVINO runs the same graph converted to
IR (``openvino.convert_model``, saved in fp32, in the run's temporary folder) with the same
preprocessing, so the two rows differ only in the runtime. FLOPs are not counted for such files.

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

import json
import logging
import os
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
from deploy.engines.torch_engine import load_model
from reid_models.base import ReIDModel

__all__ = [
    "BenchRow",
    "EngineSettings",
    "flops_per_clip",
    "format_table",
    "measure_bf16_peak",
    "run",
    "run_benchmark",
]

logger = logging.getLogger(__name__)

#: Seed of the random init when no checkpoint is given.
INIT_SEED = 0


@dataclass(frozen=True)
class EngineSettings:
    """What every row of one run shares.

    Attributes:
        clip_len: Frames per clip (T).
        size: Frame (H, W); it becomes the model's input size, so preprocessing does not resize.
        seconds: Timed seconds per row (at least 3 calls).
        warmup: Untimed calls before timing.
        device: ``cpu`` or ``cuda:N``.
        checkpoint: Weights; None: a random init drawn from `INIT_SEED`.
        compile: torch engine: a `torch.compile` mode, or ``"none"`` (eager).
        channels_last: torch engine: channels_last_3d.
        frame_convs: torch engine: per-frame Conv3d run as conv2d.
        freezing: torch engine under `torch.compile`: Inductor freezing.
        cache_dir: tensorrt engine: plan cache folder (None: in the run's temporary folder).
    """

    clip_len: int = 4
    size: tuple[int, int] = (256, 128)
    seconds: float = 5.0
    warmup: int = 3
    device: str = "cpu"
    checkpoint: Path | None = None
    compile: str = "none"
    channels_last: bool = False
    frame_convs: bool = False
    freezing: bool = True
    cache_dir: Path | None = None


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


def _build_model(name: str, settings: EngineSettings) -> ReIDModel:
    # The same random init in every run; the caller's RNG is left as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        model = load_model(name, checkpoint=settings.checkpoint)
    c = model.pretrained_cfg.input_size[0]
    # The benchmarked size becomes the model's input size, so preprocessing does not resize.
    model.pretrained_cfg = model.pretrained_cfg.with_changes(input_size=(c, *settings.size))
    return model


def _make_engine(
    engine: str,
    model: ReIDModel,
    *,
    name: str,
    settings: EngineSettings,
    precision: str,
    batch: int,
    work: Path,
) -> Engine:
    """The engine `engine` for `model` at `precision` and `batch`; exports the ONNX graph once
    per model into `work`."""
    s = settings
    common = {"device": s.device, "precision": precision, "max_batch": batch}
    if engine == "torch":
        if s.frame_convs:
            frame_convs_as_2d(model)
        options = {"channels_last": s.channels_last, "compile": s.compile != "none"}
        if s.compile != "none":
            options["compile_mode"] = s.compile
        return create_engine("torch", model=model, **common, **options)
    onnx_path = work / f"{name}-T{s.clip_len}-{s.size[0]}x{s.size[1]}.onnx"
    if not onnx_path.exists():
        from deploy.export import export_onnx

        export_onnx(model, onnx_path, clip_len=s.clip_len, model_name=name)
    if engine == "tensorrt":
        cache = s.cache_dir or work / "engines"
        return create_engine("tensorrt", onnx_path=onnx_path, cache_dir=cache, **common)
    return create_engine(engine, onnx_path=onnx_path, model=name, **common)


def _is_image_model(name: str) -> bool:
    return name.lower().endswith(".onnx")


def _make_image_engine(
    engine: str, path: Path, *, settings: EngineSettings, precision: str, batch: int, work: Path
) -> Engine:
    """ONNX Runtime on the image ReID file, or OpenVINO on its fp32 IR with the same input."""
    common = {"device": settings.device, "precision": precision, "max_batch": batch}
    if engine != "openvino":
        return create_engine(engine, onnx_path=path, **common)
    from deploy.engines.openvino_engine import import_openvino
    from reid_models.pretrained import IMAGENET_MEAN, IMAGENET_STD

    ir = work / f"{path.stem}.xml"
    if not ir.exists():
        ov = import_openvino()
        ov.save_model(ov.convert_model(str(path)), str(ir), compress_to_fp16=False)
    # The IR is the ONNX graph: its input is RGB with torchreid's normalisation, as under ORT.
    return create_engine(
        "openvino", onnx_path=ir, color="rgb", mean=IMAGENET_MEAN, std=IMAGENET_STD, **common
    )


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


def _options_label(engine: str, settings: EngineSettings) -> str:
    if engine != "torch":
        return ""
    parts = [f"compile={settings.compile}" if settings.compile != "none" else "eager"]
    if settings.channels_last:
        parts.append("channels_last")
    if settings.frame_convs:
        parts.append("frame_convs_2d")
    if settings.compile != "none" and settings.freezing:
        parts.append("freezing")
    return " ".join(parts)


@dataclass(frozen=True)
class _Combination:
    """One row to measure, and what its model and device give every row."""

    name: str
    engine: str
    precision: str
    batch: int
    flops: float
    peak: float | None


def _bench_one(combo: _Combination, settings: EngineSettings, *, work: Path) -> BenchRow:
    """Measures one combination; exports into `work`."""
    s = settings
    gen = torch.Generator().manual_seed(0)
    shape = (combo.batch, s.clip_len, *s.size, 3)
    clips = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen).to(s.device)
    with inductor_freezing(s.freezing):
        if _is_image_model(combo.name):
            engine = _make_image_engine(
                combo.engine, Path(combo.name), settings=s, precision=combo.precision,
                batch=combo.batch, work=work,
            )  # fmt: skip
        else:
            engine = _make_engine(
                combo.engine, _build_model(combo.name, s), name=combo.name, settings=s,
                precision=combo.precision, batch=combo.batch, work=work,
            )  # fmt: skip
        with engine:
            times = _time_calls(engine, clips, seconds=s.seconds, warmup=s.warmup)
    clips_per_s = combo.batch * len(times) / sum(times)
    gflops = clips_per_s * combo.flops / 1e9
    return BenchRow(
        model=Path(combo.name).name,
        engine=combo.engine,
        precision=combo.precision,
        batch=combo.batch,
        clip_len=s.clip_len,
        size=f"{s.size[0]}x{s.size[1]}",
        device=s.device,
        calls=len(times),
        clips_per_s=clips_per_s,
        p50_ms=1000 * float(np.percentile(times, 50)),
        p99_ms=1000 * float(np.percentile(times, 99)),
        gflop_per_clip=combo.flops / 1e9,
        gflops=gflops,
        peak_fraction=None if combo.peak is None else gflops * 1e9 / combo.peak,
        options=_options_label(combo.engine, s),
    )


def run_benchmark(
    *,
    models: Sequence[str],
    engines: Sequence[str],
    precisions: Sequence[str],
    batch_sizes: Sequence[int],
    settings: EngineSettings,
) -> tuple[list[BenchRow], list[str], float | None]:
    """Runs every combination of models, engines, precisions and batch sizes; returns the rows,
    the skipped ones (with why) and the measured bf16 peak in FLOP/s (None on the CPU)."""
    cuda = settings.device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True
    peak = measure_bf16_peak(settings.device) if cuda else None
    rows: list[BenchRow] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="reidstream-bench-engine-") as folder:
        for name in models:
            flops = _flops(name, settings)
            for engine, precision, batch in (
                (e, p, b) for e in engines for p in precisions for b in batch_sizes
            ):
                label = f"{name} {engine} {precision} batch {batch}"
                combo = _Combination(name, engine, precision, batch, flops, peak)
                try:
                    row = _bench_one(combo, settings, work=Path(folder))
                except EngineError as e:  # a combination the engine does not run here
                    skipped.append(f"{label}: {e}")
                    continue
                logger.info("%s: %.1f clips/s", label, row.clips_per_s)
                rows.append(row)
    return rows, skipped, peak


def _flops(name: str, settings: EngineSettings) -> float:
    """FLOPs per clip of registered model `name`; 0 for an image ReID file (not counted)."""
    if _is_image_model(name):
        return 0.0
    model = _build_model(name, settings)
    return flops_per_clip(model, clip_len=settings.clip_len, size=settings.size)


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


def run(
    *,
    models: Sequence[str],
    engines: Sequence[str],
    precisions: Sequence[str],
    batch_sizes: Sequence[int],
    settings: EngineSettings,
    json_path: Path | None = None,
) -> list[BenchRow]:
    """Runs the benchmark, prints the table and the skipped combinations (and writes the rows
    to `json_path`); returns the rows."""
    device = settings.device
    load = os.getloadavg()[0]
    print(f"device {device}; CPU threads {os.cpu_count()}; load average {load:.2f} at start")
    rows, skipped, peak = run_benchmark(
        models=models, engines=engines, precisions=precisions, batch_sizes=batch_sizes,
        settings=settings,
    )  # fmt: skip
    if peak is not None:
        print(f"measured bf16 matmul peak: {peak / 1e12:.0f} TFLOP/s (8192^3, best of 5)")
    print(f"load average {os.getloadavg()[0]:.2f} at end\n")
    print(format_table(rows))
    for line in skipped:
        print(f"skipped: {line}")
    if json_path is not None:
        document: dict[str, Any] = {
            "device": device,
            "gpu": torch.cuda.get_device_name(device) if peak is not None else None,
            "torch": torch.__version__,
            "peak_bf16_flops": peak,
            "rows": [asdict(r) for r in rows],
            "skipped": skipped,
        }
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {json_path}")
    return rows

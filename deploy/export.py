"""Export a ReID model to ONNX or TorchScript, with a JSON sidecar the engines read.

    model (eval) ─ torch.onnx.export (TorchScript-based, opset 17) ─▶ model.onnx
                                                                      model.json  (sidecar)
    "clips" (N, C, T, H, W) float32, normalised ─▶ "embedding" (N, D) float32, not normalised

The graph holds the model only. Resizing and normalisation stay outside it, in
`deploy.engines.base.preprocess`, which every engine runs in torch on its device: the antialiased
resize that preprocessing needs is ONNX ``Resize`` with ``antialias=1``, which exists from opset 18
only, and keeping the graph free of it gives the TensorRT builder the plain network. The sidecar
carries what the graph alone does not say: the model's name, its `PretrainedCfg` (input size,
interpolation, mean/std, clip sampling), the clip length T fixed in the graph and the embedding
size. Only the batch axis is dynamic; T is fixed at export: M3D's temporal stream is built for one
T (`reid_models.m3d`, `TwoStreamM3D.clip_len`) and exports at that; every other model exports at
`clip_len` if given, else at ``cfg.test_clip_len``, the clip length of the paper's evaluation.

The dynamo exporter would need onnxscript, which is not a dependency; the TorchScript-based one
(``dynamo=False``) traces the eval-mode model.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from deploy.engines.base import Engine, EngineError, preprocess
from reid_models.base import ReIDModel
from reid_models.pretrained import PretrainedCfg

__all__ = [
    "SIDECAR_SCHEMA",
    "ParityReport",
    "Sidecar",
    "export_clip_len",
    "export_onnx",
    "export_torchscript",
    "parity",
    "read_sidecar",
    "sidecar_path",
    "write_sidecar",
]

log = logging.getLogger(__name__)

SIDECAR_SCHEMA = "reidstream.engine_sidecar/1"
INPUT_NAME = "clips"
OUTPUT_NAME = "embedding"


@dataclass(frozen=True)
class Sidecar:
    """What an exported graph expects and returns.

    Attributes:
        model_name: Registry name of the model (`reid_models.list_models()`).
        cfg: The model's `PretrainedCfg`.
        clip_len: T the graph was exported with (its input's T is fixed).
        min_clip_len: Shortest T the architecture accepts (informational for engines that take
            any T, such as TorchScript traced without temporal reshapes).
        embedding_dim: D of the output.
        input_name: Name of the graph input, (N, C, T, H, W) float32.
        output_name: Name of the graph output, (N, D) float32.
    """

    model_name: str
    cfg: PretrainedCfg
    clip_len: int
    embedding_dim: int
    min_clip_len: int = 1
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME


class ParityReport(NamedTuple):
    """Agreement of an engine with the eager fp32 model on the same clips.

    Attributes:
        min_cosine: Smallest per-clip cosine similarity.
        mean_cosine: Mean per-clip cosine similarity.
        max_abs: Largest absolute difference between the L2-normalised embeddings.
    """

    min_cosine: float
    mean_cosine: float
    max_abs: float


def sidecar_path(path: str | Path) -> Path:
    """The sidecar of a model file: the same path with the suffix ``.json``."""
    return Path(path).with_suffix(".json")


def export_clip_len(model: ReIDModel, clip_len: int | None = None) -> int:
    """The T a model is exported at: its fixed T if it has one, else `clip_len` or
    ``cfg.test_clip_len``; checked against the model's shortest clip."""
    fixed = getattr(model, "clip_len", None)
    if fixed is not None:
        if clip_len is not None and clip_len != fixed:
            raise EngineError(
                f"{type(model).__name__} was built for clip_len={fixed} and exports at that "
                f"length only, got clip_len={clip_len}"
            )
        return int(fixed)
    t = clip_len if clip_len is not None else model.pretrained_cfg.test_clip_len
    if t < model.min_clip_len:
        raise EngineError(
            f"clip_len={t} is shorter than {type(model).__name__}'s minimum of "
            f"{model.min_clip_len} frames"
        )
    return t


def write_sidecar(
    path: str | Path,
    *,
    model_name: str,
    cfg: PretrainedCfg,
    clip_len: int,
    embedding_dim: int,
    min_clip_len: int = 1,
) -> Path:
    """Writes the JSON sidecar of the model file at `path`; returns the sidecar's path."""
    out = sidecar_path(path)
    document = {
        "schema": SIDECAR_SCHEMA,
        "model_name": model_name,
        "clip_len": clip_len,
        "min_clip_len": min_clip_len,
        "embedding_dim": embedding_dim,
        "input": {"name": INPUT_NAME, "layout": "N,C,T,H,W", "dtype": "float32"},
        "output": {"name": OUTPUT_NAME, "layout": "N,D", "dtype": "float32"},
        "pretrained_cfg": dataclasses.asdict(cfg),
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    return out


def read_sidecar(path: str | Path) -> Sidecar:
    """Reads the sidecar of the model file at `path` (or the sidecar itself).

    Raises:
        EngineError: The sidecar is missing, not JSON, of another schema, or incomplete.
    """
    file = sidecar_path(path)
    if not file.is_file():
        raise EngineError(
            f"{file} is missing: the engines read the model's preprocessing and clip length from "
            f"the sidecar that deploy.export writes next to {Path(path).name}"
        )
    try:
        doc = json.loads(file.read_text())
        if doc.get("schema") != SIDECAR_SCHEMA:
            raise ValueError(f"schema {doc.get('schema')!r}, expected {SIDECAR_SCHEMA!r}")
        known = {f.name for f in dataclasses.fields(PretrainedCfg)}
        raw: dict[str, Any] = doc["pretrained_cfg"]
        cfg = PretrainedCfg(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in known}
        )
        return Sidecar(
            model_name=str(doc["model_name"]),
            cfg=cfg,
            clip_len=int(doc["clip_len"]),
            embedding_dim=int(doc["embedding_dim"]),
            min_clip_len=int(doc.get("min_clip_len", 1)),
            input_name=str(doc["input"]["name"]),
            output_name=str(doc["output"]["name"]),
        )
    except (ValueError, KeyError, TypeError) as err:
        raise EngineError(f"{file} is not a valid engine sidecar: {err}") from err


def _example(model: ReIDModel, clip_len: int, batch: int) -> torch.Tensor:
    c, h, w = model.pretrained_cfg.input_size
    return torch.randn(batch, c, clip_len, h, w, generator=torch.Generator().manual_seed(0))


def export_onnx(
    model: ReIDModel,
    path: str | Path,
    *,
    clip_len: int | None = None,
    batch: int = 2,
    opset: int = 17,
    model_name: str | None = None,
) -> Path:
    """Exports `model` (in eval mode) to ONNX with a dynamic batch axis, plus its sidecar.

    Args:
        model: The model; put in eval mode (and left there).
        path: Output ``.onnx`` file; the sidecar goes to ``path.with_suffix(".json")``.
        clip_len: T of the graph; see `export_clip_len`.
        batch: Batch size of the tracing example (the exported batch axis is dynamic).
        opset: ONNX opset.
        model_name: Registry name recorded in the sidecar (default: the class name).

    Returns:
        `path`.
    """
    path = Path(path)
    t = export_clip_len(model, clip_len)
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        # The legacy exporter's deprecation notice is expected: it is chosen on purpose (above).
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            model,
            (_example(model, t, batch),),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    _write_model_sidecar(model, path, t, model_name)
    log.info("exported %s to %s (T=%d, opset %d)", type(model).__name__, path, t, opset)
    return path


def export_torchscript(
    model: ReIDModel,
    path: str | Path,
    *,
    clip_len: int | None = None,
    batch: int = 2,
    model_name: str | None = None,
) -> Path:
    """Traces `model` (eval mode) with `torch.jit.trace` and saves it, plus its sidecar.

    The trace records the shapes of the example for reshapes that depend on T, so clips must
    have the exported T (the sidecar's ``clip_len``); the batch size may differ.
    """
    path = Path(path)
    t = export_clip_len(model, clip_len)
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # Deprecated in favour of torch.export, whose programs the engines do not load yet.
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.trace")
        traced = torch.jit.trace(model, (_example(model, t, batch),), check_trace=False)
    traced.save(str(path))
    _write_model_sidecar(model, path, t, model_name)
    log.info("traced %s to %s (T=%d)", type(model).__name__, path, t)
    return path


def _write_model_sidecar(model: ReIDModel, path: Path, t: int, name: str | None) -> None:
    write_sidecar(
        path,
        model_name=name or type(model).__name__,
        cfg=model.pretrained_cfg,
        clip_len=t,
        embedding_dim=model.embedding_dim,
        min_clip_len=model.min_clip_len,
    )


def parity(model: ReIDModel, engine: Engine, clips: np.ndarray) -> ParityReport:
    """Compares `engine` with `model` run eagerly in fp32 on the CPU on the same clips.

    Args:
        model: The reference model (its weights must be the engine's).
        engine: The engine under test.
        clips: (B, T, H, W, 3) uint8.
    """
    reference_model = model
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
        # An engine may have moved this very model to its device; the reference stays put.
        reference_model = copy.deepcopy(model).to("cpu", torch.float32)
    pixels = torch.from_numpy(np.ascontiguousarray(clips))
    x = preprocess(pixels, model.pretrained_cfg, device="cpu")
    with torch.no_grad():
        reference = reference_model.eval()(x).float()
    reference = torch.nn.functional.normalize(reference, dim=1).numpy()
    got = engine.embed(clips)
    cosine = (reference * got).sum(axis=1)
    return ParityReport(
        min_cosine=float(cosine.min()),
        mean_cosine=float(cosine.mean()),
        max_abs=float(np.abs(reference - got).max()),
    )

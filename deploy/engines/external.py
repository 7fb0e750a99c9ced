"""An image-ReID ONNX model (e.g. OSNet) used as a clip model: per frame, then averaged.

    clips (B, T, H, W, 3) uint8
      ─ preprocess to the image model's input (256x128, ImageNet mean/std by default)
      ─ frames (B*T, C, H', W') ─ ONNX Runtime ─ (B*T, D) ─ L2-normalise each frame
      ─ mean over T ─▶ (B, D) ─ (Engine.embed) L2-normalise

Person-ReID image models (torchreid's OSNet, fast-reid's exports) carry no description of their
preprocessing in the ONNX file, so the engine builds a `PretrainedCfg` for them (`image_reid_cfg`):
the input size from the graph's input shape when it is fixed (else 256x128), RGB pixels scaled
to [0, 1] and normalised with ImageNet mean/std, bilinear resizing (torchreid's defaults, which
its model zoo was trained with); every field can be overridden. Frames are L2-normalised before
the temporal mean so that every frame weighs the same; a frame whose raw feature happens to be
long (high contrast, a partial body) would otherwise dominate the clip. The mean is the temporal
average pooling that video ReID baselines apply to frame features (`c2d_r50` does the same
inside the network).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from deploy.engines.base import Engine, EngineError, normalize_device, preprocess
from deploy.engines.onnxruntime_engine import make_session, run_graph
from reid_models.pretrained import IMAGENET_MEAN, IMAGENET_STD, PretrainedCfg

__all__ = ["ExternalOnnxEngine", "average_frames", "clip_frames", "image_reid_cfg"]

log = logging.getLogger(__name__)

#: torchreid's default input size (H, W), used when the graph's is not fixed.
DEFAULT_SIZE = (256, 128)


def image_reid_cfg(
    name: str,
    *,
    input_size: tuple[int, int, int] = (3, *DEFAULT_SIZE),
    embedding_dim: int,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    interpolation: Literal["bilinear", "bicubic"] = "bilinear",
    clip_len: int = 8,
) -> PretrainedCfg:
    """The `PretrainedCfg` of an image ReID model run frame by frame.

    Args:
        name: What to call the model (its file name).
        input_size: (C, H, W) per frame.
        embedding_dim: D of the model's output.
        mean: Per-channel mean of [0, 1]-scaled RGB pixels.
        std: Per-channel divisor.
        interpolation: Resize filter.
        clip_len: Frames per clip the pipeline should cut (the model itself takes any T):
            longer averages out more pose and occlusion at the cost of latency.
    """
    return PretrainedCfg(
        paper=f"image ReID model {name}, applied per frame and averaged",
        input_size=input_size,
        mean=mean,
        std=std,
        interpolation=interpolation,
        train_clip_len=clip_len,
        train_sampling="consecutive",
        train_stride=1,
        test_clip_len=clip_len,
        test_sampling="chunks",
        test_stride=clip_len,
        aggregation="mean",
        embedding_dim=embedding_dim,
        distance="cosine",
        normalize_embedding=True,
    )


def clip_frames(x: torch.Tensor) -> torch.Tensor:
    """Preprocessed clips (B, C, T, H, W) -> their frames (B*T, C, H, W), clip by clip."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def average_frames(features: np.ndarray, b: int, t: int) -> np.ndarray:
    """Frame features (B*T, D) -> clip features (B, D): the mean of the L2-normalised frames."""
    features = features.reshape(b, t, -1)
    features = features / np.maximum(np.linalg.norm(features, axis=2, keepdims=True), 1e-12)
    return features.mean(axis=1)


class ExternalOnnxEngine(Engine):
    """Embeds clips with an image ReID ONNX model: (N, C, H, W) float32 -> (N, D).

    Args:
        path: The ``.onnx`` file.
        device: "cpu" or "cuda[:N]".
        precision: "fp32" (the file's own precision).
        max_batch: Most clips per call; the model sees up to ``max_batch * T`` frames per run
            (or its fixed batch size, when the graph has one).
        intra_op_threads: CPU threads of the session (0: ONNX Runtime's default).
        cfg: The full preprocessing description; default `image_reid_cfg` from the graph's
            shapes with the overrides below.
        **overrides: `image_reid_cfg` fields (``mean``, ``std``, ``interpolation``,
            ``clip_len``, ``input_size``).
    """

    name = "external-onnx"

    def __init__(
        self,
        path: str | Path,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        max_batch: int = 32,
        intra_op_threads: int = 0,
        cfg: PretrainedCfg | None = None,
        **overrides: Any,
    ) -> None:
        device = normalize_device(device)
        if precision != "fp32":
            raise EngineError(f"precision {precision!r}: an external ONNX model runs in fp32")
        self.session = make_session(path, device=device, intra_op_threads=intra_op_threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise EngineError(
                f"{path}: an image ReID model takes one (N, C, H, W) input, got "
                f"{[(i.name, i.shape) for i in inputs]}"
            )
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        shape = inputs[0].shape
        self._fixed_batch = shape[0] if isinstance(shape[0], int) else None
        if cfg is None:
            cfg = self._default_cfg(Path(path), shape, outputs[0].shape, overrides)
        elif overrides:
            raise EngineError(f"give cfg= or overrides, not both (got {sorted(overrides)})")
        super().__init__(
            cfg=cfg, device=device, precision=precision, max_batch=max_batch, clip_len=None
        )
        self._binding = device != "cpu" and torch.cuda.is_available()
        self._torch_device = device if self._binding else "cpu"
        log.info("%s: image ReID model, input %s, D=%d", path, cfg.input_size, cfg.embedding_dim)

    @classmethod
    def create(
        cls,
        *,
        model: str | None = None,
        checkpoint: str | Path | None = None,
        onnx_path: str | Path | None = None,
        **options: Any,
    ) -> ExternalOnnxEngine:
        """`create_engine("external-onnx", onnx_path=...)`."""
        if onnx_path is None:
            raise EngineError("the external-onnx engine needs onnx_path= (an image ReID model)")
        if Path(onnx_path).suffix.lower() == ".xml":
            raise EngineError(
                f"{onnx_path} is an OpenVINO IR, not ONNX: run it with reid.engine=openvino "
                f"(pip install 'reidstream[openvino]')"
            )
        if model is not None or checkpoint is not None:
            raise EngineError(
                "the external-onnx engine runs the model inside onnx_path; model= and "
                "checkpoint= belong to the torch engine"
            )
        return cls(onnx_path, **options)

    def _default_cfg(
        self, path: Path, shape_in: list[Any], shape_out: list[Any], overrides: dict[str, Any]
    ) -> PretrainedCfg:
        c, h, w = shape_in[1:]
        fixed = all(isinstance(v, int) for v in (c, h, w))
        size = (c, h, w) if fixed else (3, *DEFAULT_SIZE)
        dim = shape_out[-1] if isinstance(shape_out[-1], int) else None
        if dim is None:  # the output width is symbolic: ask the graph
            probe = np.zeros((self._fixed_batch or 1, *size), np.float32)
            dim = self.session.run([self.output_name], {self.input_name: probe})[0].shape[-1]
        options = {"input_size": size, "embedding_dim": dim} | overrides
        try:
            return image_reid_cfg(path.name, **options)
        except TypeError as err:
            raise EngineError(f"unknown option for an external model: {err}") from err

    def _embed_batch(self, clips: torch.Tensor) -> np.ndarray:
        b, t = clips.shape[:2]
        frames = clip_frames(preprocess(clips, self.cfg, device=self._torch_device))
        step = self._fixed_batch or frames.shape[0]
        parts = []
        for start in range(0, frames.shape[0], step):
            chunk = frames[start : start + step]
            n = chunk.shape[0]
            if n < step:  # a graph with a fixed batch size: pad with the last frame
                chunk = torch.cat([chunk, chunk[-1:].expand(step - n, *chunk.shape[1:])])
            out = run_graph(
                self.session, chunk, self.input_name, self.output_name, bind=self._binding
            )
            parts.append(out[:n])
        return average_frames(np.concatenate(parts), b, t)

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]

"""The engine interface every runtime implements, and the preprocessing they all share.

    clips (B, T, H, W, 3) uint8 RGB crops, any H, W      numpy or torch, host or device
      └─ Engine.embed ─ validate dtype/shape ─ split into chunks of <= max_batch clips
           └─ _embed_batch(chunk)                          (engine specific)
                 preprocess: to device ─ resize to cfg.input_size (cfg.interpolation,
                             antialiased when shrinking) ─ /255 ─ (x - mean) / std
                 model graph ─▶ (b, D)
      └─ non-finite rows ─▶ NonFiniteEmbedding naming them; else L2-normalise ─▶ (B, D) float32

`preprocess` runs in torch on the engine's device for every engine, so the torch, ONNX Runtime and
TensorRT engines feed their graphs bit-identical tensors for the same clips (the exported graphs
hold the model only, see `deploy.export`). Pixels are scaled to [0, 1] before `cfg.mean`/`cfg.std`
apply; C3D-style models, trained on 0-255 pixels minus a mean, express that as mean/255 and
std = 1/255 in their `PretrainedCfg` (see `reid_models.c3d`), so one formula serves every model.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from reid_models.pretrained import PretrainedCfg

__all__ = [
    "PRECISIONS",
    "BackendUnavailable",
    "Engine",
    "EngineError",
    "NonFiniteEmbedding",
    "normalize_device",
    "preprocess",
    "torch_dtype",
]

log = logging.getLogger(__name__)

#: Numeric precisions an engine may be asked for (not every engine offers all of them).
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class EngineError(RuntimeError):
    """An unusable model file, an input the engine cannot take, or an output it cannot trust."""


class BackendUnavailable(EngineError):
    """The runtime an engine needs is not installed or has no device here; says how to get it."""


class NonFiniteEmbedding(EngineError):
    """Some clips embedded to NaN or infinity.

    Attributes:
        rows: Indices, within the batch given to `Engine.embed`, of the clips whose embedding is
            not finite (the caller drops and counts them).
        embeddings: (B, D) float32, the whole batch: the other rows L2-normalised as `embed`
            returns them, so that one bad clip does not cost the batch (None if not given).
    """

    def __init__(
        self, message: str, rows: tuple[int, ...], embeddings: np.ndarray | None = None
    ) -> None:
        super().__init__(message)
        self.rows = rows
        self.embeddings = embeddings


def normalize_device(device: str) -> str:
    """ "cpu", "cuda" or "cuda:N" -> "cpu" or "cuda:N"; anything else is an `EngineError`."""
    if device == "cpu":
        return device
    if device == "cuda":
        return "cuda:0"
    if device.startswith("cuda:") and device[5:].isdigit():
        return device
    raise EngineError(f"device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a floating `precision` ("fp32", "fp16", "bf16")."""
    if precision not in _DTYPES:
        raise EngineError(f"precision {precision!r} has no torch dtype; expected one of {_DTYPES}")
    return _DTYPES[precision]


def preprocess(
    clips: torch.Tensor,
    cfg: PretrainedCfg,
    *,
    device: str | torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Turns raw crops into the model's input, on `device`.

    Resizing uses `torch.nn.functional.interpolate` with ``cfg.interpolation`` and
    ``align_corners=False`` (what torchvision's Resize does on tensors), antialiased where a side
    shrinks so that large crops do not alias (PIL and cv2's INTER_AREA, which the training
    transforms use, low-pass filter the same way); upscaling needs no filter. The resize runs in
    float32 whatever `dtype` is, and the cast happens last.

    Args:
        clips: (B, T, H, W, 3) uint8 RGB, on any device. A CPU tensor in pinned memory is copied
            asynchronously.
        cfg: The model's `PretrainedCfg` (input_size, interpolation, mean, std).
        device: Where the result lives.
        dtype: dtype of the result.

    Returns:
        (B, C, T, H', W') with (C, H', W') = ``cfg.input_size``.
    """
    b, t, h, w, c = clips.shape
    x = clips.to(device, non_blocking=clips.device.type == "cpu" and clips.is_pinned())
    # (B, T, H, W, C) -> (B*T, C, H, W): interpolate resizes the last two dims.
    x = x.reshape(b * t, h, w, c).permute(0, 3, 1, 2).float()
    out_h, out_w = cfg.input_size[1:]
    if (h, w) != (out_h, out_w):
        shrink = out_h < h or out_w < w
        x = F.interpolate(
            x, size=(out_h, out_w), mode=cfg.interpolation, align_corners=False, antialias=shrink
        )
        if cfg.interpolation == "bicubic":  # bicubic overshoots past the 0..255 range
            x = x.clamp_(0.0, 255.0)
    mean = torch.tensor(cfg.mean, device=x.device).view(1, c, 1, 1)
    std = torch.tensor(cfg.std, device=x.device).view(1, c, 1, 1)
    x = (x / 255.0 - mean) / std
    return x.reshape(b, t, c, out_h, out_w).permute(0, 2, 1, 3, 4).to(dtype).contiguous()


class Engine(ABC):
    """Embeds clips: ``embed(clips) -> (B, D)`` float32 with unit-norm rows.

    Clips are (B, T, H, W, 3) uint8 RGB crops of any H, W (numpy or torch): they are resized on
    the engine's device to ``cfg.input_size`` with ``cfg.interpolation``, scaled to 0..1 and
    normalised by ``cfg.mean``/``cfg.std`` (see `preprocess`). Batches larger than `max_batch`
    are split. Subclasses implement `_embed_batch` and, where they hold resources, `close`.

    Engines are built by `deploy.engines.create_engine`, which calls the class's `create` with
    the registry's common arguments and the engine's own keyword options.

    Attributes:
        name: Registry name of the engine ("torch", "onnxruntime", ...).
        cfg: The model's preprocessing and clip contract.
        device: "cpu" or "cuda:N".
        precision: "fp32", "fp16", "bf16" or "int8".
        max_batch: Most clips per call of the underlying graph.
    """

    name: ClassVar[str]

    def __init__(
        self,
        *,
        cfg: PretrainedCfg,
        device: str,
        precision: str,
        max_batch: int,
        clip_len: int | None,
        min_clip_len: int = 1,
    ) -> None:
        if precision not in PRECISIONS:
            raise EngineError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
        if max_batch < 1:
            raise EngineError(f"max_batch must be >= 1, got {max_batch}")
        self.cfg = cfg
        self.device = device
        self.precision = precision
        self.max_batch = max_batch
        self._clip_len = clip_len
        self.min_clip_len = clip_len if clip_len is not None else max(1, min_clip_len)

    @classmethod
    @abstractmethod
    def create(cls, **options: Any) -> Engine:
        """Builds the engine from `create_engine`'s arguments (model, checkpoint, onnx_path,
        device, precision, max_batch) and its own options; refuses what it cannot use."""

    @property
    def embedding_dim(self) -> int:
        return self.cfg.embedding_dim

    @property
    def clip_len(self) -> int | None:
        """The T every clip must have, or None if any T >= `min_clip_len` works."""
        return self._clip_len

    def embed(self, clips: np.ndarray | torch.Tensor) -> np.ndarray:
        """Embeds a batch of clips.

        Args:
            clips: (B, T, H, W, 3) uint8 RGB.

        Returns:
            (B, D) float32, each row L2-normalised.

        Raises:
            EngineError: Wrong dtype or shape.
            NonFiniteEmbedding: Some rows are not finite; `.rows` lists them.
        """
        clips = self._as_tensor(clips)
        if clips.shape[0] == 0:
            return np.zeros((0, self.embedding_dim), np.float32)
        parts = [
            self._to_numpy(self._embed_batch(clips[start : start + self.max_batch]))
            for start in range(0, clips.shape[0], self.max_batch)
        ]
        out = np.concatenate(parts).astype(np.float32, copy=False)
        if out.shape != (clips.shape[0], self.embedding_dim):
            raise EngineError(
                f"{self.name} engine returned {out.shape}, expected "
                f"({clips.shape[0]}, {self.embedding_dim}); does the model file match its sidecar?"
            )
        finite = np.isfinite(out).all(axis=1)
        norms = np.linalg.norm(np.where(finite[:, None], out, 0.0), axis=1, keepdims=True)
        out = out / np.maximum(norms, np.finfo(np.float32).tiny)
        if not finite.all():
            bad = tuple(int(i) for i in np.flatnonzero(~finite))
            raise NonFiniteEmbedding(
                f"{self.name} engine: embedding of clip row(s) {list(bad)} of {len(out)} is not "
                f"finite (NaN or inf)",
                bad,
                embeddings=out,
            )
        return out

    @abstractmethod
    def _embed_batch(self, clips: torch.Tensor) -> torch.Tensor | np.ndarray:
        """(b, T, H, W, 3) uint8 with b <= max_batch -> (b, D), not yet normalised."""

    def close(self) -> None:  # noqa: B027 (engines without resources need not override it)
        """Releases the engine's runtime resources; the engine is unusable afterwards."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(device={self.device!r}, precision={self.precision!r}, "
            f"max_batch={self.max_batch}, clip_len={self.clip_len}, dim={self.embedding_dim})"
        )

    def _as_tensor(self, clips: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(clips, np.ndarray):
            if clips.dtype != np.uint8:
                raise EngineError(f"clips must be uint8 RGB pixels, got numpy {clips.dtype}")
            clips = torch.from_numpy(np.ascontiguousarray(clips))
        elif not isinstance(clips, torch.Tensor):
            raise EngineError(f"clips must be a numpy array or torch tensor, got {type(clips)}")
        if clips.dtype != torch.uint8:
            raise EngineError(f"clips must be uint8 RGB pixels, got {clips.dtype}")
        if clips.dim() != 5 or clips.shape[-1] != 3 or min(clips.shape[1:]) < 1:
            raise EngineError(
                f"clips must have shape (B, T, H, W, 3) with T, H, W >= 1, got {tuple(clips.shape)}"
            )
        t = clips.shape[1]
        if self.clip_len is not None and t != self.clip_len:
            raise EngineError(
                f"this {self.name} engine's graph takes clips of exactly T={self.clip_len} "
                f"frames, got T={t}"
            )
        if t < self.min_clip_len:
            raise EngineError(
                f"this model needs clips of at least T={self.min_clip_len} frames, got T={t}"
            )
        return clips

    @staticmethod
    def _to_numpy(out: torch.Tensor | np.ndarray) -> np.ndarray:
        if isinstance(out, torch.Tensor):
            return out.detach().float().cpu().numpy()
        return np.asarray(out, dtype=np.float32)

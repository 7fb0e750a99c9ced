"""Stand-ins for the two models, to measure what the pipeline itself costs.

    NullDetector(people=K)   K person boxes per frame walking across it; never looks at pixels
    NullEngine(cfg)          an embedding per clip from its mean colour; no network

With both, `reidstream bench pipeline --null-detector --null-reid` times everything but the
models: decoding, batching, tracking, cropping and resizing, clip assembly, matching,
serialisation and publishing. They are for profiling only; nothing else builds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from deploy.engines import Engine
from detectors import Detections, Detector
from reid_models.pretrained import PretrainedCfg

__all__ = ["NullDetector", "NullEngine"]


class NullDetector(Detector):
    """`people` boxes per frame, each walking left to right at `speed` pixels per image seen.

    The walk advances once per image the detector is given, so with N cameras batched together a
    camera's consecutive frames are about N steps apart: `speed` times N pixels, which a tracker
    follows. A person who leaves the right edge comes back on the left (a new track).

    Args:
        people: Boxes per frame.
        speed: Pixels per image seen.
        height: Box height as a fraction of the frame height (width is 0.4 of the height).
    """

    name = "null"

    def __init__(self, people: int = 8, *, speed: float = 0.5, height: float = 0.45) -> None:
        if people < 0:
            raise ValueError(f"people must be >= 0, got {people}")
        self.people, self.speed, self.height = people, speed, height
        self._seen = 0

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for frame in frames:
            out.append(self._boxes(frame.shape[0], frame.shape[1], self._seen))
            self._seen += 1
        return out

    def _boxes(self, h: int, w: int, step: int) -> Detections:
        k = np.arange(self.people, dtype=np.float32)
        box_h = self.height * h
        box_w = 0.4 * box_h
        span = max(w - box_w, 1.0)
        x1 = (k * span / max(self.people, 1) + self.speed * step) % span
        y1 = (0.1 + 0.4 * (k % 3) / 3) * h
        xyxy = np.stack([x1, y1, x1 + box_w, y1 + box_h], axis=1).astype(np.float32)
        return Detections(
            xyxy=xyxy.reshape(-1, 4),
            confidence=np.full(self.people, 0.9, np.float32),
            class_id=np.zeros(self.people, np.int64),
            metadata={"image_size": (h, w)},
        )

    def close(self) -> None:
        pass


class NullEngine(Engine):
    """Embeds a clip as a fixed projection of its mean colour (the same clip, the same vector).

    Args:
        cfg: The contract of the model it stands in for (crop size, clip schedule, dimension).
        clip_len: That model's fixed clip length, if it has one.
        max_batch: Most clips per call, as the real engine's.
    """

    name = "null"

    def __init__(self, cfg: PretrainedCfg, *, clip_len: int | None = None, max_batch: int = 32):
        super().__init__(
            cfg=cfg, device="cpu", precision="fp32", max_batch=max_batch, clip_len=clip_len
        )
        rng = np.random.default_rng(0)
        self._projection = rng.standard_normal((3, cfg.embedding_dim)).astype(np.float32)
        self._bias = rng.standard_normal(cfg.embedding_dim).astype(np.float32)

    @classmethod
    def create(cls, **options: Any) -> NullEngine:
        return cls(options["cfg"], max_batch=options.get("max_batch", 32))

    @classmethod
    def like(cls, engine: Engine) -> NullEngine:
        """A null engine with `engine`'s contract (its clip length and batch size)."""
        return cls(engine.cfg, clip_len=engine.clip_len, max_batch=engine.max_batch)

    def _embed_batch(self, clips: torch.Tensor) -> np.ndarray:
        # A sparse grid of the first frame's pixels, in numpy: the stand-in must cost next to
        # nothing, and torch's small ops woke its thread pool (a fifth of the null-model
        # bench's CPU samples went to that).
        colour = clips.numpy()[:, 0, ::16, ::16].mean(axis=(1, 2), dtype=np.float32) / 255.0
        return colour @ self._projection + 0.1 * self._bias  # (b, D)

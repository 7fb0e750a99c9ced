"""Fixtures of the deploy tests: small registered models, clips of real pixels' type, and toy
graphs whose outputs are known in closed form.

Models are the registered architectures with random weights (no trained weights exist here),
every all-zero parameter perturbed so that zero-initialised branches (APM, non-local, temporal
kernels) take part in the output, and a 64x32 input size set in their `PretrainedCfg` so that a
whole registry's parity runs in a minute or two on a CPU; the engines resize any crop to it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from reid_models import create_model
from reid_models.base import ReIDModel, TrainOutput
from reid_models.pretrained import PretrainedCfg

#: Real footage and models beside the project root, as in tests/conftest.py.
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

#: (C, H, W) the test models are fed; every registered architecture accepts it.
SMALL_INPUT = (3, 64, 32)


def small_clip_len(model: ReIDModel) -> int:
    """The T the tests use: the model's fixed T, else its minimum or 4, whichever is longer."""
    return getattr(model, "clip_len", None) or max(4, model.min_clip_len)


def build_small(name: str, *, seed: int = 0, **overrides: object) -> ReIDModel:
    """Registered model `name`, eval mode, no zero parameters, 64x32 input, short test clips."""
    torch.manual_seed(seed)
    model = create_model(name, **overrides).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            if p.count_nonzero() == 0:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    model.pretrained_cfg = model.pretrained_cfg.with_changes(
        input_size=SMALL_INPUT, test_clip_len=small_clip_len(model)
    )
    return model


def make_clips(
    batch: int, clip_len: int, height: int = 80, width: int = 40, *, seed: int = 0
) -> np.ndarray:
    """(batch, clip_len, height, width, 3) uint8: smooth random blobs plus noise, like crops."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (batch, clip_len, 5, 3, 3)).astype(np.float32)
    frames = torch.nn.functional.interpolate(
        torch.from_numpy(coarse).reshape(batch * clip_len, 5, 3, 3).permute(0, 3, 1, 2),
        size=(height, width),
        mode="bilinear",
        align_corners=False,
    )
    smooth = frames.permute(0, 2, 3, 1).reshape(batch, clip_len, height, width, 3).numpy()
    noisy = smooth + rng.normal(0, 12, smooth.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


class LogMeanModel(ReIDModel):
    """Embedding = log of the per-channel mean of the clip: NaN where that mean is negative.

    A clip darker than the mean pixel gives a NaN row, so tests can put a bad row anywhere.
    """

    def __init__(self) -> None:
        super().__init__(
            pretrained_cfg=PretrainedCfg(paper="test", input_size=(3, 8, 4), embedding_dim=3),
            num_classes=0,
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3, 4))

    def forward_head(
        self, x: torch.Tensor, *, pre_logits: bool = False
    ) -> torch.Tensor | TrainOutput:
        return x.log() if pre_logits else TrainOutput(x, ())


@pytest.fixture(scope="session")
def small_model() -> Callable[..., ReIDModel]:
    """`build_small(name, seed=, **overrides)`."""
    return build_small


@pytest.fixture(scope="session")
def clips() -> Callable[..., np.ndarray]:
    """`make_clips(batch, clip_len, height=80, width=40, seed=0)`."""
    return make_clips


@pytest.fixture
def log_mean_model() -> LogMeanModel:
    """A `LogMeanModel`: dark clips embed to NaN rows."""
    return LogMeanModel()


@pytest.fixture(scope="session")
def reid_crop_files() -> list[Path]:
    """Five Market-1501 person crops of five identities (128x64 JPEG); skips when absent."""
    files = sorted((SHARED_DATA / "reid_crops").glob("*.jpg"))
    if len(files) < 5:
        pytest.skip(f"real test material {SHARED_DATA / 'reid_crops'} is absent (see SOURCES.md)")
    return files

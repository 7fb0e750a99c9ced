"""Fixtures of the pipeline tests: a small ReID engine the streaming tests can afford."""

from __future__ import annotations

import pytest

from deploy.engines.torch_engine import TorchEngine
from reid_models import create_model


@pytest.fixture(scope="session")
def tiny_engine_factory():
    """A narrow C2D ResNet-18 at 32x16 (untrained: structure, not accuracy, is tested here)."""

    def make() -> TorchEngine:
        torch_model = create_model("c2d_r18", base_width=8)
        torch_model.pretrained_cfg = torch_model.pretrained_cfg.with_changes(
            input_size=(3, 32, 16), test_clip_len=4, test_stride=4
        )
        return TorchEngine(torch_model, max_batch=16)

    return make

"""I3D-NL ResNet-50 of Liao et al. (ACCV 2018; Wang et al.'s "8x8" layout, see
reid_models.i3d_nonlocal): layout, shapes and head."""

from __future__ import annotations

import torch

from reid_models import create_model
from reid_models.layers.nonlocal_block import NonLocalBlock


def test_layout_is_wang_et_al_i3d_nonlocal_8x8():
    backbone = create_model("i3d_nl_r50").backbone
    assert backbone.conv1.kernel_size == (5, 7, 7)
    inflated = sorted(
        name.removesuffix(".conv1")
        for name, m in backbone.named_modules()
        if name.endswith(".conv1") and isinstance(m, torch.nn.Conv3d) and m.kernel_size[0] == 3
    )
    assert inflated == [
        "layer1.0", "layer1.1", "layer1.2", "layer2.0", "layer2.2",
        "layer3.0", "layer3.2", "layer3.4", "layer4.1",
    ]  # fmt: skip
    nonlocal_blocks = [n for n, m in backbone.named_modules() if isinstance(m, NonLocalBlock)]
    assert nonlocal_blocks == [
        "layer2.nonlocal1", "layer2.nonlocal3",
        "layer3.nonlocal1", "layer3.nonlocal3", "layer3.nonlocal5",
    ]  # fmt: skip
    assert all(backbone.get_submodule(n).pool_first for n in nonlocal_blocks)


def test_pool2_halves_time_and_the_last_stride_is_kept():
    model = create_model("i3d_nl_r50").eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, 8, 64, 32))
    assert features.shape == (1, 2048, 4, 2, 1)


def test_embedding_is_the_bottleneck_output_before_dropout():
    model = create_model("i3d_nl_r50", num_classes=7).train()
    pooled = torch.randn(4, 2048)
    torch.manual_seed(0)
    out = model.head.train_output(pooled)
    assert out.features.shape == (4, 512) and out.logits[0].shape == (4, 7)
    torch.testing.assert_close(out.features, model.head.embedding(pooled))
    assert (out.features.min() < 0).item()  # LeakyReLU(0.1) keeps negative values

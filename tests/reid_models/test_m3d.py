"""M3D specifics (Li et al., AAAI 2019): Eq. 4-6 M3D layers, the RAL and its zero-gradient trap, the
parameter overhead, two-stream fusion and the stream / clip_len overrides.

The registry-wide checks (shapes, gradients, ONNX, inflation) live in test_models.py.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reid_models import create_model
from reid_models.layers.m3d_layers import (
    MultiScaleTemporalConv,
    ResidualAttention,
    m3d_num_kernels,
)
from reid_models.m3d import M3DBottleneck, M3DPlan, TwoStreamM3D
from reid_models.resnet3d import Bottleneck3d, pointwise_conv

NUM_CLASSES = 5
#: The paper's rule: 4 layers, n = 3 each (Eq. 6 at T = 8), c x c x 3 kernels for c = 64, 128,
#: 256, 512 (12.53 MB in fp32, against the printed 4.2 MB "parameter overhead").
M3D_PAPER_PARAMS = 3_133_440
#: The official code (ljn114514/M3D ``ResNet50-M3D/model/M3D.py``): stem + 4 layers with
#: n = 3, 3, 3, 2, 1.
M3D_CODE_PARAMS = 1_400_832
RESNET50_TRUNK = 23_508_032  # torchvision resnet50 without fc
HEAD_128 = 2048 * 128 + 128 + 2 * 128  # FC 2048->128 + BN1d(128)


def ral_params(channels: int, frames: int) -> int:
    """conv_s1 3x3 C->1, BN(1), conv_s2 1->1; C->C/16->C with BN; T->2T->T with BN."""
    spatial = 9 * channels + 2 + 1
    channel = 2 * channels * (channels // 16) + 2 * (channels // 16)
    temporal = 2 * (2 * frames * frames) + 2 * (2 * frames)
    return spatial + channel + temporal


def clip(t: int = 8, *, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, t, 64, 32, generator=torch.Generator().manual_seed(seed))


def count(module: nn.Module, *, having: str = "") -> int:
    return sum(p.numel() for n, p in module.named_parameters() if having in n)


@pytest.fixture(scope="module")
def two_stream() -> TwoStreamM3D:
    torch.manual_seed(0)
    return create_model("m3d_r50", num_classes=NUM_CLASSES)


# --- M3D layer ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("frames", "n"), [(1, 0), (2, 0), (3, 1), (4, 1), (7, 3), (8, 3), (16, 7)])
def test_number_of_temporal_kernels_follows_eq6(frames, n):
    assert m3d_num_kernels(frames) == n
    assert M3DPlan.paper(frames).stage_kernels == (n,) * 4


def test_code_plan_halves_t_and_uses_log2_kernels():
    plan = M3DPlan.code(8)
    assert (plan.stem_kernels, plan.stage_kernels) == (3, (3, 3, 2, 1))
    assert plan.stage_frames == (8, 4, 2, 1)
    with pytest.raises(ValueError, match="multiple of 8, got 12"):
        M3DPlan.code(12)


def test_temporal_kernels_are_dilated_3_tap_convs_with_padding_equal_to_dilation(two_stream):
    trunk = two_stream.temporal.backbone
    for stage in trunk.stages:
        m3d = stage.get_submodule("0").m3d
        assert m3d.dilations == (1, 2, 3)
        for d, conv in zip((1, 2, 3), m3d.convs, strict=True):
            assert conv.kernel_size == (3, 1, 1)
            assert conv.dilation == (d, 1, 1) and conv.padding == (d, 0, 0)
            assert conv.bias is None
    assert not any(hasattr(stage.get_submodule("1"), "m3d") for stage in trunk.stages)


def test_multiscale_temporal_conv_matches_eq5_by_hand():
    layer = MultiScaleTemporalConv(1, dilations=(1, 2, 3))
    taps = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5], [-2.0, 3.0, 1.0]])
    with torch.no_grad():
        for conv, w in zip(layer.convs, taps, strict=True):
            conv.weight.copy_(w.view(1, 1, 3, 1, 1))
    s = torch.arange(1.0, 8.0)  # T = 7
    expected = s.clone()
    for i, w in enumerate(taps, start=1):  # y_t += Σ_a w_a s_{t + a i}, zero outside the clip
        for t in range(7):
            for a, wa in zip((-1, 0, 1), w, strict=True):
                if 0 <= t + a * i < 7:
                    expected[t] += wa * s[t + a * i]
    got = layer(s.view(1, 1, 7, 1, 1)).flatten()
    torch.testing.assert_close(got, expected)


def _block_pair(temporal_stride: int = 1) -> tuple[M3DBottleneck, Bottleneck3d]:
    torch.manual_seed(0)
    down = nn.Sequential(pointwise_conv(16, 32, stride=2), nn.BatchNorm3d(32))
    m3d = M3DBottleneck(
        16, 8, stride=2, downsample=down, dilations=(1, 2, 3), temporal_stride=temporal_stride
    )
    plain_down = nn.Sequential(pointwise_conv(16, 32, stride=2), nn.BatchNorm3d(32))
    plain = Bottleneck3d(16, 8, stride=2, downsample=plain_down)
    missing, unexpected = plain.load_state_dict(m3d.state_dict(), strict=False)
    assert missing == [] and all(k.startswith("m3d.") for k in unexpected)
    return m3d.eval(), plain.eval()


def test_m3d_block_equals_its_2d_block_at_init_and_is_order_sensitive_after_training():
    m3d, plain = _block_pair()
    x = torch.randn(2, 16, 8, 6, 4)
    with torch.no_grad():
        torch.testing.assert_close(m3d(x), plain(x), rtol=0, atol=0)
        for conv in m3d.m3d.convs:
            conv.weight.normal_(0, 0.05)
        assert (m3d(x) - plain(x)).abs().max() > 1e-3
        # The 2D block commutes with reversing the frames; the trained M3D block does not.
        torch.testing.assert_close(plain(x.flip(2)), plain(x).flip(2))
        assert (m3d(x.flip(2)) - m3d(x).flip(2)).abs().max() > 1e-3


def test_temporally_strided_m3d_block_equals_its_2d_block_on_a_static_clip():
    m3d, plain = _block_pair(temporal_stride=2)
    static = torch.randn(2, 16, 1, 6, 4).expand(-1, -1, 8, -1, -1)
    with torch.no_grad():
        got = m3d(static)
        assert got.shape[2] == 4
        torch.testing.assert_close(got, plain(static)[:, :, :4])


# --- Residual Attention Layer -------------------------------------------------------------------


def test_ral_is_an_identity_at_init():
    ral = ResidualAttention(32, frames=8)
    x = torch.randn(2, 32, 8, 4, 2)
    for mode in (True, False):
        ral.train(mode)
        with torch.no_grad():
            assert ral.mask_logits(x).count_nonzero() == 0
            torch.testing.assert_close(ral(x), x, rtol=0, atol=0)


def test_ral_mask_is_the_broadcast_product_of_the_three_branches():
    torch.manual_seed(0)
    ral = ResidualAttention(32, frames=8).eval()
    with torch.no_grad():
        ral.spatial[-1].weight.fill_(0.7)
        x = torch.randn(2, 32, 8, 4, 2)
        s = ral.spatial(x.mean(2))[:, 0]  # (B, H, W)
        c = ral.channel(x.mean((2, 3, 4))[..., None, None])[:, :, 0, 0]  # (B, C)
        t = ral.temporal(x.mean((1, 3, 4))[..., None, None])[:, :, 0, 0]  # (B, T)
        mask = torch.sigmoid(torch.einsum("bhw,bc,bt->bcthw", s, c, t))
        torch.testing.assert_close(ral(x), x / 2 + mask * x)


def _ral_grads(ral: ResidualAttention) -> dict[str, torch.Tensor]:
    ral.train().zero_grad()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(4, 32, 8, 4, 2, generator=gen)
    (ral(x) * torch.randn(x.shape, generator=gen)).sum().backward()
    return {n: p.grad.clone() for n, p in ral.named_parameters()}


def test_ral_trains_from_identity_init():
    torch.manual_seed(0)
    ral = ResidualAttention(32, frames=8)
    grads = _ral_grads(ral)
    # Step 0: S_m = 0, so only conv_s2 gets a gradient (C_m * T_m != 0 reaches it) ...
    assert grads["spatial.3.weight"].count_nonzero() > 0
    assert all(g.count_nonzero() == 0 for n, g in grads.items() if n != "spatial.3.weight")
    # ... and once it has moved, every branch does.
    with torch.no_grad():
        ral.spatial[-1].weight.sub_(0.1 * grads["spatial.3.weight"])
    assert all(g.count_nonzero() > 0 for g in _ral_grads(ral).values())


def test_zero_init_of_every_branch_would_freeze_the_ral():
    """The paper's "initializing all convolution layers as zero" never trains: each factor's
    gradient is proportional to the product of the other two, all zero."""
    torch.manual_seed(0)
    ral = ResidualAttention(32, frames=8)
    with torch.no_grad():
        for branch in (ral.spatial, ral.channel, ral.temporal):
            branch[-1].weight.zero_()
    assert all(g.count_nonzero() == 0 for g in _ral_grads(ral).values())


@pytest.mark.parametrize("branch", ["s", "c", "t"])
def test_single_branch_ral_ablations_start_as_identity_and_train(branch):
    ral = ResidualAttention(32, frames=8, branches=branch)
    x = torch.randn(2, 32, 8, 4, 2)
    torch.testing.assert_close(ral.eval()(x), x, rtol=0, atol=0)
    last = {"s": "spatial", "c": "channel", "t": "temporal"}[branch] + ".3.weight"
    assert _ral_grads(ral)[last].count_nonzero() > 0


def test_ral_rejects_other_clip_lengths_and_branch_letters():
    with pytest.raises(ValueError, match=r"built for T=8 frames.*got T=4"):
        ResidualAttention(32, frames=8)(torch.randn(2, 32, 4, 4, 2))
    with pytest.raises(ValueError, match="distinct letters of 'sct', got 'sx'"):
        ResidualAttention(32, frames=8, branches="sx")


# --- parameter counts ---------------------------------------------------------------------------


def test_paper_temporal_stream_overhead_matches_the_derived_figures(two_stream):
    temporal, spatial = two_stream.temporal.backbone, two_stream.spatial.backbone
    assert count(spatial) == RESNET50_TRUNK
    assert count(temporal, having=".m3d.") == M3D_PAPER_PARAMS  # 12.53 MB, not the printed 4.2
    rals = ral_params(256, 8) + ral_params(512, 8) + ral_params(1024, 8)
    assert count(temporal, having="ral") == rals == 189_257
    assert count(temporal) - count(spatial) == M3D_PAPER_PARAMS + rals
    assert count(two_stream.temporal.head, having="classifier") == 128 * NUM_CLASSES + NUM_CLASSES
    assert count(two_stream.temporal) - count(two_stream.temporal.head, having="classifier") == (
        RESNET50_TRUNK + M3D_PAPER_PARAMS + rals + HEAD_128
    )


def test_code_temporal_stream_overhead_matches_the_derived_figures():
    model = create_model("m3d_code_r50", stream="temporal")
    trunk = model.temporal.backbone
    assert count(trunk, having="m3d") == M3D_CODE_PARAMS  # stem_m3d + 4 block M3Ds, 5.60 MB
    rals = ral_params(256, 8) + ral_params(512, 4) + ral_params(1024, 2)
    assert count(trunk, having="ral") == rals
    assert count(trunk) == RESNET50_TRUNK + M3D_CODE_PARAMS + rals


# --- two streams --------------------------------------------------------------------------------


def test_two_stream_embedding_is_the_concat_of_per_stream_unit_vectors(two_stream):
    model = two_stream.eval()
    x = clip()
    with torch.no_grad():
        emb = model(x)
        parts = [
            F.normalize(s.head.embedding(s.pool(s.backbone(x))), dim=1)
            for s in (model.spatial, model.temporal)
        ]
    assert emb.shape == (2, 256) == (2, model.pretrained_cfg.embedding_dim)
    torch.testing.assert_close(emb, torch.cat(parts, dim=1))
    torch.testing.assert_close(emb[:, :128].norm(dim=1), torch.ones(2))
    torch.testing.assert_close(emb[:, 128:].norm(dim=1), torch.ones(2))


def test_two_stream_training_output_and_independent_streams(two_stream):
    model = two_stream.train()
    out = model(clip())
    assert out.features.shape == (2, 256)
    assert [lg.shape for lg in out.logits] == [(2, NUM_CLASSES)] * 2
    spatial_ids = {id(p) for p in model.spatial.parameters()}
    assert spatial_ids.isdisjoint(id(p) for p in model.temporal.parameters())


def test_temporal_stream_equals_the_2d_stream_it_is_initialised_from(two_stream):
    """M3D starts from the 2D network ("Initialized on a good 2D CNN model"); M3D and RAL leave
    it unchanged on any clip."""
    model = copy.deepcopy(two_stream).eval()
    missing, unexpected = model.temporal.backbone.load_state_dict(
        model.spatial.backbone.state_dict(), strict=False
    )
    assert unexpected == [] and all(".m3d." in k or k.startswith("ral") for k in missing)
    x = clip(seed=1)
    with torch.no_grad():
        got, expected = model.temporal.backbone(x), model.spatial.backbone(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_pretrained_cfg_follows_the_paper(two_stream):
    cfg = two_stream.pretrained_cfg
    assert cfg.input_size == (3, 256, 128)
    assert (cfg.train_clip_len, cfg.train_sampling) == (8, "consecutive")
    assert (cfg.test_clip_len, cfg.test_sampling) == (8, "chunks_drop_last")
    assert cfg.aggregation == "mean"
    assert (cfg.distance, cfg.normalize_embedding) == ("euclidean", True)
    assert cfg.backbone_prefixes == ("spatial.backbone", "temporal.backbone")
    assert two_stream.min_clip_len == 8 and two_stream.order_sensitive


def test_model_rejects_a_clip_of_another_length(two_stream):
    with pytest.raises(ValueError, match=r"built for clip_len=8 frames, got T=4.*clip_len=4"):
        two_stream.eval()(clip(4))


def test_spatial_stream_alone():
    model = create_model("m3d_r50", num_classes=NUM_CLASSES, stream="spatial").eval()
    cfg = model.pretrained_cfg
    assert model.stream_names == ("spatial",) and not hasattr(model, "temporal")
    assert (cfg.embedding_dim, cfg.backbone_prefixes) == (128, ("spatial.backbone",))
    assert cfg.train_clip_len == 1  # the 2D stream trains on 128-image batches (paper)
    assert (model.min_clip_len, model.order_sensitive) == (1, False)
    with torch.no_grad():
        emb = model(clip(3))  # any T
    assert emb.shape == (2, 128)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    assert len(model.train()(clip(3)).logits) == 1


def test_temporal_stream_alone_with_another_clip_length():
    model = create_model("m3d_r50", stream="temporal", clip_len=16)
    cfg = model.pretrained_cfg
    assert model.stream_names == ("temporal",)
    assert (cfg.embedding_dim, cfg.backbone_prefixes) == (128, ("temporal.backbone",))
    assert (cfg.train_clip_len, cfg.test_clip_len, model.min_clip_len) == (16, 16, 16)
    assert model.temporal.backbone.layer1.get_submodule("0").m3d.dilations == tuple(range(1, 8))
    assert model.temporal.backbone.ral1.frames == 16
    assert model.train()(clip(16)).logits == ()


def test_unknown_stream_is_rejected():
    with pytest.raises(ValueError, match="stream must be 'both', 'spatial' or 'temporal'"):
        create_model("m3d_r50", stream="optical_flow")

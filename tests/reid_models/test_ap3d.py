"""AP3D family (Gu et al., ECCV 2020): APM's alignment and padding, block placement, and the
figures of its Tables 1-2."""

from __future__ import annotations

import pytest
import torch

from reid_models import create_model
from reid_models.layers.apm import APM
from reid_models.layers.nonlocal_block import NonLocalBlock
from reid_models.layers.temporal_conv import I3DConv, P3DConv
from reid_models.summary import PAPER_FIGURES, measure


def _apm_with_identity_embedding(channels: int, scale: float) -> APM:
    apm = APM(channels, reduction=1, scale=scale)
    with torch.no_grad():
        apm.semantic_mapping.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1))
        apm.contrastive_att.weight.zero_()  # gate = sigmoid(0) = 0.5 everywhere
    return apm


def test_apm_interleaves_neighbours_around_the_unchanged_centre():
    x = torch.randn(2, 16, 3, 4, 2)
    out = APM(16)(x)
    assert out.shape == (2, 16, 9, 4, 2)
    torch.testing.assert_close(out[:, :, 1::3], x)


def test_apm_reconstructs_missing_neighbours_as_zero():
    out = APM(16)(torch.randn(1, 16, 3, 4, 2))
    assert out[:, :, 0].count_nonzero() == 0  # frame 0 has no previous frame
    assert out[:, :, -1].count_nonzero() == 0  # the last frame has no next frame


def test_apm_aligns_a_moved_neighbour_to_the_centre():
    """A neighbour that is the centre frame shifted in space is reconstructed back in place."""
    h, w, c = 4, 3, 24
    features = torch.nn.functional.one_hot(torch.randperm(c)[: h * w], c).float()
    centre = features.T.reshape(c, h, w)
    moved = centre.roll(shifts=1, dims=1)  # the person walked one row down
    clip = torch.stack((centre, moved), dim=1).unsqueeze(0)  # (1, C, 2, H, W)
    out = _apm_with_identity_embedding(c, scale=50.0)(clip)
    # Frame 0's "next" slot (index 2) holds frame 1 warped back onto frame 0, gated by 0.5.
    torch.testing.assert_close(out[0, :, 2], 0.5 * centre, atol=1e-4, rtol=0)
    torch.testing.assert_close(out[0, :, 3], 0.5 * moved, atol=1e-4, rtol=0)


def test_contrastive_attention_is_detached_from_the_features_as_in_the_official_code():
    x = torch.randn(1, 16, 3, 4, 2, requires_grad=True)
    grads = []
    for detach in (True, False):
        torch.manual_seed(0)
        apm = APM(16, detach_attention=detach)
        apm(x).sum().backward()
        grads.append(x.grad.clone())
        assert apm.x_mapping.weight.grad.count_nonzero() > 0
        x.grad = None
    assert not torch.allclose(grads[0], grads[1])


def _replaced(model) -> list[str]:
    return sorted(
        name for name, m in model.backbone.named_modules() if isinstance(m, (P3DConv, I3DConv))
    )


@pytest.mark.parametrize(
    ("name", "blocks"),
    [
        ("ap3d_r50", ["layer2.0", "layer2.2", "layer3.0", "layer3.2", "layer3.4"]),
        ("ap3d_r34", ["layer2.0", "layer2.2", "layer3.0", "layer3.2", "layer3.4"]),
        ("ap3d_r18", ["layer2.0", "layer3.0"]),
    ],
)
def test_half_of_layer2_and_layer3_blocks_are_replaced(name, blocks):
    conv = "conv2" if name.endswith("r50") else "conv1"
    assert _replaced(create_model(name)) == [f"{b}.{conv}" for b in blocks]


def test_single_block_ablation_of_table_3():
    model = create_model("ap3d_r50", temporal_blocks=[(3, 4)])
    assert _replaced(model) == ["layer3.4.conv2"]
    with pytest.raises(ValueError, match=r"block \(3, 6\) is not in a ResNet-50"):
        create_model("ap3d_r50", temporal_blocks=[(3, 6)])


def test_nonlocal_blocks_follow_every_other_block_of_layer2_and_layer3():
    model = create_model("nl_ap3d_r50")
    found = sorted(n for n, m in model.named_modules() if isinstance(m, NonLocalBlock))
    assert found == [
        "backbone.layer2.nonlocal1",
        "backbone.layer2.nonlocal3",
        "backbone.layer3.nonlocal1",
        "backbone.layer3.nonlocal3",
        "backbone.layer3.nonlocal5",
    ]


def test_p3d_variant_a_starts_as_identity_on_the_centre_tap():
    conv = P3DConv(8, 8, variant="A")
    x = torch.randn(1, 8, 3, 5, 4)
    torch.testing.assert_close(conv(x), conv.spatial(x))
    with pytest.raises(ValueError, match="variant must be 'A', 'B' or 'C', got 'D'"):
        P3DConv(8, 8, variant="D")


@pytest.mark.parametrize("name", sorted(PAPER_FIGURES))
def test_parameter_counts_match_the_paper(name):
    params = sum(p.numel() for n, p in create_model(name).named_parameters())
    assert params / 1e6 == pytest.approx(PAPER_FIGURES[name].params_m, abs=0.006)


@pytest.mark.parametrize("name", ["c2d_r50", "ap3d_r50"])
def test_conv_macs_are_within_one_percent_of_the_printed_gflops(name):
    cost = measure(name)
    assert cost.clip == (3, 4, 256, 128)
    assert cost.gmac_conv == pytest.approx(PAPER_FIGURES[name].gmac, rel=0.01)
    # The printed GFLOPs (Table 1) match convolution MACs: they leave out APM's two matrix
    # products (~0.68 GMAC at T = 4); the full count has them.
    assert (cost.gmac_all > cost.gmac_conv + 0.5) == (name == "ap3d_r50")


# --- base_width: narrow trunks (not from the paper; see reid_models.ap3d) -----------------------

AP3D_FAMILY = [
    "c2d_r18", "p3d_r18", "ap3d_r18", "c2d_r34", "p3d_r34", "ap3d_r34", "c2d_r50", "i3d_r50",
    "p3d_r50", "ap3d_r50", "ap_i3d_r50", "nl_c2d_r50", "nl_p3d_r50", "nl_ap3d_r50",
]  # fmt: skip


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", AP3D_FAMILY)
def test_a_narrow_trunk_gives_an_embedding_of_its_width(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, base_width=16)
    channels = 16 * 8 * (4 if name.endswith("r50") else 1)
    assert model.backbone.out_channels == channels == model.pretrained_cfg.embedding_dim
    assert model.backbone.conv1.out_channels == 16
    clips = torch.randn(2, 3, 4, 64, 32)
    out = model.train()(clips)
    assert out.features.shape == (2, channels) and out.logits[0].shape == (2, 5)
    embedding = model.eval()(clips)
    assert embedding.shape == (2, channels) and torch.isfinite(embedding).all()


@pytest.mark.parametrize("name", ["c2d_r18", "ap3d_r18", "nl_ap3d_r50"])
@pytest.mark.parametrize("width", [16, 32])
def test_parameters_scale_with_the_square_of_the_width(name, width):
    ratio = _params(create_model(name, base_width=width)) / _params(create_model(name))
    assert ratio == pytest.approx((width / 64) ** 2, rel=0.03)


@pytest.mark.parametrize("name", ["c2d_r18", "ap3d_r50"])
def test_the_default_width_is_torchvisions(name):
    default, explicit = create_model(name), create_model(name, base_width=64)
    assert default.backbone.spec.base_width == 64
    shapes = {k: v.shape for k, v in default.state_dict().items()}
    assert shapes == {k: v.shape for k, v in explicit.state_dict().items()}
    assert default.pretrained_cfg == explicit.pretrained_cfg


def test_a_width_below_one_is_refused():
    with pytest.raises(ValueError, match="base_width must be >= 1, got 0"):
        create_model("c2d_r18", base_width=0)


@pytest.mark.parametrize(("name", "source"), [("ap3d_r18", "c2d_r18"), ("nl_ap3d_r50", "c2d_r50")])
def test_a_narrow_3d_trunk_computes_its_narrow_2d_source_on_a_static_clip(name, source, tmp_path):
    """APM, the P3D temporal conv and the non-local blocks start as identities at any width."""
    torch.manual_seed(0)
    c2d = create_model(source, base_width=16).eval()
    with torch.no_grad():  # non-trivial BN statistics, as a trained source has
        for m in c2d.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    # The 2D source in torchvision's key format: (O, I, 1, k, k) kernels as (O, I, k, k).
    state = {k: v.squeeze(2) if v.dim() == 5 else v for k, v in c2d.backbone.state_dict().items()}
    torch.save(state, tmp_path / "narrow2d.pth")
    model = create_model(name, base_width=16, pretrained=tmp_path / "narrow2d.pth").eval()
    static = torch.randn(2, 3, 1, 64, 32).expand(-1, -1, 4, -1, -1)
    with torch.no_grad():
        expected, got = c2d.backbone(static), model.backbone(static)
    error = (got - expected).abs().max() / expected.abs().max()
    assert error < 1e-5, f"relative error {error:.2e}"

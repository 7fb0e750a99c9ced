"""AP3D family (ap3d_spec.md): APM's alignment and padding, block placement, paper figures."""

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
    # The printed figure leaves out APM's two matrix products (spec A12); the full count has them.
    assert (cost.gmac_all > cost.gmac_conv + 0.5) == (name == "ap3d_r50")

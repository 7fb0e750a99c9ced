"""3D PersonVLAD: the C3D trunk and its weight format, the VLAD layer, sizes and counts.

Pins our reading of Wu et al. (TNNLS 2019), which released no code: C3D's state-dict keys and pool5
padding (the paper gives neither), the decoupled soft assignment and its normalisations (Sec. III-B,
Eq. 4-5; Sec. III-C), KD = 16,384, the parameter count from the layer sizes (the paper prints none)
and the C3D preprocessing (the checkpoint's; the paper states none). Shapes-only checks run on the
meta device; the one real forward pass is at the registry tests' small size.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from reid_models import WeightsError, create_model, load_pretrained
from reid_models.c3d import C3D, C3D_MEAN_RGB, C3D_STD, swap_conv1_rgb_bgr
from reid_models.layers.vlad import SoftVLAD
from reid_models.personvlad import PersonVLAD

# DavideA/c3d-pytorch's C3D_model.py, i.e. the Sports-1M ``c3d.pickle``: (out, in) per conv.
C3D_CONVS = {
    "conv1": (64, 3),
    "conv2": (128, 64),
    "conv3a": (256, 128),
    "conv3b": (256, 256),
    "conv4a": (512, 256),
    "conv4b": (512, 512),
    "conv5a": (512, 512),
    "conv5b": (512, 512),
}
C3D_FCS = {"fc6": (4096, 8192), "fc7": (4096, 4096), "fc8": (487, 4096)}
FC_KEYS = sorted(f"{fc}.{leaf}" for fc in C3D_FCS for leaf in ("weight", "bias"))


def c3d_state_dict() -> dict[str, torch.Tensor]:
    """Random tensors with the real C3D shapes; fc6/fc7 as stride-0 views to keep the file small."""
    gen = torch.Generator().manual_seed(0)
    sd: dict[str, torch.Tensor] = {}
    for name, (out_ch, in_ch) in C3D_CONVS.items():
        sd[f"{name}.weight"] = torch.randn(out_ch, in_ch, 3, 3, 3, generator=gen) * 0.01
        sd[f"{name}.bias"] = torch.randn(out_ch, generator=gen)
    for name, (out_f, in_f) in C3D_FCS.items():
        sd[f"{name}.weight"] = torch.randn(1, in_f, generator=gen).expand(out_f, in_f)
        sd[f"{name}.bias"] = torch.randn(out_f, generator=gen)
    return sd


@pytest.fixture(scope="module")
def c3d_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("c3d") / "c3d.pickle"
    torch.save(c3d_state_dict(), path)
    return path


def meta_model(**kw) -> PersonVLAD:
    with torch.device("meta"):
        return create_model("personvlad_c3d", **kw)


# --- C3D trunk and its weights -------------------------------------------------------------------


def test_c3d_keys_and_shapes_are_the_pytorch_ports():
    with torch.device("meta"):
        trunk = C3D()
    expected = {}
    for name, (out_ch, in_ch) in C3D_CONVS.items():
        expected[f"{name}.weight"] = (out_ch, in_ch, 3, 3, 3)
        expected[f"{name}.bias"] = (out_ch,)
    assert {k: tuple(v.shape) for k, v in trunk.state_dict().items()} == expected


@pytest.mark.parametrize(("variant", "channels"), [("B", 512), ("A", 256)])
def test_pool5_is_1x6x3_for_a_16x180x90_clip(variant, channels):
    # 16x180x90 halves to 1x5x2 through the five pools with floor pooling; C3D's pool5 padding
    # (0, 1, 1) gives 1x6x3.
    with torch.device("meta"):
        out = C3D(variant=variant)(torch.empty(1, 3, 16, 180, 90))
    assert tuple(out.shape) == (1, channels, 1, 6, 3)


def test_c3d_rejects_clips_shorter_than_16_frames():
    with torch.device("meta"), pytest.raises(ValueError, match=r">= 16 frames, got T=8"):
        C3D()(torch.empty(1, 3, 8, 64, 32))


def test_unknown_backbone_lists_the_choices():
    with pytest.raises(ValueError, match=r"one of \['A', 'B'\], got 'C'"):
        meta_model(backbone="C")


def test_c3d_file_loads_into_the_backbone(c3d_file):
    source = torch.load(c3d_file, weights_only=True)
    torch.manual_seed(0)
    model = create_model("personvlad_c3d", pretrained=c3d_file)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, source[key]), key
    torch.manual_seed(0)
    fresh = create_model("personvlad_c3d")
    report = load_pretrained(fresh, c3d_file)
    assert sorted(report.loaded) == sorted(f"backbone.{k}" for k in source if k not in FC_KEYS)
    assert report.unexpected == FC_KEYS
    assert report.inflated == []
    assert report.missing == sorted(k for k in fresh.state_dict() if not k.startswith("backbone."))
    # The part module and the VLAD are not in the file: they keep their initialisation.
    for key, value in fresh.state_dict().items():
        if not key.startswith("backbone."):
            assert torch.equal(value, model.state_dict()[key]), key


def test_option_a_takes_conv1_conv2_conv3a_conv3b_and_keeps_conv5_random(c3d_file):
    source = torch.load(c3d_file, weights_only=True)
    model = create_model("personvlad_c3d", backbone="A")
    conv5 = model.backbone.conv5.weight.clone()
    report = load_pretrained(model, c3d_file)
    taken = ("conv1", "conv2", "conv3a", "conv3b")
    assert sorted(report.loaded) == sorted(
        f"backbone.{n}.{p}" for n in taken for p in ("weight", "bias")
    )
    backbone_missing = [k for k in report.missing if k.startswith("backbone.")]
    assert backbone_missing == ["backbone.conv5.bias", "backbone.conv5.weight"]
    assert "conv4a.weight" in report.unexpected and "conv5b.weight" in report.unexpected
    # Option A's 4th conv (256 -> 256) takes C3D's conv3b, the one conv of that shape.
    assert torch.equal(model.backbone.conv3b.weight, source["conv3b.weight"])
    assert torch.equal(model.backbone.conv5.weight, conv5)


def test_a_wrong_shape_names_the_key_and_both_shapes(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save({"conv5b.weight": torch.zeros(512, 256, 3, 3, 3)}, path)
    message = (
        r"backbone\.conv5b\.weight has shape \(512, 256, 3, 3, 3\) in the file but the model "
        r"expects \(512, 512, 3, 3, 3\)"
    )
    with pytest.raises(WeightsError, match=message):
        create_model("personvlad_c3d", pretrained=path)


def test_swapping_conv1_channels_turns_a_bgr_kernel_into_an_rgb_one():
    sd = {"conv1.weight": torch.randn(64, 3, 3, 3, 3), "conv1.bias": torch.randn(64)}
    rgb = torch.randn(1, 3, 4, 8, 8)
    swapped = swap_conv1_rgb_bgr(sd)
    torch.testing.assert_close(
        F.conv3d(rgb, swapped["conv1.weight"]), F.conv3d(rgb.flip(1), sd["conv1.weight"])
    )
    assert swapped["conv1.bias"] is sd["conv1.bias"]
    with pytest.raises(ValueError, match=r"\(O, 3, kt, kh, kw\), got \(64, 4, 3, 3, 3\)"):
        swap_conv1_rgb_bgr({"conv1.weight": torch.zeros(64, 4, 3, 3, 3)})


def test_normalisation_gives_0_255_pixels_minus_the_sports1m_mean():
    cfg = meta_model().pretrained_cfg
    assert cfg.mean == C3D_MEAN_RGB and cfg.std == C3D_STD
    pixel = torch.tensor([0.2, 0.5, 0.9])
    normalised = (pixel - torch.tensor(cfg.mean)) / torch.tensor(cfg.std)
    torch.testing.assert_close(normalised, pixel * 255 - torch.tensor([101.4083, 97.6570, 90.2516]))


# --- Model sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backbone", "counts"),
    [
        # From the layer sizes: conv 27,655,936; detectors 3,078; per-part FCs 787,968; VLAD
        # 32,832.
        ("B", {"backbone": 27_655_936, "detector": 3_078, "fc": 787_968, "vlad": 32_832}),
        # Option A: conv 4,651,008; 256 -> 256 FCs (total 5.08 M).
        ("A", {"backbone": 4_651_008, "detector": 1_542, "fc": 394_752, "vlad": 32_832}),
    ],
)
def test_parameter_counts_match_the_layer_sizes(backbone, counts):
    model = meta_model(backbone=backbone, num_classes=625)  # no classifier: OIM is in trainers
    parts = {
        "backbone": model.backbone,
        "detector": model.parts.detector,
        "fc": model.parts.fc,
        "vlad": model.vlad,
    }
    got = {k: sum(p.numel() for p in m.parameters()) for k, m in parts.items()}
    assert got == counts
    assert sum(p.numel() for p in model.parameters()) == sum(counts.values())


def test_config_is_the_papers():
    model = meta_model()
    cfg = model.pretrained_cfg
    assert cfg.input_size == (3, 180, 90) and cfg.embedding_dim == 64 * 256 == 16_384
    assert (cfg.train_clip_len, cfg.train_sampling) == (16, "consecutive")
    assert (cfg.test_clip_len, cfg.test_sampling, cfg.test_stride) == (16, "sliding", 8)
    assert (cfg.distance, cfg.source_format) == ("euclidean", "c3d")
    assert model.min_clip_len == 16 and model.order_sensitive
    assert meta_model(num_clusters=8, part_dim=32).embedding_dim == 256


# --- SoftVLAD ------------------------------------------------------------------------------------


def test_decoupled_parameters_start_tied_to_the_centres():
    vlad = SoftVLAD(num_clusters=64, dim=256, alpha=1000.0)
    c = vlad.centres.detach()
    torch.testing.assert_close(c.norm(dim=1), torch.ones(64))  # random unit centres
    torch.testing.assert_close(vlad.assign_weight.detach(), 2000.0 * c)
    torch.testing.assert_close(vlad.assign_bias.detach(), -1000.0 * c.pow(2).sum(1))
    kmeans = torch.randn(64, 256) * 0.3
    vlad.init_centres(kmeans)
    torch.testing.assert_close(vlad.centres.detach(), kmeans)
    torch.testing.assert_close(vlad.assign_weight.detach(), 2000.0 * kmeans)
    torch.testing.assert_close(vlad.assign_bias.detach(), -1000.0 * kmeans.pow(2).sum(1))
    assert len({id(p) for p in vlad.parameters()}) == 3  # w, z, c are separate tensors
    with pytest.raises(ValueError, match=r"\(64, 256\) tensor.*got \(64, 128\)"):
        vlad.init_centres(torch.zeros(64, 128))


def test_tied_assignment_is_eq4_the_softmax_of_minus_alpha_squared_distance():
    vlad = SoftVLAD(num_clusters=5, dim=3, alpha=2.0)
    vlad.init_centres(torch.randn(5, 3))
    x = vlad.normalize_input(torch.randn(2, 4, 3))
    dist = (x.unsqueeze(2) - vlad.centres.detach()).pow(2).sum(-1)  # (N, M, K)
    with torch.no_grad():
        torch.testing.assert_close(vlad.soft_assign(x), (-2.0 * dist).softmax(-1))


def test_hard_assignment_by_hand():
    # K = D = M = 2, centres e1 and e2; alpha = 1000 makes the assignment hard.
    vlad = SoftVLAD(num_clusters=2, dim=2, alpha=1000.0)
    vlad.init_centres(torch.eye(2))
    x1, x2 = (3 / math.sqrt(10), 1 / math.sqrt(10)), (1 / math.sqrt(5), 2 / math.sqrt(5))
    r1 = (x1[0] - 1, x1[1])  # x1 is nearer e1
    r2 = (x2[0], x2[1] - 1)  # x2 is nearer e2
    n1, n2 = math.hypot(*r1), math.hypot(*r2)
    s = math.sqrt(2)  # two unit blocks after intra-normalisation
    expected = [r1[0] / n1 / s, r1[1] / n1 / s, r2[0] / n2 / s, r2[1] / n2 / s]
    raw = torch.tensor([[[3.0, 1.0], [1.0, 2.0]]])  # normalised inside the layer
    with torch.no_grad():
        torch.testing.assert_close(vlad(raw), torch.tensor([expected]))
        # Both descriptors on e1: the empty cluster stays exactly zero.
        both = vlad(torch.tensor([[[3.0, 1.0], [2.0, 1.0]]]))
    r = (x1[0] + 2 / math.sqrt(5) - 2, x1[1] + 1 / math.sqrt(5))
    n = math.hypot(*r)
    torch.testing.assert_close(both, torch.tensor([[r[0] / n, r[1] / n, 0.0, 0.0]]))


def test_output_is_unit_norm_with_intra_normalised_blocks():
    vlad = SoftVLAD(num_clusters=8, dim=16, alpha=1.0)  # soft: every cluster gets mass
    with torch.no_grad():
        v = vlad(torch.rand(3, 6, 16))
    torch.testing.assert_close(v.norm(dim=1), torch.ones(3))
    # Each of the K blocks had unit norm before the global L2, so each is now 1/sqrt(K).
    torch.testing.assert_close(v.view(3, 8, 16).norm(dim=2), torch.full((3, 8), 8**-0.5))
    with pytest.raises(ValueError, match=r"\(N, M, 16\) descriptors, got \(3, 16\)"):
        vlad(torch.rand(3, 16))


# --- The whole model at the registry tests' size -------------------------------------------------


def test_oim_feature_is_the_embedding_and_every_parameter_learns():
    torch.manual_seed(0)
    model = create_model("personvlad_c3d", num_classes=625)
    x = torch.randn(2, 3, 16, 64, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        embedding = model.eval()(x)
    out = model.train()(x)
    assert out.logits == () and out.features.shape == (2, 16_384)
    torch.testing.assert_close(out.features, embedding)  # no BN, no dropout
    torch.testing.assert_close(embedding.norm(dim=1), torch.ones(2))
    # A loss that depends on the direction of v, as OIM's cosine does (|v|^2 is constant).
    direction = torch.randn(out.features.shape, generator=torch.Generator().manual_seed(1))
    (out.features * direction).sum().backward()
    weak = {n: p.grad.abs().max().item() for n, p in model.named_parameters()}
    # Nearly hard assignment (alpha = 1000) still leaves w and z a real gradient.
    assert {n: g for n, g in weak.items() if not g > 1e-8} == {}
    descriptors = model.local_descriptors(x)
    assert descriptors.shape == (2, 6, 256)
    torch.testing.assert_close(descriptors.norm(dim=-1), torch.ones(2, 6))

"""GLTR's hard parts: DTP receptive fields, TSA as an identity at init and its attention's
orientation, dimensions and parameter counts vs the paper's sizes, chunked frame network.

Parameter counts (exact; GLTR's sizes, d = 128, N = 3 and alpha = 2 (Li et al. ICCV 2019, §3.2-3.3,
§4.2), give DTP = 3 * 128 * 128 * 3 = 147,456 and TSA about 4 * 384 * 192 = 294,912 weights plus
BN and biases):

    part                          paper (gltr_r50)     code overrides
    DTP, 3 x 128*128*3            147,456              147,456
    TSA                           296,256              525,568
      = 4*C*C/2 weights           294,912              524,288
      + BN                        768 (B, C)           1,024 (after W)
      + biases                    192 (g) + 384 (W)    256 (theta)
    backbone (ResNet-50 trunk)    23,508,032           23,508,032
    frame_fc 2048 -> 128          262,272              262,272
    head BN (train-only)          768                  1,024
    total, num_classes=0          24,214,784           24,444,352
    classifier, 625 classes       240,625              320,625
    total, num_classes=625        24,455,409           24,764,977
"""

from __future__ import annotations

import math

import pytest
import torch

from reid_models import create_model
from reid_models.gltr import GLTR, GLTR_CODE_OVERRIDES
from reid_models.layers.gltr_layers import DilatedTemporalPyramid, TemporalSelfAttention


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def paper() -> GLTR:
    torch.manual_seed(0)
    return create_model("gltr_r50", num_classes=625)


@pytest.fixture(scope="module")
def code() -> GLTR:
    torch.manual_seed(0)
    return create_model("gltr_r50", num_classes=625, **GLTR_CODE_OVERRIDES)


# --- DTP ---------------------------------------------------------------------------------------


def test_dtp_concatenates_branches_and_optionally_the_input_first():
    x = torch.randn(2, 128, 7)
    paper = DilatedTemporalPyramid(128)
    code = DilatedTemporalPyramid(128, dilations=(1, 2, 3), include_identity=True)
    assert paper(x).shape == (2, 384, 7) and paper.out_channels == 384
    out = code(x)
    assert out.shape == (2, 512, 7) and code.out_channels == 512
    assert torch.equal(out[:, :128], x)
    assert torch.equal(out[:, 128:256], code.branches[0](x))


def test_dtp_branches_are_bias_free_and_initialised_with_std_0_001():
    dtp = DilatedTemporalPyramid(128)
    assert [(b.dilation, b.padding, b.kernel_size) for b in dtp.branches] == [
        ((1,), (1,), (3,)),
        ((2,), (2,), (3,)),
        ((4,), (4,), (3,)),
    ]
    assert all(b.bias is None for b in dtp.branches)
    std = torch.cat([b.weight.flatten() for b in dtp.branches]).std().item()
    assert 0.00095 < std < 0.00105


@pytest.mark.parametrize("r", [1, 2, 4])
def test_dtp_impulse_reaches_exactly_t_minus_r_t_and_t_plus_r(r):
    """Tap k of kernel (k+1) * identity: an impulse at frame 8 gives 1 at 8+r, 2 at 8, 3 at 8-r."""
    dtp = DilatedTemporalPyramid(4, dilations=(r,))
    with torch.no_grad():
        for k in range(3):
            dtp.branches[0].weight[:, :, k] = (k + 1) * torch.eye(4)
    x = torch.zeros(1, 4, 20)
    x[0, 1, 8] = 1.0
    expected = torch.zeros(1, 4, 20)
    expected[0, 1, 8 + r], expected[0, 1, 8], expected[0, 1, 8 - r] = 1.0, 2.0, 3.0
    torch.testing.assert_close(dtp(x), expected, rtol=0, atol=0)
    # At the clip's start the tap before it reads the zero padding; nothing wraps around.
    x0 = torch.zeros(1, 4, 20)
    x0[0, 1, 0] = 1.0
    expected0 = torch.zeros(1, 4, 20)
    expected0[0, 1, 0], expected0[0, 1, r] = 2.0, 1.0
    torch.testing.assert_close(dtp(x0), expected0, rtol=0, atol=0)


def test_dtp_receptive_fields_at_init_are_3_5_and_9_frames():
    dtp = DilatedTemporalPyramid(8, init_std=1.0)
    x = torch.zeros(1, 8, 21)
    x[0, :, 10] = 1.0
    reach = dtp(x)[0].reshape(3, 8, 21).abs().sum(dim=1)  # (branch, frame)
    for i, r in enumerate((1, 2, 4)):
        reached = reach[i].nonzero().flatten().tolist()
        assert reached == [10 - r, 10, 10 + r]
        assert max(reached) - min(reached) + 1 == 2 * r + 1


def test_dtp_rejects_bad_configurations():
    with pytest.raises(ValueError, match=r"positive integers, got \(1, 0\)"):
        DilatedTemporalPyramid(8, dilations=(1, 0))
    with pytest.raises(ValueError, match="at least one dilation or include_identity"):
        DilatedTemporalPyramid(8, dilations=())
    with pytest.raises(ValueError, match="odd and >= 1, got 4"):
        DilatedTemporalPyramid(8, kernel_size=4)


# --- TSA ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["paper", "code"])
@pytest.mark.parametrize("train", [True, False])
def test_tsa_is_the_identity_at_init(variant, train):
    tsa = TemporalSelfAttention(384, variant=variant).train(train)
    x = torch.randn(3, 384, 9)
    assert torch.equal(tsa(x), x)


def test_tsa_starts_from_zeroed_w_as_paper_and_code_say():
    paper = TemporalSelfAttention(384)
    assert paper.W.weight.count_nonzero() == 0 and paper.W.bias.count_nonzero() == 0
    # B and C: 1x1 conv -> BN -> ReLU, the conv without a bias the BN would cancel.
    for branch in (paper.b, paper.c):
        conv, bn, relu = branch
        assert conv.bias is None and conv.kernel_size == (1,)
        assert isinstance(bn, torch.nn.BatchNorm1d) and isinstance(relu, torch.nn.ReLU)
    code = TemporalSelfAttention(512, variant="code")
    assert code.W[1].weight.count_nonzero() == 0 and code.W[1].bias.count_nonzero() == 0
    assert code.W[0].weight.count_nonzero() > 0


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_tsa_attention_columns_sum_to_one_over_source_frames(variant):
    tsa = TemporalSelfAttention(64, variant=variant).eval()
    x = torch.randn(2, 64, 11)
    m = tsa.attention(x)
    assert m.shape == (2, 11, 11)
    torch.testing.assert_close(m.sum(dim=1), torch.ones(2, 11))
    assert not torch.allclose(m.sum(dim=2), torch.ones(2, 11))  # rows are not normalised


def test_tsa_attention_by_hand():
    """C = 2, inner 1, b = c = channel 0: logits[s, t] = s * t for x0 = (0, 1, 2)."""
    tsa = TemporalSelfAttention(2, variant="code")
    with torch.no_grad():
        tsa.b.weight.copy_(torch.tensor([[[1.0], [0.0]]]))
        tsa.c.weight.copy_(torch.tensor([[[1.0], [0.0]]]))
        tsa.c.bias.zero_()
    x = torch.tensor([[[0.0, 1.0, 2.0], [5.0, -3.0, 7.0]]])
    m = tsa.attention(x)[0]
    for t in range(3):
        weights = [math.exp(s * t) for s in range(3)]
        expected = torch.tensor([w / sum(weights) for w in weights])
        torch.testing.assert_close(m[:, t], expected)


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_tsa_output_is_residual_plus_w_of_values_weighted_by_column(variant):
    """F'' = W(g(F') M) + F' with (g M)[:, t] = sum_s g[:, s] M[s, t] (GLTR §3.3, Eq. 7-8)."""
    torch.manual_seed(0)
    tsa = TemporalSelfAttention(16, variant=variant).eval()
    with torch.no_grad():
        for p in tsa.parameters():
            if p.count_nonzero() == 0:
                p.normal_()
    x = torch.randn(2, 16, 5)
    m = tsa.attention(x)
    y = torch.einsum("bcs,bst->bct", tsa.g(x), m)
    torch.testing.assert_close(tsa(x), x + tsa.W(y))


def test_tsa_parameter_counts_vs_the_paper_sizes():
    assert n_params(TemporalSelfAttention(384)) == 4 * 384 * 192 + 768 + 192 + 384 == 296_256
    assert n_params(TemporalSelfAttention(512, variant="code")) == 4 * 512 * 256 + 256 + 1024
    assert n_params(TemporalSelfAttention(512, variant="code")) == 525_568


def test_tsa_rejects_bad_configurations():
    with pytest.raises(ValueError, match=r"'paper' or 'code', got 'nonlocal'"):
        TemporalSelfAttention(8, variant="nonlocal")
    with pytest.raises(ValueError, match=r"reduction must be in \[1, channels=8\].*got 16"):
        TemporalSelfAttention(8, reduction=16)


# --- the model ---------------------------------------------------------------------------------


def test_paper_and_code_configurations(paper, code):
    assert paper.pretrained_cfg.embedding_dim == 384 and code.pretrained_cfg.embedding_dim == 512
    assert paper.dtp.dilations == (1, 2, 4) and not paper.dtp.include_identity
    assert code.dtp.dilations == (1, 2, 3) and code.dtp.include_identity
    assert paper.tsa.variant == "paper" and code.tsa.variant == "code"
    cfg = paper.pretrained_cfg
    assert cfg.input_size == (3, 256, 128)
    assert (cfg.train_clip_len, cfg.train_sampling) == (16, "consecutive")
    assert (cfg.test_sampling, cfg.aggregation) == ("whole", "mean")
    assert (cfg.distance, cfg.normalize_embedding) == ("euclidean", True)
    assert cfg.backbone_prefixes == ("backbone",) and cfg.source_format == "torchvision_resnet"
    assert paper.backbone.spec.depth == 50 and paper.backbone.spec.last_stride == 1


@pytest.mark.parametrize("t", [1, 9])
def test_embedding_dims_for_any_tracklet_length(paper, code, t):
    x = torch.randn(1, 3, t, 32, 16)
    for model, dim in ((paper, 384), (code, 512)):
        model.eval()
        with torch.no_grad():
            frames = model.frame_features(x)
            features = model.forward_features(x)
            embedding = model(x)
        assert frames.shape == (1, 128, t)
        assert features.shape == (1, dim, t)
        torch.testing.assert_close(embedding, features.mean(dim=2), rtol=0, atol=0)


def test_gltr_at_init_is_the_mean_of_dtp(paper):
    """TSA starts as the identity, so f = mean_t DTP(F) (and the embedding is the raw f)."""
    x = torch.randn(2, 3, 5, 32, 16)
    with torch.no_grad():
        frames = paper.eval().frame_features(x)
        torch.testing.assert_close(paper(x), paper.dtp(frames).mean(dim=2), rtol=0, atol=0)


def test_train_output_has_raw_features_and_one_classifier(paper):
    x = torch.randn(2, 3, 4, 32, 16)
    with torch.no_grad():
        out = paper.train()(x)
        features = paper.forward_features(x).mean(dim=2)
    paper.eval()
    assert len(out.logits) == 1 and out.logits[0].shape == (2, 625)
    torch.testing.assert_close(out.features, features)


def test_code_variant_is_order_sensitive_above_float_noise(code):
    """At the code's N(0, 0.001) DTP init the identity branch dominates: measured ~5e-4."""
    x = torch.randn(2, 3, 4, 32, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        forward, backward = code.eval()(x), code(x.flip(2))
    change = ((forward - backward).norm(dim=1) / forward.norm(dim=1)).max().item()
    assert change > 1e-5


def test_without_dtp_branches_frame_order_does_not_matter():
    torch.manual_seed(0)
    model = create_model("gltr_r50", depth=18, dilations=(), include_identity=True).eval()
    assert not model.order_sensitive and model.embedding_dim == 128
    x = torch.randn(2, 3, 5, 32, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.flip(2)), rtol=0, atol=1e-6)


def test_parameter_counts(paper, code):
    assert n_params(paper.backbone) == 23_508_032
    assert n_params(paper.frame_fc) == 2048 * 128 + 128 == 262_272
    assert n_params(paper.dtp) == 3 * 128 * 128 * 3 == 147_456 == n_params(code.dtp)
    assert n_params(paper.dtp) + n_params(paper.tsa) == 443_712
    assert n_params(code.dtp) + n_params(code.tsa) == 673_024
    assert n_params(paper.head) == 768 + 384 * 625 + 625
    assert n_params(paper) == 24_455_409 and n_params(code) == 24_764_977
    assert n_params(paper) - n_params(paper.head.classifier) == 24_214_784
    assert n_params(code) - n_params(code.head.classifier) == 24_444_352


def test_frame_chunk_gives_the_unchunked_result_in_eval():
    torch.manual_seed(0)
    model = create_model("gltr_r50", depth=18).eval()
    x = torch.randn(2, 3, 7, 32, 16)
    with torch.no_grad():
        whole = model(x)
        model.frame_chunk = 3  # 14 frames in chunks of 3, across the two clips
        chunked = model(x)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)
    chunked_by_builder = create_model("gltr_r50", depth=18, frame_chunk=4)
    chunked_by_builder.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(chunked_by_builder.eval()(x), whole, rtol=1e-5, atol=1e-6)


def test_model_rejects_bad_overrides():
    with pytest.raises(ValueError, match=r"tsa must be 'paper', 'code' or 'none', got 'nl'"):
        create_model("gltr_r50", depth=18, tsa="nl")
    with pytest.raises(ValueError, match="frame_chunk must be None or a positive int, got 0"):
        create_model("gltr_r50", depth=18, frame_chunk=0)

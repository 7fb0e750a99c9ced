"""Official-checkpoint converters: each official layout is built here from its known keys and
shapes (random values; the official repositories' files named in `reid_models.convert`),
converted, and the parts where the layouts differ are checked against outputs computed by hand
from the official tensors."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from reid_models.convert import ConversionError, convert_official, list_official
from reid_models.convert.core import ConversionReport, OfficialState
from reid_models.convert.gltr import fold_tsa_biases
from reid_models.layers.gltr_layers import TemporalSelfAttention
from tests.reid_models.official_layouts import (
    nonlocal_state,
    official_ap3d,
    official_gltr,
    official_m3d,
)


def _convert(layout: str, *files: object) -> object:
    return convert_official(layout, list(files), [f"file{i}.pth" for i in range(len(files))])


@pytest.fixture(scope="module")
def ap3d_official() -> dict[str, object]:
    return official_ap3d(nonlocal_blocks=False)


@pytest.fixture(scope="module")
def ap3d(ap3d_official):
    conversion = _convert("ap3dres50", ap3d_official)
    return conversion, conversion.build_model()


@pytest.fixture(scope="module")
def gltr_official() -> dict[str, torch.Tensor]:
    return official_gltr()


# --- AP3D ---------------------------------------------------------------------------------------


def _official_app3dc(sd: dict[str, torch.Tensor], p: str, x: torch.Tensor, stride: int):
    """AP3D's models/AP3D.py ``APP3DC.forward`` and its APM, written out frame by frame."""
    out = F.conv3d(
        x, sd[p + "spatial_conv3d.weight"], stride=(1, stride, stride), padding=(0, 1, 1)
    )
    kernel = {k.split(".")[-2]: v[:, :, 0] for k, v in sd.items() if k.startswith(p + "APM.")}
    t = out.shape[2]
    emb = F.normalize(
        torch.stack([F.conv2d(out[:, :, i], kernel["semantic_mapping"]) for i in range(t)], 2),
        dim=1,
    )

    def neighbour(i: int, n: int) -> torch.Tensor:
        """Frame n re-assembled at frame i's positions, gated by contrastive attention."""
        if not 0 <= n < t:  # zero padding: nothing to re-assemble
            return torch.zeros_like(out[:, :, i])
        sim = (4 * emb[:, :, i].flatten(2).transpose(1, 2) @ emb[:, :, n].flatten(2)).softmax(-1)
        recon = (sim @ out[:, :, n].flatten(2).transpose(1, 2)).transpose(1, 2)
        recon = recon.reshape(out[:, :, i].shape)
        gate = F.conv2d(out[:, :, i], kernel["x_mapping"]) * F.conv2d(recon, kernel["n_mapping"])
        return recon * torch.sigmoid(F.conv2d(gate, kernel["0"]))

    frames = [f for i in range(t) for f in (neighbour(i, i - 1), out[:, :, i], neighbour(i, i + 1))]
    sequence = torch.stack(frames, dim=2)
    return out + F.conv3d(sequence, sd[p + "temporal_conv3d.weight"], stride=(3, 1, 1))


def test_ap3d_block_computes_the_official_app3dc(ap3d, ap3d_official):
    """Spatial kernel, APM mappings and temporal kernel land where the official block has them:
    our converted layer2.0.conv2 (stride 2) equals APP3DC on a random 3-frame input."""
    _, model = ap3d
    sd = {k.removeprefix("module."): v for k, v in ap3d_official["state_dict"].items()}
    x = torch.randn(2, 128, 3, 8, 4)
    with torch.no_grad():
        ours = model.get_submodule("backbone.layer2.0.conv2")(x)
        official = _official_app3dc(sd, "layer2.0.conv2.", x, stride=2)
    assert ours.shape == official.shape == (2, 128, 3, 4, 2)
    spatial = F.conv3d(
        x, sd["layer2.0.conv2.spatial_conv3d.weight"], stride=(1, 2, 2), padding=(0, 1, 1)
    )
    assert (official - spatial).abs().max() > 1e-2  # the temporal part is there to be checked
    torch.testing.assert_close(ours, official, rtol=1e-4, atol=1e-5)


def test_ap3d_checkpoint_is_unwrapped_and_reported(ap3d):
    conversion, _ = ap3d
    lines = "\n".join(conversion.report.lines())
    assert "unwrapped {'state_dict': ...}; also held ['epoch', 'rank1']" in lines
    assert "stripped 'module.'" in lines and "625 training identities" in lines
    assert conversion.model_name == "ap3d_r50" and conversion.num_classes == 625
    assert conversion.report.filled == []  # PyTorch 1.0 saved num_batches_tracked


def test_ap3d_nonlocal_blocks_shift_the_official_indices():
    """AP3DNLResNet50 puts its non-local blocks into the layers' Sequential: official layer2.2
    is our layer2.nonlocal1, official layer2.3 our block 2, official layer3.8 layer3.nonlocal5."""
    official = official_ap3d(nonlocal_blocks=True)
    sd = {k.removeprefix("module."): v for k, v in official["state_dict"].items()}
    conversion = _convert("ap3dnlres50", official)
    ours = conversion.state_dict
    assert conversion.model_name == "nl_ap3d_r50"
    pairs = {
        "layer2.2.g.0.weight": "backbone.layer2.nonlocal1.g.weight",
        "layer2.2.phi.0.bias": "backbone.layer2.nonlocal1.phi.bias",
        "layer2.3.conv2.spatial_conv3d.weight": "backbone.layer2.2.conv2.spatial.weight",
        "layer2.5.W.1.running_var": "backbone.layer2.nonlocal3.W.1.running_var",
        "layer3.7.conv3.weight": "backbone.layer3.5.conv3.weight",
        "layer3.8.theta.weight": "backbone.layer3.nonlocal5.theta.weight",
    }
    for theirs, mine in pairs.items():
        assert torch.equal(ours[mine], sd[theirs]), (theirs, mine)
    conversion.build_model()  # every key given, strict load


def test_a_file_of_another_layout_is_refused_with_every_key_listed(gltr_official):
    with pytest.raises(ConversionError) as err:
        _convert("ap3dres50", gltr_official)
    message = str(err.value)
    assert "not an official ap3dres50 checkpoint" in message
    assert (
        "model keys the file does not give" in message and "backbone.layer2.0.conv2.apm" in message
    )
    assert "official keys with no place in the model" in message and "Nonlocal_block0" in message


def test_a_shape_mismatch_names_both_keys_and_shapes(ap3d_official):
    broken = {"state_dict": dict(ap3d_official["state_dict"])}
    broken["state_dict"]["module.layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 3, 3)
    with pytest.raises(
        ConversionError,
        match=r"shapes that differ \(1\): layer1.0.conv1.weight "
        r"\(64, 64, 1, 3, 3\) -> backbone.layer1.0.conv1.weight \(64, 64, 1, 1, 1\)",
    ):
        _convert("ap3dres50", broken)


def test_unknown_layouts_and_file_counts_are_refused(ap3d_official):
    with pytest.raises(
        ConversionError, match="the converters are ap3dnlres50, ap3dres50, gltr, m3d"
    ):
        _convert("ap3d", ap3d_official)
    with pytest.raises(ConversionError, match="takes 1 file"):
        _convert("ap3dres50", ap3d_official, ap3d_official)
    with pytest.raises(ConversionError, match="not a dict of name -> tensor"):
        _convert("gltr", {"state_dict": {"a": 1}})


# --- GLTR ---------------------------------------------------------------------------------------


def _official_nonlocal_1d(sd: dict[str, torch.Tensor], x: torch.Tensor, training: bool):
    """GLTR's NonLocalBlock1D.forward, biases included; returns (z, BN running mean after)."""
    p = "Nonlocal_block0."
    g, theta, phi = (
        F.conv1d(x, sd[p + n + ".weight"], sd[p + n + ".bias"]) for n in ("g", "theta", "phi")
    )
    attn = (theta.transpose(1, 2) @ phi).softmax(dim=-1)  # (B, T, S), over the keys s
    y = (attn @ g.transpose(1, 2)).transpose(1, 2)
    w = F.conv1d(y, sd[p + "W.0.weight"], sd[p + "W.0.bias"])
    mean, var = sd[p + "W.1.running_mean"].clone(), sd[p + "W.1.running_var"].clone()
    z = F.batch_norm(w, mean, var, sd[p + "W.1.weight"], sd[p + "W.1.bias"], training=training)
    return z + x, mean


def _converted_tsa(sd: dict[str, torch.Tensor], channels: int) -> TemporalSelfAttention:
    state = OfficialState(sd, "nl.pth")
    mapped: dict = {}
    fold_tsa_biases(state, mapped, ConversionReport("gltr"))
    assert state.untaken() == []
    tsa = TemporalSelfAttention(channels, variant="code").double()
    tsa.load_state_dict({k.removeprefix("tsa."): v for k, (_, v) in mapped.items()}, strict=True)
    return tsa


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_gltr_bias_fold_gives_the_official_block_output(training):
    """Our bias-free TSA with g's and W's conv biases folded into the BN running mean computes the
    official block (all biases non-zero) in eval mode, and in training mode, where the running
    mean keeps the offset W b_g + b_W after the update."""
    torch.manual_seed(1)
    sd = nonlocal_state("Nonlocal_block0", 8, pooled=False, dim=1)
    # Biases that matter; float64, so that training-mode BN's cancellation of them is exact.
    sd = {k: (v * 10 if k.endswith("bias") else v).double() for k, v in sd.items()}
    tsa = _converted_tsa(sd, 8).train(training)
    x = torch.randn(3, 8, 7, dtype=torch.float64)
    official, official_mean = _official_nonlocal_1d(sd, x, training)
    with torch.no_grad():
        ours = tsa(x)
    torch.testing.assert_close(ours, official, rtol=1e-9, atol=1e-9)
    p = "Nonlocal_block0."
    offset = sd[p + "W.0.weight"][:, :, 0] @ sd[p + "g.bias"] + sd[p + "W.0.bias"]
    torch.testing.assert_close(tsa.W[1].running_mean, official_mean - offset, rtol=1e-9, atol=1e-9)
    # Without the fold the biases' effect is lost: the check above can fail.
    unfolded = TemporalSelfAttention(8, variant="code").double().eval()
    unfolded.load_state_dict(tsa.state_dict() | {"W.1.running_mean": sd[p + "W.1.running_mean"]})
    if not training:
        assert (unfolded(x) - official).abs().max() > 1e-2


def test_gltr_converts_to_the_code_variant_with_its_pyramid(gltr_official):
    """Every official key has its place; the (3, 128) Conv2d branches become our dilated Conv1d
    branches: the DTP output equals [F, the official feat1-3 convolutions of F]."""
    conversion = _convert("gltr", gltr_official)
    model = conversion.build_model()
    assert conversion.model_name == "gltr_r50" and model.embedding_dim == 512
    assert conversion.num_classes == 625 and conversion.report.filled == []
    assert any("phi.bias dropped" in note for note in conversion.report.folded)
    frames = torch.randn(2, 128, 9)
    image = frames.transpose(1, 2).unsqueeze(1)  # the official (B, 1, T, d) view
    official = [frames] + [
        F.conv2d(image, gltr_official[f"feat{r}.weight"], padding=(r, 0), dilation=(r, 1)).squeeze(
            3
        )
        for r in (1, 2, 3)
    ]
    with torch.no_grad():
        torch.testing.assert_close(model.dtp(frames), torch.cat(official, 1), rtol=1e-4, atol=1e-5)
    assert torch.equal(model.frame_fc.weight, gltr_official["feat.weight"])
    assert torch.equal(model.backbone.conv1.weight[:, :, 0], gltr_official["conv1.weight"])


# --- M3D ----------------------------------------------------------------------------------------


def test_m3d_two_streams_convert_in_either_order():
    """The 2D stream's file and the M3D stream's file (told apart by conv1_t) become one
    two-stream model; the zero MultiConv kernels go to the linear M3D kernels."""
    spatial, temporal = official_m3d(temporal=False), official_m3d(temporal=True)
    conversion = _convert("m3d", temporal, spatial)
    assert conversion.model_name == "m3d_code_r50"
    assert conversion.overrides == {"ral_branches": ""}
    ours = conversion.state_dict
    for stream, official in (("spatial", spatial), ("temporal", temporal)):
        assert torch.equal(ours[f"{stream}.head.fc.weight"], official["feat.weight"])
        assert torch.equal(ours[f"{stream}.head.bn.running_var"], official["feat_bn.running_var"])
        assert torch.equal(
            ours[f"{stream}.backbone.layer3.2.conv2.weight"][:, :, 0],
            official["layer3.2.conv2.weight"],
        )
    assert ours["temporal.backbone.stem_m3d.convs.2.weight"].shape == (64, 64, 3, 1, 1)
    assert ours["temporal.backbone.layer4.0.m3d.convs.0.weight"].shape == (512, 512, 3, 1, 1)
    assert "temporal.backbone.layer3.0.m3d.convs.2.weight" not in ours  # 2 branches at T = 4
    assert any(k.endswith("num_batches_tracked") for k in conversion.report.filled)  # PyTorch 0.3
    model = conversion.build_model()
    assert model.stream_names == ("spatial", "temporal") and model.embedding_dim == 256


def test_m3d_one_stream_converts_alone():
    conversion = _convert("m3d", official_m3d(temporal=False))
    assert conversion.overrides == {"ral_branches": "", "stream": "spatial"}
    assert conversion.build_model().embedding_dim == 128


def _official_branch(x, kernel, bn):
    """One official MultiConv branch: ReLU(BN(conv(x))), eval mode."""
    y = F.conv3d(x, kernel, padding=(1, 0, 0))
    return torch.relu(
        F.batch_norm(y, bn["running_mean"], bn["running_var"], bn["weight"], bn["bias"])
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [("kernel", "max |w| 0.1"), ("beta", "adds up to 0.5")],
)
def test_m3d_live_temporal_branches_are_refused(change, reason):
    """A branch converts only while it adds exactly 0: zero kernel and BN(0) <= 0. A trained
    BN with a non-zero mean still adds 0 (computed by hand here); a non-zero kernel or a positive
    beta would not, and is refused."""
    temporal = official_m3d(temporal=True)
    p = "layer2.0.conv2_t."
    temporal[p + "bn1.running_mean"] = torch.rand(128)  # BN(0) = -gamma * mu / sigma <= 0
    bn = {k.removeprefix(p + "bn1."): v for k, v in temporal.items() if k.startswith(p + "bn1.")}
    x = torch.randn(1, 128, 8, 2, 2)
    assert _official_branch(x, temporal[p + "conv1.weight"], bn).abs().max() == 0
    _convert("m3d", temporal)  # converts
    if change == "kernel":
        temporal[p + "conv1.weight"] = temporal[p + "conv1.weight"] + 0.1
    else:
        temporal[p + "bn1.bias"] = torch.full((128,), 0.5)
        bn["bias"] = temporal[p + "bn1.bias"]
        assert _official_branch(x, temporal[p + "conv1.weight"], bn).abs().max() > 0
    with pytest.raises(
        ConversionError, match=re.escape(f"{p}conv1.weight (") + ".*" + re.escape(reason)
    ):
        _convert("m3d", temporal)


def test_m3d_ral_checkpoints_and_two_files_of_one_stream_are_refused():
    spatial = official_m3d(temporal=False)
    with pytest.raises(ConversionError, match="both M3D spatial streams"):
        _convert("m3d", spatial, spatial)
    ral = official_m3d(temporal=True) | {"attention1.conv1_s.weight": torch.zeros(1, 256, 3, 3)}
    with pytest.raises(ConversionError, match="ResNet50-M3D_RAL checkpoint"):
        _convert("m3d", ral)


def test_every_layout_is_offered_by_the_command_line():
    from pipeline.cli.convert import OFFICIAL_LAYOUTS

    assert list(OFFICIAL_LAYOUTS) == list_official()

"""Model specs: a checkpoint's name, overrides and PretrainedCfg rebuild the model."""

from __future__ import annotations

import json

import pytest
import torch

from reid_models import (
    ModelSpecError,
    PretrainedCfg,
    create_model,
    load_pretrained,
    model_from_spec,
    model_spec,
    read_model_spec,
)
from reid_models.ap3d import AP3DResNet
from reid_models.resnet3d import ResNetSpec, conv_table, spatial_conv
from reid_models.weights import load_state_dict_file


def _trained_like() -> torch.nn.Module:
    """A narrow ap3d_r18 with a run's cfg (64x32 input, 8-frame test clips) attached."""
    torch.manual_seed(0)
    model = create_model("ap3d_r18", num_classes=3, base_width=8, variant="C")
    model.pretrained_cfg = model.pretrained_cfg.with_changes(
        input_size=(3, 64, 32), test_clip_len=8
    )
    return model


def test_create_model_records_name_and_overrides():
    model = create_model("p3d_r18", base_width=8, variant="A")
    assert model.model_name == "p3d_r18"
    assert model.model_overrides == {"base_width": 8, "variant": "A"}


def test_a_spec_is_plain_json_and_rebuilds_the_same_network():
    model = _trained_like().eval()
    spec = model_spec(model)
    assert json.loads(json.dumps(spec)) == spec
    assert spec["name"] == "ap3d_r18"
    assert spec["overrides"] == {"base_width": 8, "variant": "C"}
    assert spec["pretrained_cfg"]["input_size"] == [3, 64, 32]
    rebuilt = model_from_spec(spec).eval()
    assert rebuilt.pretrained_cfg == model.pretrained_cfg
    assert isinstance(rebuilt.pretrained_cfg.input_size, tuple)
    assert rebuilt.num_classes == 0
    rebuilt.load_state_dict(model.state_dict(), strict=False)  # all but the classifier
    clips = torch.randn(2, 3, 4, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(clips), model(clips))


def test_explicit_name_and_overrides_take_tuples_as_lists():
    model = create_model("ap3d_r50", temporal_blocks=((3, 4),))
    spec = model_spec(model, "ap3d_r50", {"temporal_blocks": ((3, 4),)})
    assert spec["overrides"] == {"temporal_blocks": [[3, 4]]}
    rebuilt = model_from_spec(spec)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def test_a_model_built_by_hand_needs_a_name():
    model = AP3DResNet(
        spec=ResNetSpec(depth=18, conv2=conv_table(18, {}, spatial_conv), base_width=8),
        num_classes=0,
        pretrained_cfg=PretrainedCfg(paper="x", embedding_dim=64),
    )
    with pytest.raises(ModelSpecError, match="not built by create_model"):
        model_spec(model)
    with pytest.raises(ModelSpecError, match="'nope' is not registered"):
        model_spec(model, "nope")


def test_overrides_that_are_not_plain_data_are_refused():
    with pytest.raises(ModelSpecError, match=r"overrides\.variant = .*object.* is not plain data"):
        model_spec(create_model("c2d_r18"), overrides={"variant": object()})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "ap3d_r81"}, r"unknown model 'ap3d_r81'\. Did you mean ap3d_r18"),
        ({"overrides": {"widht": 8}}, r"ap3d_r18 does not build with overrides \{'widht': 8\}"),
        ({"pretrained_cfg": {"paper": "x", "colour": 1}}, "not a valid PretrainedCfg"),
        ({"pretrained_cfg": {"paper": "x", "embedding_dim": 512}}, "embeds into 64"),
        ({"extra": 1}, r"lacks \[\] and has unknown \['extra'\]"),
    ],
)
def test_a_bad_spec_is_an_error_that_says_what(change, message):
    spec = {**model_spec(_trained_like()), **change}
    with pytest.raises(ModelSpecError, match=message):
        model_from_spec(spec)


def test_a_spec_without_fields_is_an_error():
    with pytest.raises(ModelSpecError, match=r"lacks \['overrides', 'pretrained_cfg'\]"):
        model_from_spec({"name": "c2d_r18"})
    with pytest.raises(ModelSpecError, match="is a mapping, got list"):
        model_from_spec([])


def test_a_checkpoint_with_a_spec_reads_back_and_its_weights_load(tmp_path):
    """The spec under "model" does not hide the weights under "state_dict"."""
    model = _trained_like()
    path = tmp_path / "best.pt"
    torch.save({"format": "x", "state_dict": model.state_dict(), "model": model_spec(model)}, path)
    assert read_model_spec(path) == model_spec(model)
    assert set(load_state_dict_file(path)) == set(model.state_dict())
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    assert read_model_spec(tmp_path / "plain.pt") is None


def test_half_precision_weights_load_as_float32(tmp_path):
    model = _trained_like().eval()
    half = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"state_dict": half, "model": model_spec(model)}, tmp_path / "half.pt")
    rebuilt = model_from_spec(read_model_spec(tmp_path / "half.pt"), num_classes=3)
    load_pretrained(rebuilt, tmp_path / "half.pt")
    assert all(p.dtype == torch.float32 for p in rebuilt.parameters())
    clips = torch.randn(2, 3, 4, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(clips), model(clips), atol=2e-2, rtol=2e-2)

"""Weight loading: torchvision ResNets into 3D models, reports, and clear failures."""

from __future__ import annotations

import pytest
import torch
import torchvision

from reid_models import WeightsError, create_model, load_pretrained
from reid_models.layers.temporal_conv import I3DConv


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "resnet50.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50().state_dict(), path)
    return path


def test_report_names_what_was_copied_inflated_missing_and_skipped(resnet50_file):
    report = load_pretrained(create_model("ap3d_r50"), resnet50_file)
    assert report.unexpected == ["fc.bias", "fc.weight"]
    assert "backbone.layer2.0.conv2.spatial.weight" in report.inflated
    assert "backbone.layer1.0.bn1.running_var" in report.loaded
    # Exactly the new parts stay initialised: 5 blocks x (4 APM convs + 1 temporal conv) + head.
    assert all(".apm." in k or ".temporal." in k or k.startswith("head.") for k in report.missing)
    assert sum(k.endswith("temporal.weight") for k in report.missing) == 5


def test_centre_inflation_puts_the_2d_kernel_in_the_middle_slice(resnet50_file):
    source = torch.load(resnet50_file, weights_only=True)["layer2.0.conv2.weight"]
    model = create_model("i3d_r50", pretrained=resnet50_file)
    conv = model.backbone.layer2.get_submodule("0")
    assert isinstance(conv.conv2, I3DConv)
    kernel = conv.conv2.conv.weight
    torch.testing.assert_close(kernel[:, :, 1], source)
    assert kernel[:, :, 0].count_nonzero() == 0 and kernel[:, :, 2].count_nonzero() == 0


def test_mean_inflation_spreads_the_kernel_over_time(resnet50_file):
    source = torch.load(resnet50_file, weights_only=True)["conv1.weight"]
    model = create_model("i3d_nl_r50")
    load_pretrained(model, resnet50_file, inflate="mean")
    kernel = model.backbone.conv1.weight  # 5x7x7
    torch.testing.assert_close(kernel.sum(2), source)
    torch.testing.assert_close(kernel[:, :, 0], source / 5)


def test_dataparallel_prefix_and_wrapped_state_dict_are_accepted(resnet50_file, tmp_path):
    state = torch.load(resnet50_file, weights_only=True)
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    report = load_pretrained(create_model("c2d_r50"), path)
    assert report.unexpected == ["fc.bias", "fc.weight"]
    assert [k for k in report.missing if not k.startswith("head.")] == []


def test_a_file_for_another_depth_fails_naming_key_and_shapes(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    expected = (
        r"resnet18\.pth: backbone\.layer1\.0\.conv1\.weight has shape \(64, 64, 3, 3\) in the "
        r"file but the model expects \(64, 64, 1, 1, 1\)"
    )
    with pytest.raises(WeightsError, match=expected):
        create_model("c2d_r50", pretrained=path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(WeightsError, match=r"nope\.pth does not exist"):
        create_model("c2d_r18", pretrained=tmp_path / "nope.pth")


def test_a_file_that_is_not_a_state_dict_is_rejected(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError, match=r"junk\.pth is not a PyTorch state dict"):
        create_model("c2d_r18", pretrained=junk)
    listing = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listing)
    with pytest.raises(WeightsError, match="holds a list, not a dict of name -> tensor"):
        create_model("c2d_r18", pretrained=listing)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(torchvision.models.resnet18(), path)  # a whole module: needs unpickling code
    with pytest.raises(WeightsError, match="weights_only=True"):
        create_model("c2d_r18", pretrained=path)


def test_a_checkpoint_of_the_model_itself_loads_by_name(tmp_path):
    torch.manual_seed(1)
    trained = create_model("ap3d_r18", num_classes=5)
    path = tmp_path / "trained.pth"
    torch.save(trained.state_dict(), path)
    torch.manual_seed(2)
    model = create_model("ap3d_r18", num_classes=5, pretrained=path)
    for key, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_a_classifier_for_other_identities_is_skipped_and_reported(tmp_path, caplog):
    path = tmp_path / "mars.pth"
    torch.save(create_model("c2d_r18", num_classes=625).state_dict(), path)
    model = create_model("c2d_r18", num_classes=150)
    report = load_pretrained(model, path)
    assert report.missing == ["head.classifier.bias", "head.classifier.weight"]
    assert report.unexpected == report.missing
    assert "another number of identities" in caplog.text


def test_a_file_of_which_nothing_fits_is_an_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, path)
    with pytest.raises(WeightsError, match=r"none of its 1 tensors fits AP3DResNet"):
        create_model("c2d_r18", pretrained=path)


def test_an_unknown_inflation_is_refused(resnet50_file):
    with pytest.raises(ValueError, match="inflate must be 'center' or 'mean', got 'centre'"):
        load_pretrained(create_model("c2d_r50"), resnet50_file, inflate="centre")


def test_imagenet_weights_do_not_fit_a_narrow_trunk(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    expected = (
        r"resnet18\.pth: backbone\.conv1\.weight has shape \(64, 3, 7, 7\) in the file but the "
        r"model expects \(32, 3, 1, 7, 7\)"
    )
    with pytest.raises(WeightsError, match=expected):
        create_model("ap3d_r18", base_width=32, pretrained=path)

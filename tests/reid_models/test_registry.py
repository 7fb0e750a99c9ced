"""Registry, `PretrainedCfg` and the shared input check."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from reid_models import PretrainedCfg, create_model, is_model, list_models, register_model


def test_list_is_sorted_and_is_model_agrees():
    names = list_models()
    assert names == sorted(names)
    assert all(is_model(n) for n in names)
    assert not is_model("resnet50")


def test_a_second_builder_of_one_name_is_refused():
    with pytest.raises(ValueError, match="'c2d_r50' is registered twice"):

        @register_model
        def c2d_r50(**kw):
            raise AssertionError("never built")


def test_negative_class_count_is_refused():
    with pytest.raises(ValueError, match="num_classes must be >= 0, got -1"):
        create_model("c2d_r18", num_classes=-1)


def test_builder_overrides_reach_the_model():
    assert create_model("p3d_r50", variant="A").backbone.layer2.get_submodule("0").conv2.variant
    assert create_model("i3d_nl_r50", bottleneck_dim=256).embedding_dim == 256


def test_pretrained_cfg_is_frozen_and_validated():
    cfg = create_model("ap3d_r50").pretrained_cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.test_clip_len = 8
    assert cfg.with_changes(test_clip_len=8).test_clip_len == 8
    with pytest.raises(ValueError, match="train_clip_len must be >= 1, got 0"):
        PretrainedCfg(paper="x", train_clip_len=0)


@pytest.mark.parametrize(
    "bad",
    [torch.zeros(2, 3, 64, 32), torch.zeros(1, 1, 4, 64, 32), torch.zeros(1, 3, 4, 8, 8).int()],
)
def test_input_that_is_not_a_float_clip_batch_is_refused(bad):
    with pytest.raises(ValueError, match=r"expects a float tensor \(B, 3, T, H, W\), got"):
        create_model("c2d_r18")(bad)

"""Video person re-identification networks: the five papers' 3D/temporal models and C2D, and
OSNet x0.25 as a frame (C2D) and an AP3D clip model.

Depends on torch only; knows nothing of detectors, deployment, training or the pipeline.

    >>> from reid_models import create_model, list_models
    >>> model = create_model("ap3d_r50", num_classes=625, pretrained="resnet50-0676ba61.pth")
    >>> spec = model_spec(model)  # name, overrides, PretrainedCfg: what rebuilds it
    >>> same = model_from_spec(spec)
"""

from __future__ import annotations

# Importing the model modules registers their builders.
from reid_models import ap3d, gltr, i3d_nonlocal, m3d, osnet, personvlad
from reid_models._registry import create_model, is_model, list_models, register_model
from reid_models.base import ReIDModel, TrainOutput
from reid_models.osnet_onnx import OnnxConversionReport, convert_osnet_onnx
from reid_models.pretrained import PretrainedCfg
from reid_models.spec import ModelSpecError, model_from_spec, model_spec, read_model_spec
from reid_models.weights import LoadReport, WeightsError, load_pretrained

__all__ = [
    "LoadReport",
    "ModelSpecError",
    "OnnxConversionReport",
    "PretrainedCfg",
    "ReIDModel",
    "TrainOutput",
    "WeightsError",
    "ap3d",
    "convert_osnet_onnx",
    "create_model",
    "gltr",
    "i3d_nonlocal",
    "is_model",
    "list_models",
    "load_pretrained",
    "m3d",
    "model_from_spec",
    "model_spec",
    "osnet",
    "personvlad",
    "read_model_spec",
    "register_model",
]

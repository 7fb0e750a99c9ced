"""The synthetic OSNet ONNX (`tests.osnet_onnx.write_osnet_onnx`, fixture `synthetic_osnet_onnx`)
is taken as the real export is: by ONNX Runtime, by the converter (same report), and by both
OSNet models, whose outputs equal ONNX Runtime's on it. Runs without ``shared/data``; the one
comparison with the real file's layout skips where that file is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from reid_models import convert_osnet_onnx, create_model, load_pretrained
from tests.conftest import shared_file
from tests.osnet_onnx import synthetic_osnet_trunk, write_osnet_onnx

OSNET_MODELS = ("c2d_osnet_x0_25", "ap3d_osnet_x0_25")
#: As for the real file (tests/reid_models/test_osnet.py): 60 Lite 1x1 kernels, 6 gates x 4,
#: fc's 6 tensors by name; the BN-folded convs by position.
BY_NAME, BY_POSITION = 90, 158


@pytest.fixture(scope="module")
def session(synthetic_osnet_onnx: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(synthetic_osnet_onnx), providers=["CPUExecutionProvider"])


def _frames(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, 256, 128, generator=torch.Generator().manual_seed(seed))


def test_onnxruntime_runs_it_as_the_export(session, synthetic_osnet_onnx):
    (images,), (output,) = session.get_inputs(), session.get_outputs()
    assert (images.name, images.shape[1:], output.name, output.shape[1:]) == (
        "images",
        [3, 256, 128],
        "output",
        [512],
    )
    features = session.run(None, {"images": _frames(3).numpy()})[0]
    assert features.shape == (3, 512) and np.isfinite(features).all()
    norms = np.linalg.norm(features, axis=1)
    assert (norms > 1).all() and (norms < 100).all(), norms  # scaled weights: moderate features
    assert synthetic_osnet_onnx.stat().st_size < 2_000_000


def test_the_converter_reads_it_as_the_real_export(synthetic_osnet_onnx):
    state, report = convert_osnet_onnx(synthetic_osnet_onnx)
    assert (len(report.by_name), len(report.by_position)) == (BY_NAME, BY_POSITION)
    assert report.unexpected == [] and report.conv_nodes == 187
    assert "conv2.0.conv2a.conv1.weight" in report.by_name
    assert "conv2.0.conv1.conv.bias" in report.by_position
    assert set(state) == set(create_model("c2d_osnet_x0_25").backbone.state_dict())
    # Every tensor lands where the writer took it from (num_batches_tracked is not stored).
    source = synthetic_osnet_trunk(seed=0).state_dict()
    for key, tensor in state.items():
        if not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(tensor, source[key], rtol=0, atol=0, msg=key)


def test_loading_reports_as_for_the_real_export(synthetic_osnet_onnx):
    report = load_pretrained(create_model("ap3d_osnet_x0_25", num_classes=3), synthetic_osnet_onnx)
    new = [k for k in report.missing if k != "classifier.weight"]
    assert len(new) == 10 and all(".conv1.conv.apm." in k or "temporal" in k for k in new)
    assert report.inflated == [
        "backbone.conv3.0.conv1.conv.spatial.weight",
        "backbone.conv4.0.conv1.conv.spatial.weight",
    ]
    assert report.unexpected == []
    c2d = load_pretrained(create_model("c2d_osnet_x0_25"), synthetic_osnet_onnx)
    assert (c2d.missing, c2d.inflated, len(c2d.loaded)) == ([], [], BY_NAME + BY_POSITION + 1)


@pytest.mark.parametrize("name", OSNET_MODELS)
def test_frame_features_equal_onnxruntime(name, synthetic_osnet_onnx, session):
    model = create_model(name, pretrained=synthetic_osnet_onnx).eval()
    frames = _frames(4, seed=1)
    expected = session.run(None, {"images": frames.numpy()})[0]
    with torch.no_grad():
        got = model.forward_features(frames.unsqueeze(2))[:, 0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_ap3d_clip_embedding_equals_c2d_and_the_frame_averaged_onnx(synthetic_osnet_onnx, session):
    """Temporal kernels at zero (as loaded): AP3D-OSNet computes the frame model."""
    clips = _frames(2 * 4, seed=2).reshape(2, 4, 3, 256, 128).transpose(1, 2)
    frames = session.run(None, {"images": clips.transpose(1, 2).reshape(8, 3, 256, 128).numpy()})
    unit = F.normalize(torch.from_numpy(frames[0]).reshape(2, 4, -1), dim=2)
    expected = F.normalize(unit.mean(dim=1), dim=1)
    embeddings = {}
    for name in OSNET_MODELS:
        model = create_model(name, pretrained=synthetic_osnet_onnx).eval()
        with torch.no_grad():
            embeddings[name] = F.normalize(model(clips), dim=1)
    c2d, ap3d = embeddings.values()
    assert (c2d * ap3d).sum(dim=1).min() >= 0.9999
    assert (c2d * expected).sum(dim=1).min() >= 0.9999
    assert (expected[0] @ expected[1]).item() < 0.999  # the two clips are told apart


def test_the_same_seed_writes_the_same_file(tmp_path, synthetic_osnet_onnx):
    again = write_osnet_onnx(tmp_path / "a" / "osnet.onnx", seed=0)
    assert again.read_bytes() == synthetic_osnet_onnx.read_bytes()
    other = write_osnet_onnx(tmp_path / "b.onnx", seed=1)
    assert other.read_bytes() != again.read_bytes()


def test_the_layout_is_the_real_exports(synthetic_osnet_onnx):
    """Node by node (type, name, inputs, outputs, attributes) and initializer by initializer
    (name, shape, type) the real file's graph; only the values differ."""
    real = onnx.load(str(shared_file("models/osnet_x0_25_msmt17.onnx"))).graph
    synthetic = onnx.load(str(synthetic_osnet_onnx)).graph

    def nodes(graph):
        return [
            (n.op_type, n.name, list(n.input), list(n.output), sorted(map(str, n.attribute)))
            for n in graph.node
        ]

    def initializers(graph):
        return [(i.name, list(i.dims), i.data_type) for i in graph.initializer]

    assert nodes(synthetic) == nodes(real)
    assert initializers(synthetic) == initializers(real)
    assert [str(v) for v in synthetic.input] == [str(v) for v in real.input]
    assert [str(v) for v in synthetic.output] == [str(v) for v in real.output]

"""A fixed-size YOLOv5 export re-headed: its numpy decode equals the graph's own, it runs at other
sizes as an export at that size would, and graphs it cannot re-head are refused.

The small YOLOv5-style networks are built here and exported with torch.onnx as YOLOv5's own
export does: grid and anchors baked for one input size, the decoded `output` first and the raw
levels (N, 3, ny, nx, 5 + nc) after it, named by torch (``onnx::Sigmoid_*``) as in the real model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torchvision.ops import box_iou

from detectors import DetectorError, create_detector
from detectors.letterbox import letterbox
from detectors.video import VideoReader
from detectors.yolov5_head import rehead_yolov5
from tests.conftest import shared_file

_STRIDES = (8, 16, 32)
#: YOLOv5's P3-P5 anchors (w, h) in input pixels.
_ANCHORS = torch.tensor(
    [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
    dtype=torch.float32,
).view(3, 3, 2)


class _TinyYolov5(torch.nn.Module):
    """Three levels at strides 8, 16, 32 and a YOLOv5 `Detect` head baked for `size`.

    Args:
        size: (h, w) the grid and anchor tensors are made for, as a traced export bakes them.
        raw_outputs: Also return the raw levels (as YOLOv5's export does).
        exp_wh: Decode wh as YOLOv3 did, exp(raw) * anchor, instead of (2 sigmoid)^2 * anchor.
    """

    def __init__(self, size: tuple[int, int], *, raw_outputs: bool = True, exp_wh: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.na, self.no, self.raw_outputs, self.exp_wh = 3, 7, raw_outputs, exp_wh  # 2 classes
        self.p3 = torch.nn.Conv2d(3, 8, 8, stride=8)
        self.p4 = torch.nn.Conv2d(8, 8, 2, stride=2)
        self.p5 = torch.nn.Conv2d(8, 8, 2, stride=2)
        self.m = torch.nn.ModuleList(torch.nn.Conv2d(8, self.na * self.no, 1) for _ in _STRIDES)
        self.grids, self.anchor_grids = [], []
        for stride, anchors in zip(_STRIDES, _ANCHORS, strict=True):
            ny, nx = size[0] // stride, size[1] // stride
            yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
            shape = (1, self.na, ny, nx, 2)
            self.grids.append(torch.stack((xv, yv), 2).expand(shape).float() - 0.5)
            self.anchor_grids.append(anchors.view(1, self.na, 1, 1, 2).expand(shape))

    def forward(self, x: torch.Tensor):
        p3 = torch.relu(self.p3(x))
        p4 = torch.relu(self.p4(p3))
        levels = (p3, p4, torch.relu(self.p5(p4)))
        z, raws = [], []
        for i, level in enumerate(levels):
            y = self.m[i](level)
            bs, _, ny, nx = y.shape
            y = y.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            raws.append(y)
            xy, wh, conf = y.sigmoid().split((2, 2, self.no - 4), 4)
            xy = (xy * 2 + self.grids[i]) * _STRIDES[i]
            if self.exp_wh:
                wh = torch.exp(y[..., 2:4]) * self.anchor_grids[i]
            else:
                wh = (wh * 2) ** 2 * self.anchor_grids[i]
            z.append(torch.cat((xy, wh, conf), 4).view(bs, self.na * nx * ny, self.no))
        output = torch.cat(z, 1)
        return (output, *raws) if self.raw_outputs else output


def _export(module: _TinyYolov5, size: tuple[int, int], path: Path) -> Path:
    torch.onnx.export(
        module.eval(),
        (torch.zeros(1, 3, *size),),
        str(path),
        input_names=["images"],
        output_names=["output"],
        dynamic_axes={"images": {0: "batch"}, "output": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    return path


@pytest.fixture(scope="module")
def tiny_128(tmp_path_factory) -> Path:
    """The small network exported at 128x128."""
    return _export(_TinyYolov5((128, 128)), (128, 128), tmp_path_factory.mktemp("v5") / "t.onnx")


def _session(path: Path | bytes) -> ort.InferenceSession:
    return ort.InferenceSession(path if isinstance(path, bytes) else str(path))


def test_the_numpy_decode_reproduces_the_graph_at_its_native_size(tiny_128):
    session = _session(tiny_128)
    assert session.get_outputs()[1].name.startswith("onnx::Sigmoid")  # named as the real model's
    _, head = rehead_yolov5(tiny_128, session, (128, 128))
    assert head.strides == _STRIDES and len(head.outputs) == 3
    np.testing.assert_allclose(head.anchors, _ANCHORS.numpy(), rtol=1e-4)

    images = np.random.default_rng(1).random((3, 3, 128, 128), np.float32)
    output, *levels = session.run(None, {"images": images})
    image, row, decoded = head.decode(levels)
    assert len(image) == output.shape[0] * output.shape[1]
    np.testing.assert_allclose(decoded, output[image, row], atol=1e-4)
    # The objectness pre-filter keeps every row above the threshold, and only near ones below.
    image, row, kept = head.decode(levels, objectness_above=0.5)
    above = np.argwhere(output[..., 4] > 0.5)
    assert 0 < len(above) < output.shape[0] * output.shape[1]
    assert {tuple(r) for r in above} <= set(zip(image.tolist(), row.tolist(), strict=True))
    assert (kept[:, 4] > 0.5 - 1e-3).all()


@pytest.mark.parametrize("size", [(64, 128), (192, 96)])
def test_the_reheaded_graph_decodes_other_sizes_as_the_network_does(tiny_128, size):
    """Re-headed at 128x128, run at `size`: equal to the same weights with the head made for it."""
    model, head = rehead_yolov5(tiny_128, _session(tiny_128), (128, 128))
    images = np.random.default_rng(2).random((2, 3, *size), np.float32)
    levels = _session(model).run(list(head.outputs), {"images": images})
    image, row, decoded = head.decode(levels)
    with torch.no_grad():
        expected = _TinyYolov5(size, raw_outputs=False)(torch.from_numpy(images)).numpy()
    assert len(image) == expected.shape[0] * expected.shape[1]
    np.testing.assert_allclose(decoded, expected[image, row], atol=1e-3)


def test_a_reheaded_detector_finds_what_an_export_at_that_size_finds(tiny_128, tmp_path):
    native_192 = _export(_TinyYolov5((192, 192)), (192, 192), tmp_path / "t192.onnx")
    frames = [np.random.default_rng(i).integers(0, 256, (150, 200, 3), np.uint8) for i in (3, 4)]
    options = {"confidence": 0.3, "classes": (0, 1), "device": "cpu"}
    with (
        create_detector("onnx-yolo", weights=tiny_128, input_size=192, rect=False, **options) as a,
        create_detector("onnx-yolo", weights=native_192, **options) as b,
    ):
        assert a.input_size == b.input_size == (192, 192) and not (a.rect or b.rect)
        reheaded, exported = a.detect(frames), b.detect(frames)
    for ours, theirs in zip(reheaded, exported, strict=True):
        assert len(ours) == len(theirs) > 0
        np.testing.assert_allclose(ours.xyxy, theirs.xyxy, atol=1e-3)
        np.testing.assert_allclose(ours.confidence, theirs.confidence, atol=1e-5)


def test_a_reheaded_detector_pads_to_the_stride_only(tiny_128):
    """A 100x200 frame at input_size 96 is scaled to 48x96 and padded to a (64, 96) input; a
    batch mixing it with a portrait frame shares one (96, 96) input, each frame at its scale."""
    wide = np.random.default_rng(5).integers(0, 256, (100, 200, 3), np.uint8)
    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))
    with create_detector("onnx-yolo", weights=tiny_128, input_size=96, classes=(0, 1)) as detector:
        assert detector.rect and detector.input_size == (96, 96)
        batch, placements = _preprocess_of(detector, [wide])
        assert batch.shape == (1, 3, 64, 96) and placements[0].pad == (8, 0)
        batch, placements = _preprocess_of(detector, [wide, tall])
        assert batch.shape == (2, 3, 96, 96)
        assert [p.gain for p in placements] == [(0.48, 0.48), (0.48, 0.48)]
        found = detector.detect([wide, tall])
    assert [d.metadata["image_size"] for d in found] == [(100, 200), (200, 100)]


def _preprocess_of(detector, frames):
    from detectors.onnx_yolo import _preprocess

    return _preprocess(frames, detector.input_size[0], 32, rect=detector.rect)


def test_a_graph_without_raw_levels_keeps_its_fixed_size(tmp_path):
    path = _export(_TinyYolov5((128, 128), raw_outputs=False), (128, 128), tmp_path / "t.onnx")
    with create_detector("onnx-yolo", weights=path, classes=(0, 1)) as detector:
        assert detector.input_size == (128, 128) and not detector.rect
    with pytest.raises(DetectorError) as error:
        create_detector("onnx-yolo", weights=path, input_size=64, classes=(0, 1))
    assert (
        "the model's input is fixed at 128x128; input_size=64 cannot be used: it has no raw "
        in (str(error.value))
    )
    assert "export with dynamic=True" in str(error.value)


def test_a_head_decoding_otherwise_is_refused(tmp_path):
    """A YOLOv3-style head (wh = exp(raw) * anchor) has raw levels, but the v6+ decode of them
    does not give its output: refused rather than decoded wrongly."""
    path = _export(_TinyYolov5((128, 128), exp_wh=True), (128, 128), tmp_path / "t.onnx")
    with pytest.raises(DetectorError, match=r"input_size=96 cannot be used: decoding its raw"):
        create_detector("onnx-yolo", weights=path, input_size=96, classes=(0, 1))


def test_bad_sizes_for_a_reheaded_graph(tiny_128):
    with pytest.raises(DetectorError, match="input_size=100: expected a positive multiple of 32"):
        create_detector("onnx-yolo", weights=tiny_128, input_size=100, classes=(0, 1))


# ----------------------------------------------------------------------------------- real model


def test_the_real_model_reheaded_at_640_finds_what_the_fixed_graph_finds(
    yolov5n_onnx, pets_frames, pets_detections
):
    """On square frames the re-headed input is the fixed graph's 640x640: the same boxes. On the
    PETS frames (480x360: a 480x640 input instead) the confident walkers are found again."""
    frames, reference = pets_frames[:41:20], pets_detections[:41:20]
    squares = [letterbox(frame, size=(640, 640))[0] for frame in frames]
    options = {"weights": yolov5n_onnx, "confidence": 0.1}
    with (
        create_detector("onnx-yolo", **options) as fixed,
        create_detector("onnx-yolo", input_size=640, **options) as reheaded,
    ):
        assert fixed.head is None and reheaded.head is not None and reheaded.rect
        pairs = zip(reheaded.detect(squares), fixed.detect(squares), strict=True)
        rect = reheaded.detect(frames)
    for ours, theirs in pairs:
        assert len(ours) == len(theirs) > 3
        np.testing.assert_allclose(ours.xyxy, theirs.xyxy, atol=1e-2)
        np.testing.assert_allclose(ours.confidence, theirs.confidence, atol=1e-5)
    for ours, theirs in zip(rect, reference, strict=True):
        confident = theirs[theirs.confidence > 0.4]
        assert len(confident) >= 3
        best = box_iou(torch.tensor(confident.xyxy), torch.tensor(ours.xyxy)).amax(1)
        assert (best > 0.5).all() and best.median() > 0.9, best  # other padding, close boxes


@pytest.mark.slow
def test_the_real_model_at_smaller_inputs_still_finds_the_shoppers(yolov5n_onnx):
    """Store frames (640x360) at 640 and 416: (384, 640) and (256, 416) inputs, people found."""
    with VideoReader(shared_file("video/store_cam1.mp4"), max_frames=1) as reader:
        frame = next(iter(reader))
    for size, shape in ((640, (384, 640)), (416, (256, 416))):
        with create_detector("onnx-yolo", weights=yolov5n_onnx, input_size=size) as detector:
            batch, _ = _preprocess_of(detector, [frame])
            assert batch.shape[2:] == shape
            people = detector.detect([frame])[0]
        assert (people.confidence > 0.4).sum() >= 1, (size, people.confidence)

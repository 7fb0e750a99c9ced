"""The openvino detector on SSD IR files written here with OpenVINO's own API.

No Intel model can be downloaded here. The IR files end, as person-detection-retail-0013 does, in
OpenVINO's own DetectionOutput operation (output (1, 1, 200, 7), detections first, then a row
with image_id -1, then padding) fed by fixed priors and class scores, and take a 1x3x320x544
input. One prior's person score is the mean of an input channel / 255, which pins the channel
order and the 0..255 range the detector feeds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from detectors import DetectorError, create_detector
from detectors.settings import DetectorConfig

ov = pytest.importorskip("openvino")
ops = pytest.importorskip("openvino.opset13")
opset8 = pytest.importorskip("openvino.opset8")

SIZE = (320, 544)  # person-detection-retail-0013's input (h, w)
#: Prior boxes (x_min, y_min, x_max, y_max) in 0..1, and their (background, person, other) scores.
PRIORS = np.array([[0.1, 0.1, 0.3, 0.5], [0.5, 0.2, 0.9, 0.9], [0.6, 0.0, 0.7, 0.1]], np.float32)
SCORES = np.array([[0.1, 0.9, 0.0], [0.7, 0.3, 0.0], [0.1, 0.0, 0.9]], np.float32)
BLUE_PRIOR = 2  # with `blue=True`, this prior's person score is mean(input channel 0) / 255


def _class_scores(image, *, blue: bool, batch: int):
    """(B, priors * 3) class scores: `SCORES`, or with BLUE_PRIOR's person score from the input."""
    flat = np.tile(SCORES.reshape(1, -1), (batch, 1))
    if not blue:
        return ops.constant(flat)
    mean = ops.reduce_mean(image, np.array([2, 3]), keep_dims=False)  # (B, 3)
    channel = ops.gather(mean, np.array([0]), np.int64(1))  # (B, 1)
    person = ops.multiply(channel, np.float32(1 / 255))
    index = BLUE_PRIOR * 3 + 1
    return ops.concat(
        [ops.constant(flat[:, :index]), person, ops.constant(flat[:, index + 1 :])], 1
    )


def write_ssd_ir(folder: Path, *, blue: bool = False, batch: int = 1) -> Path:
    """An IR like person-detection-retail-0013: (B, 3, 320, 544) in, DetectionOutput out."""
    image = ops.parameter([batch, 3, *SIZE], np.float32, name="data")
    variances = np.tile(np.float32([0.1, 0.1, 0.2, 0.2]), (len(PRIORS), 1))
    proposals = np.stack([PRIORS.reshape(-1), variances.reshape(-1)])[None]  # (1, 2, P * 4)
    attrs = {
        "keep_top_k": [200],
        "top_k": 400,
        "nms_threshold": 0.45,
        "background_label_id": 0,
        "code_type": "caffe.PriorBoxParameter.CENTER_SIZE",
        "share_location": True,
        "variance_encoded_in_target": False,
        "normalized": True,
        "confidence_threshold": 0.01,
    }
    detections = opset8.detection_output(
        ops.constant(np.zeros((batch, PRIORS.size), np.float32)),  # no offsets: boxes = priors
        _class_scores(image, blue=blue, batch=batch),
        ops.constant(proposals),
        attrs,
    )
    path = folder / "person-detection-like.xml"
    ov.save_model(ov.Model([detections], [image], "ssd"), path, compress_to_fp16=False)
    return path


@pytest.fixture(scope="module")
def ssd_ir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ssd_ir(tmp_path_factory.mktemp("ssd"))


def test_boxes_are_person_rows_above_the_threshold_in_frame_pixels(ssd_ir):
    frame = np.zeros((720, 1280, 3), np.uint8)  # not the input size: corners scale to the frame
    with create_detector("openvino", weights=ssd_ir, confidence=0.2) as detector:
        (people,) = detector.detect([frame])
    # Prior 0 (person 0.9) and prior 1 (person 0.3); prior 2 is label 2, never a person.
    np.testing.assert_allclose(people.confidence, [0.9, 0.3], rtol=1e-5)
    np.testing.assert_allclose(
        people.xyxy, PRIORS[:2] * [1280, 720, 1280, 720], rtol=1e-4, atol=1e-2
    )
    assert people.class_id.tolist() == [0, 0]
    assert people.metadata["image_size"] == (720, 1280)
    with create_detector("openvino", weights=ssd_ir, confidence=0.5) as detector:
        assert detector.detect([frame])[0].confidence.tolist() == pytest.approx([0.9])


def test_the_person_label_picks_the_rows(ssd_ir):
    frame = np.zeros((100, 200, 3), np.uint8)
    with create_detector("openvino", weights=ssd_ir, confidence=0.2, person_label=2) as detector:
        (people,) = detector.detect([frame])
    np.testing.assert_allclose(people.xyxy, PRIORS[2:] * [200, 100, 200, 100], atol=1e-2)
    assert people.class_id.tolist() == [0]  # reported as the project's person class


def test_frames_go_in_as_bgr_0_to_255_one_result_each(tmp_path):
    path = write_ssd_ir(tmp_path, blue=True)
    blue, red = np.zeros((2, 60, 80, 3), np.uint8)
    blue[..., 0], red[..., 2] = 204, 255  # BGR: channel 0 is blue
    with create_detector("openvino", weights=path, confidence=0.5, person_label=1) as detector:
        on_blue, on_red = detector.detect([blue, red])
    # The blue frame's mean blue value 204 / 255 = 0.8 becomes prior 2's person score.
    assert on_blue.confidence.tolist() == pytest.approx([0.9, 0.8], abs=1e-5)
    np.testing.assert_allclose(on_blue.xyxy[1], PRIORS[BLUE_PRIOR] * [80, 60, 80, 60], atol=1e-2)
    assert on_red.confidence.tolist() == pytest.approx([0.9])


def test_a_fixed_batch_runs_in_steps_and_keeps_frames_apart(tmp_path):
    path = write_ssd_ir(tmp_path, blue=True, batch=2)
    blue, red = np.zeros((2, 10, 20, 3), np.uint8)
    blue[..., 0] = 255
    frames = [blue, red, blue[:8]]  # the second step is one frame, padded with a blank
    with create_detector("openvino", weights=path, confidence=0.5) as detector:
        results = detector.detect(frames)
    assert [r.metadata["image_size"] for r in results] == [(10, 20), (10, 20), (8, 20)]
    assert [len(r) for r in results] == [2, 1, 2]


def test_the_config_builds_it_on_the_cpu_whatever_the_device(ssd_ir, caplog):
    cfg = DetectorConfig(name="openvino", weights=ssd_ir, confidence=0.5)
    assert cfg.missing() == []
    with (
        caplog.at_level("INFO"),
        create_detector(cfg.name, **cfg.options(device="cuda")) as detector,
    ):
        assert "runs on the CPU; device 'cuda' is not used" in caplog.text
        assert len(detector.detect([np.zeros((32, 32, 3), np.uint8)])[0]) == 1


def test_a_model_that_is_not_an_ssd_is_refused(tmp_path):
    image = ops.parameter([1, 3, *SIZE], np.float32, name="data")
    pooled = ops.reduce_mean(image, np.array([2, 3]), keep_dims=False)  # (1, 3), a classifier
    path = tmp_path / "classifier.xml"
    ov.save_model(ov.Model([pooled], [image], "classifier"), path)
    with pytest.raises(DetectorError, match=r"expected SSD DetectionOutput \(1, 1, N, 7\)"):
        create_detector("openvino", weights=path)


def test_a_second_input_as_person_detection_retail_0002_is_refused(tmp_path):
    image = ops.parameter([1, 3, *SIZE], np.float32, name="data")
    info = ops.parameter([1, 6], np.float32, name="im_info")
    seven = ops.concat([info, ops.constant(np.zeros((1, 1), np.float32))], 1)
    rows = ops.reshape(seven, np.array([1, 1, 1, 7]), special_zero=False)
    path = tmp_path / "two_inputs.xml"
    ov.save_model(ov.Model([rows], [image, info], "rfcn"), path)
    with pytest.raises(DetectorError, match=r"expected one \(N, 3, h, w\) image input"):
        create_detector("openvino", weights=path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"input_size": 320}, "fixed at 320x544; input_size=320 cannot be used"),
        ({"classes": (2,)}, "reports people only"),
    ],
)
def test_options_it_cannot_honour_are_refused(ssd_ir, options, message):
    with pytest.raises(DetectorError, match=message):
        create_detector("openvino", weights=ssd_ir, **options)


def test_files_it_cannot_read_are_refused(ssd_ir, tmp_path):
    with pytest.raises(DetectorError, match=r"expected a \.xml file"):
        create_detector("openvino", weights=ssd_ir.with_suffix(".onnx"))
    lone = tmp_path / "lone.xml"
    lone.write_text(ssd_ir.read_text())
    with pytest.raises(DetectorError, match=r"needs its weights file .*lone\.bin"):
        create_detector("openvino", weights=lone)
    lone.with_suffix(".bin").write_bytes(b"")
    lone.write_text("<net>not an IR")
    with pytest.raises(DetectorError, match="OpenVINO cannot read it"):
        create_detector("openvino", weights=lone)


def test_without_openvino_the_refusal_names_the_extra(ssd_ir, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    with pytest.raises(DetectorError, match=r"pip install 'reidstream\[openvino\]'"):
        create_detector("openvino", weights=ssd_ir)


def test_rows_after_the_end_mark_are_padding(ssd_ir):
    # DetectionOutput pads with (0, 0, 0, ...) rows after its image_id -1 row: image 0, label 0,
    # confidence 0. A negative threshold and person_label 0 would take them all if read.
    with create_detector("openvino", weights=ssd_ir, confidence=-1.0, person_label=0) as detector:
        assert len(detector.detect([np.zeros((32, 32, 3), np.uint8)])[0]) == 0

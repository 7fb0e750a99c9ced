"""`reidstream track` on real footage: outputs, the config it records, and its errors."""

from __future__ import annotations

import pytest
import yaml

from detectors.video import VideoReader
from pipeline.cli import main
from tests.video_sources import write_elementary, write_images


def test_onnx_yolo_and_bytetrack_write_mot_results_video_and_config(
    yolov5n_onnx, pets_video, tmp_path, capsys
):
    import motmetrics as mm

    out = tmp_path / "out"
    argv = ["track", str(pets_video), "--weights", str(yolov5n_onnx), "--out", str(out)]
    # KEY=VALUE before and after the flags: both apply.
    argv += ["detector.iou=0.6", "--max-frames", "12", "--save-video", "tracker.track_buffer=15"]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert "12 frames of pets2009_s2l1_view1.avi" in stdout and "frames/s" in stdout

    results = mm.io.loadtxt(out / "pets2009_s2l1_view1.txt")
    frames = results.index.get_level_values("FrameId")
    assert frames.min() == 1 and frames.max() == 12
    assert results.index.get_level_values("Id").nunique() >= 3
    assert (results.groupby(level="FrameId").size() >= 3).all()
    assert ((results["Width"] > 5) & (results["Height"] > 15)).all()
    assert (results[["ClassId", "Visibility"]] == -1).all().all()  # x, y, z of 2D results

    with VideoReader(out / "pets2009_s2l1_view1.mp4") as annotated:
        assert (annotated.info.width, annotated.info.height) == (480, 360)
        assert len(list(annotated)) == 12

    recorded = yaml.safe_load((out / "pets2009_s2l1_view1.config.yaml").read_text())
    assert recorded["detector"]["name"] == "onnx-yolo"
    assert recorded["detector"]["weights"] == str(yolov5n_onnx)
    assert recorded["detector"]["iou"] == 0.6
    assert recorded["tracker"] | {"track_buffer": 15} == recorded["tracker"]
    assert recorded["track"] == {
        "out_dir": str(out),
        "save_video": True,
        "batch_size": 1,
        "max_frames": 12,
    }


def test_hog_and_botsort_need_no_weights(pets_video, tmp_path, capsys):
    argv = ["track", str(pets_video), "--detector", "hog", "--tracker", "botsort"]
    assert main([*argv, "--out", str(tmp_path), "--max-frames", "4", "track.batch_size=2"]) == 0
    lines = (tmp_path / "pets2009_s2l1_view1.txt").read_text().splitlines()
    assert lines and all(line.endswith(",-1,-1,-1") for line in lines)
    assert "hog + botsort" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "detector.weights: the 'onnx-yolo' detector needs a weights file"),
        (["--detector", "yolo9000"], "detector: name = 'yolo9000': expected one of hog, onnx-yolo"),
        (["--detector", "hog", "--weights", "x.onnx"], "the 'hog' detector takes no weights"),
        (["--tracker", "sort"], "expected one of botsort, bytetrack"),
        (
            ["tracker.track_buffer=0"],
            "tracker.track_buffer = '0' (from command line): must be >= 1",
        ),
        (["detector.confidence=2"], "detector.confidence = '2' (from command line): must be <= 1"),
        (["--detector", "hog", "tracker.gmc_method=fast"], "tracker.gmc_method = 'fast'"),
    ],
)
def test_configuration_errors_exit_2_naming_the_key(pets_video, tmp_path, capsys, extra, message):
    assert main(["track", str(pets_video), "--out", str(tmp_path), *extra]) == 2
    assert message in capsys.readouterr().err


def test_unusable_inputs_exit_2_naming_the_file(yolov5n_onnx, pets_video, tmp_path, capsys):
    text = tmp_path / "clip.mp4"
    text.write_text("not a video\n")
    assert main(["track", str(text), "--detector", "hog", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"reidstream track: '{text}': cannot be opened as a video" in err

    assert main(["track", str(tmp_path / "gone.avi"), "--weights", str(yolov5n_onnx)]) == 2
    assert "gone.avi': video file not found" in capsys.readouterr().err

    weights = tmp_path / "weights.onnx"
    weights.write_bytes(b"PK\x03\x04 not a model")
    assert main(["track", str(pets_video), "--weights", str(weights), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"'{weights}': not a loadable ONNX model" in err
    assert not list(tmp_path.glob("*.txt"))  # nothing written before the inputs are known good


def test_stray_arguments_are_still_refused(pets_video, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["track", str(pets_video), "--detector", "hog", "stray"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: stray" in capsys.readouterr().err


@pytest.mark.parametrize(
    "form", ["cam.264", "cam.h265", "frames", "frames/*.jpg", "frames/%06d.jpg"]
)
def test_tracks_raw_streams_and_image_sequences(tmp_path, capsys, form):
    """The sources a camera's uri takes: a raw elementary stream (no length: progress counts
    frames), an image folder, glob or pattern; outputs are named after the source."""
    if form.startswith("frames"):
        write_images(tmp_path / "frames", frames=6)
        frames, name = 6, "frames"
    else:
        write_elementary(tmp_path / form, frames=8)
        frames, name = 8, "cam"
    out = tmp_path / "out"
    argv = ["track", str(tmp_path / form), "--detector", "hog", "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    label = name if name == "frames" else form  # a file by its file name
    assert f"{frames} frames of {label}," in captured.out
    # tqdm: "6/6 [..." against a known length, "8frame [..." counting up without one
    progress = f"{frames}/{frames} [" if name == "frames" else f" {frames}frame ["
    assert progress in captured.err
    assert (out / f"{name}.txt").is_file() and (out / f"{name}.config.yaml").is_file()


def test_an_unopenable_webcam_exits_2_naming_it(tmp_path, capsys):
    assert main(["track", "webcam:97", "--detector", "hog", "--out", str(tmp_path)]) == 2
    assert "'webcam:97': cannot be opened as a video" in capsys.readouterr().err

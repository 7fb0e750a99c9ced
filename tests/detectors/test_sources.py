"""What a source string names, and every kind of source read through `open_capture`."""

from __future__ import annotations

import pytest

from detectors.sources import image_files, source_kind, source_name, webcam_index
from detectors.video import VideoError, VideoReader, open_capture
from tests.video_sources import SIZE, level, write_elementary, write_images, write_mp4


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("clip.mp4", "file"),
        ("cam.264", "file"),
        ("frames/%06d.jpg", "file"),
        ("frames/*.jpg", "images"),
        ("frames/img_??.png", "images"),
        ("rtsp://user:pw@cam-1/stream", "stream"),
        ("HTTPS://host/mjpeg", "stream"),
        ("srt://host:9000", "stream"),
        ("webcam:2", "webcam"),
        ("0", "webcam"),
        ("file:///videos/clip.mp4", "file"),
    ],
)
def test_kinds(uri, kind):
    assert source_kind(uri) == kind


def test_a_folder_is_images_and_an_existing_path_never_a_webcam(tmp_path, monkeypatch):
    assert source_kind(str(tmp_path)) == "images"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "1").write_bytes(b"")
    assert source_kind("1") == "file" and source_kind("2") == "webcam"
    assert webcam_index("webcam:3") == 3 and webcam_index("cam3") is None


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("/data/store_cam1.mp4", "store_cam1"),
        ("/data/frames/%06d.jpg", "frames"),
        ("/data/frames/*.jpg", "frames"),
        ("rtsp://user:secret@cam-1:554/live?token=x", "cam-1_554_live"),
        ("webcam:1", "webcam1"),
    ],
)
def test_names_for_outputs_hide_credentials(uri, name):
    assert source_name(uri) == name


def test_image_files_are_in_name_order_and_only_images(tmp_path):
    write_images(tmp_path, frames=3)
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.name for p in image_files(str(tmp_path))] == [
        "000000.jpg",
        "000001.jpg",
        "000002.jpg",
    ]
    assert len(image_files(str(tmp_path / "*.jpg"))) == 3
    with pytest.raises(FileNotFoundError, match=r"no images found; expected files matching"):
        image_files(str(tmp_path / "*.png"))
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        image_files(str(tmp_path / "gone"))


def _levels(frames):
    return [round(float(f.mean())) for f in frames]


@pytest.mark.parametrize("suffix", [".264", ".h264", ".265", ".h265"])
def test_raw_elementary_streams_read_with_an_unknown_length(tmp_path, suffix):
    path = write_elementary(tmp_path / f"cam{suffix}", frames=12)
    capture = open_capture(path)
    assert capture.frame_count is None  # OpenCV reports a negative count for these
    capture.close()
    with VideoReader(path) as reader:
        assert len(reader) == 0 and reader.info.frame_count == 0
        frames = list(reader)
    assert len(frames) == 12 and frames[0].shape == (SIZE[1], SIZE[0], 3)
    assert all(abs(a - level(i)) <= 4 for i, a in enumerate(_levels(frames)))


@pytest.mark.parametrize("form", ["folder", "glob", "pattern"])
def test_image_folders_globs_and_patterns_read_in_order(tmp_path, form):
    folder = write_images(tmp_path / "frames", frames=6)
    uri = {"folder": folder, "glob": folder / "*.jpg", "pattern": folder / "%06d.jpg"}[form]
    with VideoReader(uri) as reader:
        assert len(reader) == 6
        frames = list(reader)
    assert all(abs(a - level(i)) <= 3 for i, a in enumerate(_levels(frames)))
    assert len(frames) == 6


def test_a_corrupt_image_is_skipped_not_the_end(tmp_path, caplog):
    folder = write_images(tmp_path, frames=4)
    (folder / "000001.jpg").write_bytes(b"\xff\xd8 truncated")
    with VideoReader(folder) as reader:
        frames = list(reader)
    assert len(frames) == 3
    assert all(abs(a - level(i)) <= 3 for a, i in zip(_levels(frames), (0, 2, 3), strict=True))
    assert "000001.jpg is not a readable image; skipped" in caplog.text


def test_a_file_keeps_its_length_and_max_frames_caps_it(tmp_path):
    path = write_mp4(tmp_path / "clip.mp4", frames=12)
    assert open_capture(path).frame_count == 12
    with VideoReader(path, max_frames=5) as reader:
        assert len(reader) == 5 and len(list(reader)) == 5


def test_sources_that_cannot_open_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"gone\.264': video file not found"):
        open_capture(tmp_path / "gone.264")
    with pytest.raises(VideoError, match=r"'webcam:97': cannot be opened .* capture device"):
        open_capture("webcam:97")
    with pytest.raises(VideoError, match=r"'rtsp://127.0.0.1:9/none': cannot be opened"):
        open_capture("rtsp://127.0.0.1:9/none", open_timeout_s=2, read_timeout_s=2)

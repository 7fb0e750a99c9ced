"""Reading real videos, writing MP4, and the errors for files that are not videos."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.video import VideoError, VideoReader, VideoWriter


def test_reads_pets(pets_video):
    with VideoReader(pets_video) as reader:
        info = reader.info
        assert (info.width, info.height, info.fps) == (480, 360, 10.0)
        assert info.frame_count == len(reader) == 795
        frames = list(reader)
    assert len(frames) == 795
    assert frames[0].shape == (360, 480, 3) and frames[0].dtype == np.uint8
    assert not np.array_equal(frames[0], frames[-1])


def test_max_frames_stops_early(retail_video):
    with VideoReader(retail_video, max_frames=3) as reader:
        assert len(reader) == 3
        frames = list(reader)
    assert len(frames) == 3 and frames[0].shape == (1080, 1920, 3)  # HEVC decodes


def test_written_mp4_reads_back(tmp_path):
    rng = np.random.default_rng(1)
    frames = [np.full((64, 96, 3), 40 * i, np.uint8) for i in range(5)]
    frames[2] = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    with VideoWriter(tmp_path / "out.mp4", fps=10, size=(96, 64)) as writer:
        for frame in frames:
            writer.write(frame)
    with VideoReader(tmp_path / "out.mp4") as reader:
        back = list(reader)
        assert reader.info.fps == pytest.approx(10)
    assert len(back) == 5 and back[0].shape == (64, 96, 3)
    assert abs(int(back[4].mean()) - 160) < 5  # lossy, but the same picture


def test_a_frame_of_the_wrong_size_is_refused(tmp_path):
    with (
        VideoWriter(tmp_path / "out.mp4", fps=10, size=(96, 64)) as writer,
        pytest.raises(VideoError, match="frame of size 32x32, expected 96x64"),
    ):
        writer.write(np.zeros((32, 32, 3), np.uint8))


def test_unreadable_files_are_named(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 100)
    with pytest.raises(VideoError) as error:
        VideoReader(text)
    assert str(text) in str(error.value)
    assert "expected a video" in str(error.value)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match=r"empty\.avi'"):
        VideoReader(empty)
    with pytest.raises(FileNotFoundError, match=r"missing\.mp4': video file not found"):
        VideoReader(tmp_path / "missing.mp4")

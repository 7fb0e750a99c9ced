"""Camera sources: a real MJPEG-over-HTTP stream that dies and comes back, files replayed at
their rate or as fast as possible, frames that are not images, credentials kept out of sight."""

from __future__ import annotations

import http.server
import random
import socketserver
import threading
import time
from datetime import UTC, datetime

import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from pipeline.config import load_config
from pipeline.matching.matcher import Matcher
from pipeline.messages.types import ClipEmbedding, TrackletClosed
from pipeline.monitoring.metrics import PipelineMetrics
from pipeline.settings import ReidstreamConfig
from pipeline.stream.queues import FrameBuffer
from pipeline.stream.settings import CameraConfig, SourcesConfig
from pipeline.stream.sources import OpenCVCamera, as_bgr
from tests.video_sources import level, write_elementary, write_images


class MjpegServer:
    """An IP camera: MJPEG over HTTP (multipart/x-mixed-replace), `frames` frames per
    connection at `fps`, then the connection drops; `connections` connections, then it stops
    answering."""

    def __init__(self, *, frames: int, connections: int, fps: float = 20.0) -> None:
        self.served = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.served += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                for i in range(frames):
                    image = np.full((120, 160, 3), (i * 7) % 255, np.uint8)
                    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
                    head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                    try:
                        self.wfile.write(head % len(jpeg) + jpeg + b"\r\n")
                        self.wfile.flush()
                    except OSError:
                        return
                    time.sleep(1 / fps)
                if server.served >= connections:
                    threading.Thread(target=server.stop, daemon=True).start()

            def log_message(self, *args: object) -> None:
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/stream.mjpg"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def read_all(source: OpenCVCamera, buffer: FrameBuffer, timeout: float = 60.0) -> list:
    source.register()
    source.start()
    frames = []
    deadline = time.monotonic() + timeout
    while (batch := buffer.take_batch(16, 0.01)) is not None:
        frames += batch
        assert time.monotonic() < deadline, "the source did not end"
    source.join(5)
    return frames


def camera(uri: str, **kw) -> tuple[OpenCVCamera, FrameBuffer, PipelineMetrics]:
    metrics = PipelineMetrics(CollectorRegistry())
    buffer = FrameBuffer(64)
    options = SourcesConfig(reconnect_initial_s=0.2, reconnect_max_s=0.4, max_reconnects=2,
                            open_timeout_s=2.0, read_timeout_s=2.0)  # fmt: skip
    config = CameraConfig(id="cam", uri=uri, **kw)
    return OpenCVCamera(config, options, buffer, metrics, threading.Event()), buffer, metrics


def test_reconnection_waits_are_jittered_with_the_given_rng(monkeypatch):
    """Two cameras that lose their streams together do not retry in step."""
    waits = {}
    for seed in (3, 4):
        source, _, _ = camera("rtsp://127.0.0.1:9/s")
        source.backoff.rng = random.Random(seed)
        asked = []
        monkeypatch.setattr(source.stop, "wait", lambda s, asked=asked: asked.append(s) or False)
        assert [source._backoff(n) for n in (1, 2, 3)] == [True, True, False]
        waits[seed] = asked
    for seed, asked in waits.items():
        draws = random.Random(seed)
        assert asked == [draws.uniform(0, 0.2), draws.uniform(0, 0.4)]  # ceilings 0.2, 0.4 (cap)
    assert waits[3] != waits[4]


def test_a_stream_that_dies_is_reconnected_and_a_dead_one_given_up(caplog):
    server = MjpegServer(frames=25, connections=2)
    source, buffer, metrics = camera(server.url)
    frames = read_all(source, buffer)
    state = source.state
    assert server.served == 2
    assert len(frames) == state.frames == 50  # both connections' frames, none lost
    assert [f.index for f in frames] == list(range(50))  # numbering goes on over reconnects
    assert all(np.diff([f.timestamp for f in frames]) >= 0)
    assert state.status == "failed" and state.reconnects == 3  # 1 recovered + 2 that failed
    value = metrics.registry.get_sample_value
    assert value("reidstream_camera_reconnects_total", {"camera": "cam"}) == 3
    assert value("reidstream_camera_connected", {"camera": "cam"}) == 0
    assert "stream lost" in caplog.text and "giving up after 2 failed reconnections" in caplog.text


def write_video(path, frames: int, fps: float = 20.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 10 % 255, np.uint8))
    writer.release()


@pytest.mark.parametrize("replay", ["native", "fast"])
def test_file_replay_keeps_every_frame_and_the_file_clock(tmp_path, replay):
    path = tmp_path / "clip.mp4"
    write_video(path, 20)
    source, buffer, _ = camera(str(path), replay=replay)
    start = time.monotonic()
    frames = read_all(source, buffer)
    elapsed = time.monotonic() - start
    assert len(frames) == 20 and source.state.status == "ended"
    np.testing.assert_allclose(np.diff([f.timestamp for f in frames]), 1 / 20, atol=1e-6)
    if replay == "native":
        assert elapsed >= 0.9  # 20 frames at 20 fps
    assert source.state.nominal_fps == pytest.approx(20.0)


def test_a_looping_file_goes_on_until_stopped(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, 10)
    source, buffer, _ = camera(str(path), replay="fast", loop=True)
    source.register()
    source.start()
    frames = []
    while len(frames) < 35:
        frames += buffer.take_batch(16, 0.01)
    source.stop.set()
    buffer.close()
    source.join(5)
    assert [f.index for f in frames[:35]] == list(range(35))


class _Capture:
    """What `open_capture` returns for a camera that sends odd frames."""

    def __init__(self, images):
        self._images = list(images)

    def isOpened(self) -> bool:
        return True

    def get(self, prop: int) -> float:
        return 10.0

    def read(self):
        return (True, self._images.pop(0)) if self._images else (False, None)

    def close(self) -> None:
        pass


def test_frames_that_are_not_images_are_counted_and_skipped(tmp_path, caplog):
    images = [
        np.zeros((8, 8, 3), np.uint8),
        np.zeros((8, 8), np.uint8),  # gray: converted
        np.zeros((8, 8, 4), np.uint8),  # BGRA: converted
        np.zeros((8, 8, 3), np.uint16),  # wrong type
        np.zeros((8, 8, 2), np.uint8),  # wrong shape
        np.zeros((0, 8, 3), np.uint8),  # empty
        np.zeros((8, 8, 3), np.uint8),
    ]
    source, buffer, metrics = camera(str(tmp_path / "x.mp4"))
    source._open = lambda: _Capture(images)
    frames = read_all(source, buffer)
    assert len(frames) == 4 and all(f.image.shape == (8, 8, 3) for f in frames)
    assert source.state.rejected == 3
    value = metrics.registry.get_sample_value("reidstream_frames_rejected_total", {"camera": "cam"})
    assert value == 3
    assert "is not an image (shape (8, 8), dtype uint16)" not in caplog.text
    assert "is not an image (shape (8, 8, 3), dtype uint16)" in caplog.text


def test_as_bgr():
    assert as_bgr(np.zeros((4, 5, 3), np.uint8)).shape == (4, 5, 3)
    assert as_bgr(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5, 3)
    assert as_bgr(np.zeros((4, 5), np.float32)) is None
    assert as_bgr(None) is None


@pytest.mark.parametrize(
    "uri",
    [
        "rtsp://admin:hunter2@10.0.0.7/s",
        "rtsp://admin:hun/ter2@10.0.0.7/s",
        "rtsp://admin:hun@ter2@10.0.0.7/s",
        "rtsp://10.0.0.7/s?user=admin&password=hunter2",
    ],
)
def test_credentials_never_reach_the_camera_state(uri):
    source, _, _ = camera(uri)
    assert "hunter2" not in str(source.state.as_dict())
    assert "10.0.0.7" in source.state.source  # the camera is still named


def test_kinds_of_uri():
    cfg = load_config(ReidstreamConfig, environ={}, overrides=[
        "cameras=[{id: a, uri: 'webcam:0'}, {id: b, uri: 'http://h/x.mjpg'}, {id: c, uri: a.mp4},"
        " {id: d, uri: a.mp4, live: true}, {id: e, uri: 'f/*.jpg'}, {id: f, uri: '1'}]"
    ])  # fmt: skip
    assert [(c.kind, c.is_live) for c in cfg.cameras] == [
        ("webcam", True), ("stream", True), ("file", False), ("file", True), ("file", False),
        ("webcam", True)
    ]  # fmt: skip
    assert cfg.cameras[5].webcam_index == 1


@pytest.mark.parametrize(
    "form", ["cam.264", "cam.h265", "frames", "frames/*.jpg", "frames/%06d.jpg"]
)
def test_raw_streams_and_image_sequences_are_cameras_like_files(tmp_path, form):
    """The sources `reidstream track` takes: read to the end, in order, on the file clock."""
    if form.startswith("frames"):
        write_images(tmp_path / "frames", frames=6)
    else:
        write_elementary(tmp_path / form, frames=6)
    source, buffer, _ = camera(str(tmp_path / form), replay="fast", fps=10.0)
    frames = read_all(source, buffer)
    assert source.state.status == "ended" and len(frames) == 6
    assert all(abs(f.image.mean() - level(i)) <= 4 for i, f in enumerate(frames))
    np.testing.assert_allclose(np.diff([f.timestamp for f in frames]), 0.1, atol=1e-6)


def test_a_missing_file_fails_its_camera_naming_it(tmp_path, caplog):
    source, buffer, _ = camera(str(tmp_path / "gone.264"))
    assert read_all(source, buffer) == []
    assert source.state.status == "failed"
    assert source.state.last_error == f"{str(tmp_path / 'gone.264')!r}: video file not found"


def test_a_file_starts_at_its_start_time_plus_its_clock_offset(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, 10)
    source, buffer, _ = camera(str(path), replay="fast", start_time="2024-05-01T10:00:00+02:00",
                               clock_offset_s=-1.5)  # fmt: skip
    frames = read_all(source, buffer)
    start = datetime(2024, 5, 1, 8, 0, tzinfo=UTC).timestamp() - 1.5
    np.testing.assert_allclose([f.timestamp for f in frames], start + np.arange(10) / 20)


@pytest.mark.parametrize(("offset", "identities"), [(0.0, 2), (10.0, 1)])
def test_two_recordings_of_one_person_on_one_replay_clock(tmp_path, offset, identities):
    """Two files replayed together share the replay's clock: one person seen on both is 'in two
    places at once' and gets two global ids, unless a clock offset puts the second recording
    after the first, as it was on site."""
    spans = {}
    for cam, shift in (("cam1", 0.0), ("cam2", offset)):
        path = tmp_path / f"{cam}.mp4"
        write_video(path, 20, fps=5.0)  # 4 s: longer than reading both files takes
        source, buffer, _ = camera(str(path), replay="fast", clock_offset_s=shift)
        stamps = [f.timestamp for f in read_all(source, buffer)]
        spans[cam] = (stamps[0], stamps[-1])
    matcher = Matcher(threshold=0.7, id_prefix="g")
    look = np.ones(8, np.float32) / np.sqrt(8)  # one person, as a ReID model would see them
    links = []
    for cam, (start, end) in spans.items():
        links += matcher.update([ClipEmbedding(cam, 1, f"{cam}.1", 0, 19, start, end, look, "m")])
        matcher.close([TrackletClosed(cam, 1, f"{cam}.1", end)])
    assert len({link.global_id for link in links}) == identities
    assert links[1].best_similarity == pytest.approx(1.0)  # however close, when refused

"""Camera sources: one reader thread per camera.

    OpenCVCamera (file | images | rtsp/http/... stream | webcam:N) ─┐
    any other `Source` (e.g. pipeline.demo.scene's) ────────────────┴─▶ Frame ──▶ FrameBuffer

    open ─ok─▶ read frames ──▶ check each (H, W, 3) uint8 (gray/BGRA converted, others rejected)
      │                     ──▶ live: put, dropping the camera's oldest waiting frame if full
      │                         file: put, waiting for room ('fast') or paced at its frame rate
      │        read fails / stream stalls ──▶ live: reconnect; file: ended (or loop)
      └─fail─▶ live: wait a random time below reconnect_initial_s, a ceiling that doubles
               up to reconnect_max_s (full jitter, `pipeline.messages.backoff`), and retry
               (max_reconnects in a row, then failed); file: failed

A camera that fails never stops the others: each has its thread, its state (`CameraState`, shown
by /healthz) and its metrics. Timestamps are capture times in seconds since the Unix epoch: the
wall clock for live streams and webcams; for a file, its `start_time` (default: the replay's
start) plus its `clock_offset_s` plus the frame's position at the file's frame rate (so 'fast'
replays carry the timestamps a live run would have, and recordings started at different times
keep their distance).

Opening is `detectors.video.open_capture`'s, as for `reidstream track`, so both take the same
sources; reading is OpenCV's (`cv2.VideoCapture`, FFmpeg backend for files and streams, `imread`
for image folders and globs); the threads,
backoff and pacing around it are written here, as in Ultralytics' `LoadStreams` and Roboflow's
`VideoSource`, which this follows (one thread per stream, drop-oldest, reconnect).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from detectors.video import Capture, open_capture
from pipeline.config import redact_text
from pipeline.messages.backoff import Backoff
from pipeline.monitoring.metrics import PipelineMetrics
from pipeline.stream.queues import FrameBuffer, QueueClosed
from pipeline.stream.settings import CameraConfig, SourcesConfig
from pipeline.stream.types import Frame

__all__ = ["CameraState", "OpenCVCamera", "Source", "as_bgr"]

log = logging.getLogger(__name__)


@dataclass
class CameraState:
    """What is known about one camera right now (the /healthz report shows it).

    Attributes:
        camera_id: The camera.
        source: Where its frames come from (credentials hidden).
        live: Whether frames are dropped rather than waited for.
        status: starting, connected, reconnecting, ended (a file finished) or failed.
        frames: Frames read and handed over.
        dropped: Frames dropped because the detector fell behind.
        rejected: Frames that were not usable images.
        reconnects: Attempts to reopen the stream.
        nominal_fps: Frame rate the stream reports (0 if it does not).
        fps: Frames per second actually read, averaged over the last few seconds.
        last_frame_time: Capture time of the newest frame (Unix seconds), None before the first.
        last_error: The latest failure, None if there was none.
    """

    camera_id: str
    source: str
    live: bool
    status: str = "starting"
    frames: int = 0
    dropped: int = 0
    rejected: int = 0
    reconnects: int = 0
    nominal_fps: float = 0.0
    fps: float = 0.0
    last_frame_time: float | None = None
    last_error: str | None = None
    _rate_start: float = field(default=0.0, repr=False)
    _rate_frames: int = field(default=0, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def count_frame(self, timestamp: float) -> None:
        self.frames += 1
        self.last_frame_time = timestamp
        now = time.monotonic()
        self._rate_frames += 1
        if now - self._rate_start >= 2.0:  # measured over windows of about two seconds
            if self._rate_start:
                self.fps = self._rate_frames / (now - self._rate_start)
            self._rate_start, self._rate_frames = now, 0


class Source(ABC):
    """A thread that reads frames of one or more cameras into the frame buffer.

    Args:
        buffer: Where frames go; the source registers its cameras and ends them.
        metrics: Per-camera counters.
        stop: Set to make the source stop reading (shutdown).
    """

    def __init__(self, buffer: FrameBuffer, metrics: PipelineMetrics, stop: threading.Event):
        self.buffer, self.metrics, self.stop = buffer, metrics, stop
        self._thread: threading.Thread | None = None

    @property
    @abstractmethod
    def states(self) -> list[CameraState]:
        """The state of each camera of this source."""

    @abstractmethod
    def _run(self) -> None:
        """Reads until the stream is over or `stop` is set."""

    def register(self) -> None:
        """Announces the cameras to the frame buffer (which then waits for them to end) and
        creates their metric series; before the detect stage starts reading."""
        for state in self.states:
            self.buffer.add_camera(state.camera_id)
            self.metrics.add_camera(state.camera_id)

    def start(self) -> None:
        name = "source-" + ",".join(s.camera_id for s in self.states)
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _main(self) -> None:
        try:
            self._run()
        except QueueClosed:
            pass
        except Exception as e:  # a bug here must not go unnoticed, nor stop the other cameras
            log.exception("source %s failed", [s.camera_id for s in self.states])
            for state in self.states:
                state.status, state.last_error = "failed", repr(e)
        finally:
            for state in self.states:
                if state.status not in ("ended", "failed"):
                    state.status = "ended"
                self.metrics.camera_connected.labels(camera=state.camera_id).set(0)
                self.buffer.end_camera(state.camera_id)

    def _deliver(self, state: CameraState, frame: Frame) -> None:
        """Hands a frame to the buffer and counts it (and the frame it displaced, if any)."""
        dropped = self.buffer.put(frame, live=state.live)
        state.count_frame(frame.timestamp)
        self.metrics.frames_in.labels(camera=state.camera_id).inc()
        if dropped is not None:
            state.dropped += 1
            self.metrics.frames_dropped.labels(camera=state.camera_id).inc()

    def _pace(self, due: float) -> None:
        """Sleeps until wall time `due` (or the stop)."""
        wait = due - time.time()
        if wait > 0:
            self.stop.wait(wait)


def as_bgr(image: Any) -> np.ndarray | None:
    """A decoded image as (H, W, 3) uint8 BGR: gray and BGRA are converted; None if unusable."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0:
        return None
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    return None


class OpenCVCamera(Source):
    """One camera read through `detectors.video.open_capture`: a file, an image sequence, a
    network stream or a webcam.

    Args:
        camera: The camera's configuration.
        options: Buffering and reconnection settings shared by every camera.
        buffer: Where frames go.
        metrics: Per-camera counters.
        stop: Set to stop reading.
        rng: Source of the reconnection jitter (seeded in tests); a fresh one by default.
    """

    def __init__(
        self,
        camera: CameraConfig,
        options: SourcesConfig,
        buffer: FrameBuffer,
        metrics: PipelineMetrics,
        stop: threading.Event,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(buffer, metrics, stop)
        self.camera, self.options = camera, options
        self.backoff = Backoff(options.reconnect_initial_s, options.reconnect_max_s, rng)
        self.state = CameraState(camera.id, redact_text(camera.uri), camera.is_live)
        self._index = 0  # frame counter of the camera, over reconnects and loops

    @property
    def states(self) -> list[CameraState]:
        return [self.state]

    def _open(self) -> Capture | None:
        camera, state = self.camera, self.state
        try:
            capture = open_capture(
                camera.uri,
                open_timeout_s=self.options.open_timeout_s,
                read_timeout_s=self.options.read_timeout_s,
            )
        except OSError as e:  # FileNotFoundError, detectors.video.VideoError
            state.last_error = redact_text(str(e))
            return None
        state.nominal_fps = capture.fps
        self.metrics.camera_fps.labels(camera=camera.id).set(self.fps)
        return capture

    @property
    def fps(self) -> float:
        """Frame rate used for file timestamps and pacing: configured, else reported, else 25."""
        return self.camera.fps or self.state.nominal_fps or 25.0

    def _run(self) -> None:
        state, failures = self.state, 0
        start_wall: float | None = None  # files: the replay's time origin
        while not self.stop.is_set():
            capture = self._open()
            if capture is None:
                if self.camera.kind == "file":
                    state.status = "failed"
                    log.error(
                        "camera %s: %s; a file is not retried", state.camera_id, state.last_error
                    )
                    return
                failures += 1
                if not self._backoff(failures):
                    return
                continue
            failures = 0
            state.status, state.last_error = "connected", None
            self.metrics.camera_connected.labels(camera=state.camera_id).set(1)
            log.info(
                "camera %s: connected to %s (%.1f fps)",
                state.camera_id,
                state.source,
                state.nominal_fps,
            )
            if start_wall is None:
                start_wall = time.time()
            try:
                outcome = self._read(capture, start_wall)
            finally:
                capture.close()
                self.metrics.camera_connected.labels(camera=state.camera_id).set(0)
            if outcome == "broken":
                state.status = "failed"
                log.error("camera %s: %s; a file is not retried", state.camera_id, state.last_error)
                return
            if outcome == "end" and self.camera.kind == "file" and not self.camera.loop:
                state.status = "ended"
                log.info(
                    "camera %s: end of %s after %d frames",
                    state.camera_id,
                    state.source,
                    state.frames,
                )
                return
            if outcome == "lost":
                failures += 1
                if not self._backoff(failures):
                    return

    def _read(self, capture: Capture, start_wall: float) -> str:
        """Reads frames until the stream ends ('end'), is lost ('lost'), a file yields no frame
        at all ('broken'), or stop ('stop')."""
        state, is_file = self.state, self.camera.kind == "file"
        read_any = False
        while not self.stop.is_set():
            ok, image = capture.read()
            if not ok:
                if is_file and read_any:
                    return "end"
                state.last_error = f"{state.source}: no frame could be read"
                if is_file:
                    return "broken"
                log.warning("camera %s: stream lost (%s)", state.camera_id, state.last_error)
                return "lost"
            read_any = True
            bgr = as_bgr(image)
            if bgr is None:
                state.rejected += 1
                self.metrics.frames_rejected.labels(camera=state.camera_id).inc()
                shape = getattr(image, "shape", None)
                log.warning(
                    "camera %s: frame %d is not an image (shape %s, dtype %s); skipped",
                    state.camera_id,
                    self._index,
                    shape,
                    getattr(image, "dtype", None),
                )
                continue
            if is_file:
                position = self._index / self.fps
                if self.camera.replay == "native":
                    self._pace(start_wall + position)
                timestamp = self._origin(start_wall) + position
            else:
                timestamp = time.time()
            self._deliver(state, Frame(state.camera_id, self._index, timestamp, bgr))
            self._index += 1
        return "stop"

    def _origin(self, start_wall: float) -> float:
        """A file's capture time of its first frame: its start_time, else the replay's start,
        plus its clock_offset_s."""
        start = self.camera.start_epoch
        return (start_wall if start is None else start) + self.camera.clock_offset_s

    def _backoff(self, failures: int) -> bool:
        """Waits before reconnection attempt number `failures`; False to give up."""
        state, options = self.state, self.options
        if options.max_reconnects is not None and failures > options.max_reconnects:
            state.status = "failed"
            log.error(
                "camera %s: giving up after %d failed reconnections (%s)",
                state.camera_id,
                failures - 1,
                state.last_error,
            )
            return False
        delay = self.backoff.delay(failures)
        state.status = "reconnecting"
        state.reconnects += 1
        self.metrics.camera_reconnects.labels(camera=state.camera_id).inc()
        log.warning(
            "camera %s: reconnecting in %.1f s (attempt %d; %s)",
            state.camera_id,
            delay,
            failures,
            state.last_error,
        )
        return not self.stop.wait(delay)

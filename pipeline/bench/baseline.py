"""The loop a user would write without reidstream, measured by `reidstream bench pipeline`.

    per camera, one thread:
        newest frame (the same sources and drop-oldest buffers as the job, one per camera)
        -> detect + track this frame: Ultralytics `model.track(frame, persist=True)` with one
           model per camera when the detector is Ultralytics; otherwise the configured detector
           on this one frame, then the camera's tracker (the synthetic scene brings its boxes)
        -> each tracked person: crop, resize to the model's input, append to the track's crops
        -> a track with clip_len crops, every stride crops: one ReID forward on that clip
           (batch 1, the model shared by every camera)
        -> greedy nearest identity by cosine (one gallery under a lock), a link as a JSON line

It does the work of the job (the same clip length and schedule) without batching across
cameras or overlapping the stages, and without the job's crop quality gates (it embeds every
tracked box, so it makes more clips on real footage); its constraints-free greedy matching is
cheaper than the job's. Latency is measured as in the job: capture of the newest frame behind a
link to the link being written.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from deploy.engines import Engine, NonFiniteEmbedding
from detectors import CameraTrackers, Detections, Detector, create_tracker
from detectors.safe_loading import load_yolo
from pipeline.bench.profiling import Profiler
from pipeline.stream.queues import FrameBuffer
from pipeline.stream.sources import CameraState, Source
from pipeline.stream.types import Frame

__all__ = ["CameraBuffers", "NaiveLoop"]

log = logging.getLogger(__name__)


class CameraBuffers:
    """One `FrameBuffer` per camera behind the buffer interface the sources use, so that each
    camera's loop reads only its own frames."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.buffers: dict[str, FrameBuffer] = {}

    def __len__(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    def add_camera(self, camera_id: str) -> None:
        buffer = self.buffers.setdefault(camera_id, FrameBuffer(self.capacity))
        buffer.add_camera(camera_id)

    def put(self, frame: Frame, *, live: bool) -> Frame | None:
        return self.buffers[frame.camera_id].put(frame, live=live)

    def end_camera(self, camera_id: str) -> None:
        self.buffers[camera_id].end_camera(camera_id)

    def close(self) -> None:
        for buffer in self.buffers.values():
            buffer.close()


class _Gallery:
    """Greedy cosine matching: a track keeps its identity; a new one takes the nearest identity
    above the threshold, else a new one."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.lock = threading.Lock()
        self.vectors: list[np.ndarray] = []  # identity sums
        self.of_track: dict[tuple[str, int], int] = {}

    def match(self, camera: str, track: int, vector: np.ndarray) -> tuple[int, float]:
        with self.lock:
            key = (camera, track)
            if key not in self.of_track:
                best, similarity = -1, -1.0
                if self.vectors:
                    gallery = np.stack(self.vectors)
                    sims = gallery @ vector / np.linalg.norm(gallery, axis=1).clip(1e-12)
                    best, similarity = int(sims.argmax()), float(sims.max())
                if similarity < self.threshold:
                    self.vectors.append(np.zeros_like(vector))
                    best = len(self.vectors) - 1
                self.of_track[key] = best
            identity = self.of_track[key]
            self.vectors[identity] = self.vectors[identity] + vector
            return identity, float(self.vectors[identity] @ vector) / max(
                float(np.linalg.norm(self.vectors[identity])), 1e-12
            )


class NaiveLoop:
    """The per-camera loops (see the module docstring).

    Args:
        sources: The cameras, built on `buffers`.
        buffers: One buffer per camera.
        detector: The detector for cameras without their own boxes (None: every frame has them,
            or `ultralytics_weights` is set).
        ultralytics: Arguments of Ultralytics' predictor (weights path under "model") to run
            `model.track` per camera instead of `detector` + tracker.
        tracker: Tracker settings for `detectors.create_tracker` (name, options).
        engine: The ReID engine (called with one clip at a time).
        clip_len, stride: The clip schedule (the job's).
        crop_size: (H, W) each crop is resized to.
        threshold: The gallery's cosine threshold.
        out_path: Where links are written, one JSON document per line.
        profiler: Receives each processed frame and each link.
    """

    def __init__(
        self,
        *,
        sources: list[Source],
        buffers: CameraBuffers,
        detector: Detector | None,
        ultralytics: dict[str, Any] | None,
        tracker: tuple[str, dict[str, Any]],
        engine: Engine,
        clip_len: int,
        stride: int,
        crop_size: tuple[int, int],
        threshold: float,
        out_path: Path,
        profiler: Profiler,
    ) -> None:
        self.sources, self.buffers, self.detector = sources, buffers, detector
        self.ultralytics = ultralytics
        self.trackers = CameraTrackers(functools.partial(create_tracker, tracker[0], **tracker[1]))
        self.engine, self.clip_len, self.stride = engine, clip_len, stride
        self.crop_size, self.gallery = crop_size, _Gallery(threshold)
        self.profiler = profiler
        self.out_path = out_path
        self._out = out_path.open("a", encoding="utf-8")
        self._write = threading.Lock()
        self.errors = 0

    def cameras(self) -> list[CameraState]:
        return [state for source in self.sources for state in source.states]

    def depths(self) -> dict[str, int]:
        return {"frames": len(self.buffers)}

    def start(self) -> list[threading.Thread]:
        """Starts the sources and one loop per camera."""
        for source in self.sources:
            source.register()
        threads = [
            threading.Thread(target=self._loop, args=(camera,), name=f"naive-{camera}", daemon=True)
            for camera in self.buffers.buffers
        ]
        for thread in threads:
            thread.start()
        for source in self.sources:
            source.start()
        return threads

    def stop(self, threads: Sequence[threading.Thread]) -> None:
        self.buffers.close()
        for source in self.sources:
            source.join(5.0)
        for thread in threads:
            thread.join(30.0)
        self._out.close()

    def _loop(self, camera: str) -> None:
        buffer = self.buffers.buffers[camera]
        model = self._ultralytics_model() if self.ultralytics is not None else None
        crops: dict[int, deque[np.ndarray]] = {}
        seen: dict[int, int] = {}
        while (frames := buffer.take_batch(1, 0.0)) is not None:
            frame = frames[0]
            try:
                found, tracked = self._track(model, frame)
                for i, track in enumerate(tracked.tracker_id.tolist()):
                    ring = crops.setdefault(track, deque(maxlen=self.clip_len))
                    ring.append(self._crop(frame.image, tracked.xyxy[i]))
                    seen[track] = seen.get(track, 0) + 1
                    if (
                        len(ring) == self.clip_len
                        and (seen[track] - self.clip_len) % self.stride == 0
                    ):
                        self._embed_and_link(frame, track, ring)
                self.profiler.frame_done(camera, found)
            except Exception as e:  # as in the job: one frame lost, counted, the loop goes on
                self.errors += 1
                log.error("baseline %s frame %d failed: %r", camera, frame.index, e)

    def _ultralytics_model(self) -> Any:
        assert self.ultralytics is not None
        return load_yolo(self.ultralytics["model"], task="detect")

    def _track(self, model: Any, frame: Frame) -> tuple[int, Detections]:
        """(boxes detected, tracked boxes) of the frame; Ultralytics' `track` reports the
        tracked ones only, so there both are those."""
        if model is not None:
            args = {k: v for k, v in self.ultralytics.items() if k != "model"}  # type: ignore[union-attr]
            boxes = model.track(frame.image, persist=True, **args)[0].boxes.cpu().numpy()
            if boxes.id is None:
                return 0, Detections.empty(tracked=True)
            tracked = Detections(
                xyxy=boxes.xyxy,
                confidence=boxes.conf,
                class_id=boxes.cls.astype(np.int64),
                tracker_id=boxes.id.astype(np.int64),
            )
            return len(tracked), tracked
        detections = frame.detections
        if detections is None:
            assert self.detector is not None
            detections = self.detector.detect([frame.image])[0]
        tracked = self.trackers.update(frame.camera_id, detections, frame.image)
        if tracked.tracker_id is None:
            raise RuntimeError("the tracker returned boxes without track ids")
        return len(detections), tracked

    def _crop(self, image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        x1, y1, x2, y2 = (round(float(v)) for v in xyxy)
        x1, y1 = min(max(x1, 0), w - 1), min(max(y1, 0), h - 1)
        x2, y2 = max(min(x2, w), x1 + 1), max(min(y2, h), y1 + 1)
        out_h, out_w = self.crop_size
        return cv2.resize(image[y1:y2, x1:x2], (out_w, out_h))  # OpenCV's default: bilinear

    def _embed_and_link(self, frame: Frame, track: int, ring: deque[np.ndarray]) -> None:
        clip = np.ascontiguousarray(np.stack(ring)[None, ..., ::-1])  # BGR -> RGB, batch of 1
        try:
            vector = self.engine.embed(clip)[0]
        except NonFiniteEmbedding:
            self.errors += 1
            return
        identity, similarity = self.gallery.match(frame.camera_id, track, vector)
        line = json.dumps(
            {
                "global_id": identity,
                "camera_id": frame.camera_id,
                "track_id": track,
                "frame_time": frame.timestamp,
                "similarity": similarity,
            }
        )
        with self._write:
            self._out.write(line + "\n")
        self.profiler.link_made(time.time() - frame.timestamp)

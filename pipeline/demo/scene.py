"""The synthetic multi-camera scene as a camera source: the embedded default of the job.

    trainers.synthetic.SyntheticScene (people with known global ids walking past N cameras)
      ─render(step)─▶ one Frame per camera, paced like live cameras or as fast as taken
                      (+ the scene's ground-truth boxes made noisy, as the frame's detections)

The exact ground truth is kept for scoring a run (`truth`; `pipeline.demo.evaluation`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors import Detections
from pipeline.demo.settings import SyntheticConfig
from pipeline.monitoring.metrics import PipelineMetrics
from pipeline.stream.queues import FrameBuffer
from pipeline.stream.sources import CameraState, Source
from pipeline.stream.types import Frame

__all__ = ["SyntheticSceneSource"]


class SyntheticSceneSource(Source):
    """The cameras of a `trainers.synthetic.SyntheticScene`, rendered step by step.

    Each frame carries the scene's ground truth made noisy as its `detections` when
    ``config.detections == "truth"``; the exact ground truth is kept in `ground_truth` for
    scoring the run (`truth`, `pipeline.demo.evaluation`).

    Args:
        config: The scene and its replay.
        camera_ids: The scene's cameras this source reads.
        buffer: Where frames go.
        metrics: Per-camera counters.
        stop: Set to stop rendering.
    """

    def __init__(
        self,
        config: SyntheticConfig,
        camera_ids: Sequence[str],
        buffer: FrameBuffer,
        metrics: PipelineMetrics,
        stop: threading.Event,
    ) -> None:
        from trainers.synthetic import SyntheticScene

        super().__init__(buffer, metrics, stop)
        self.config = config
        self.scene = SyntheticScene(
            num_cameras=config.cameras,
            num_people=config.people,
            size=config.size,
            fps=config.fps,
            duration_s=config.duration_s,
            seed=config.seed,
            overlap=config.overlap,
            twin_fraction=config.twin_fraction,
        )
        live = config.replay == "native"
        self._states = {c: CameraState(c, f"synthetic:{c}", live) for c in camera_ids}
        self._columns = [self.scene.camera_ids.index(c) for c in camera_ids]
        #: camera -> rows (frame index, global id, x1, y1, x2, y2, visible fraction)
        self.ground_truth: dict[str, list[tuple[int, int, float, float, float, float, float]]] = {
            c: [] for c in camera_ids
        }
        self._rng = np.random.default_rng([config.seed, 77])

    @property
    def states(self) -> list[CameraState]:
        return list(self._states.values())

    def truth(self) -> dict[str, list[tuple]]:
        """Camera -> (frame, person id, x1, y1, x2, y2) of the people a run is scored against:
        those visible at least `min_visible` (the scene's detections leave out the others too)."""
        floor = self.config.min_visible
        return {
            camera: [row[:6] for row in rows if row[6] >= floor]
            for camera, rows in self.ground_truth.items()
        }

    def _run(self) -> None:
        start = time.time()
        for state in self.states:
            state.status, state.nominal_fps = "connected", self.scene.fps
            self.metrics.camera_connected.labels(camera=state.camera_id).set(1)
            self.metrics.camera_fps.labels(camera=state.camera_id).set(self.scene.fps)
        for index in range(self.scene.num_frames):
            if self.stop.is_set():
                return
            timestamp = start + index / self.scene.fps
            if self.config.replay == "native":
                self._pace(timestamp)
            step = self.scene.render(index)
            for state, column in zip(self.states, self._columns, strict=True):
                truth = step.truth[column]
                self.ground_truth[state.camera_id] += [
                    (index, b.global_id, *b.xyxy, b.visible) for b in truth
                ]
                image = step.images[column]
                detections = None
                if self.config.detections == "truth":
                    detections = self._noisy(truth, image.shape[:2])
                frame = Frame(state.camera_id, index, timestamp, image, detections=detections)
                self._deliver(state, frame)

    def _noisy(self, truth: Sequence[Any], size: tuple[int, int]) -> Detections:
        """What a decent detector would report: visible people, jittered boxes, some missed."""
        config, rng = self.config, self._rng
        boxes = [b for b in truth if b.visible >= config.min_visible]
        keep = rng.random(len(boxes)) >= config.miss_rate
        boxes = [b for b, k in zip(boxes, keep, strict=True) if k]
        if not boxes:
            return Detections.empty(metadata={"image_size": size})
        xyxy = np.array([b.xyxy for b in boxes], np.float32)
        heights = (xyxy[:, 3] - xyxy[:, 1])[:, None]
        xyxy = xyxy + rng.normal(0.0, config.box_jitter, xyxy.shape) * heights
        h, w = size
        xyxy[:, [0, 2]] = np.sort(np.clip(xyxy[:, [0, 2]], 0, w), axis=1)
        xyxy[:, [1, 3]] = np.sort(np.clip(xyxy[:, [1, 3]], 0, h), axis=1)
        confidence = np.array([0.5 + 0.5 * b.visible for b in boxes], np.float32)
        return Detections(
            xyxy=xyxy,
            confidence=confidence,
            class_id=np.zeros(len(boxes), np.int64),
            metadata={"image_size": size},
        )

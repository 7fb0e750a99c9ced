"""`reidstream bench detector`: detection + tracking throughput per backend, beside
Ultralytics' own `model.track()` loop.

    reidstream bench detector --weights yolov5n_coco.onnx --video a.avi --video b.mp4 \\
        [--frames 100] [--tracker bytetrack] [--pt-yaml yolov8n.yaml] [--input-sizes 640,480]

For every video, in one run, on the same frames:

    onnx-yolo    the YOLOv5 ONNX through ONNX Runtime           + our tracker wrapper
    ultralytics  the same network through Ultralytics' predictor + our tracker wrapper
                 (the ONNX adapted by `detectors.yolov5_onnx`, since Ultralytics cannot read a
                 YOLOv5 export as it is)
    ultralytics  a YOLOv8 .pt built from `--pt-yaml` (random weights: speed of the PyTorch
                 path only; it detects nothing) + our tracker wrapper
    hog          OpenCV's HOG people detector                     + our tracker wrapper
    model.track  Ultralytics' own detect-and-track loop on the adapted ONNX, its tracker

Frames/s are end to end (decoding, detection, tracking) and steady state: timed from the first
frame's result to the last, so model loading and first-call set-up are left out of every row.
The detect and track columns split our loop's time (decoding excluded, the loop is
`detectors.offline.track_frames`, that of `reidstream track`); Ultralytics' loop does not expose
that split. Thresholds are those of `reidstream track` (confidence 0.1, IoU 0.7,
person only, 640 px input). Not a test: numbers depend on the machine and its load.

With ``--input-sizes`` the command measures instead what smaller ``onnx-yolo`` inputs cost in
detections and gain in time (`pipeline.bench.input_size`).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from detectors import create_detector, create_tracker
from detectors.base import Detector
from detectors.offline import StageTimes, track_frames
from detectors.safe_loading import load_yolo
from detectors.video import VideoReader
from detectors.yolov5_onnx import adapt_yolov5_onnx
from pipeline.bench import input_size
from pipeline.bench.input_size import SizeRow

__all__ = ["Row", "measure_ours", "measure_ultralytics_track", "print_table", "run"]

_CONFIDENCE = 0.1
_PERSON = (0,)


@dataclass(frozen=True)
class Row:
    """One measured pipeline on one video."""

    video: str
    pipeline: str
    model: str
    frames: int
    fps: float
    detect_ms: float | None
    track_ms: float | None
    boxes_per_frame: float
    tracks: int

    def cells(self) -> list[str]:
        ms = [("-" if v is None else f"{v:.1f}") for v in (self.detect_ms, self.track_ms)]
        return [
            self.video,
            self.pipeline,
            self.model,
            str(self.frames),
            f"{self.fps:.1f}",
            *ms,
            f"{self.boxes_per_frame:.1f}",
            str(self.tracks),
        ]


_HEADER = ["video", "pipeline", "model", "frames", "fps", "detect ms", "track ms", "boxes", "ids"]


def _steady_fps(stamps: Sequence[float]) -> float:
    """Frames per second between the first and the last result (first-call set-up excluded)."""
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0


def measure_ours(
    video: Path, detector: Detector, *, tracker: str, frames: int, pipeline: str, model: str
) -> Row:
    """Our loop: VideoReader -> detector -> `detectors.trackers` wrapper."""
    times, stamps, ids, boxes = StageTimes(), [], set(), 0
    with VideoReader(video, max_frames=frames) as reader:
        loop = track_frames(reader, detector=detector, tracker=create_tracker(tracker), times=times)
        for _, tracked in loop:
            stamps.append(time.perf_counter())
            ids.update(tracked.tracker_id.tolist())
            boxes += len(tracked)
    detector.close()
    count = max(times.frames, 1)
    return Row(
        video=video.name,
        pipeline=pipeline,
        model=model,
        frames=times.frames,
        fps=_steady_fps(stamps),
        detect_ms=1000 * times.detect_s / count,
        track_ms=1000 * times.track_s / count,
        boxes_per_frame=boxes / count,
        tracks=len(ids),
    )


def measure_ultralytics_track(video: Path, weights: Path, *, tracker: str, frames: int) -> Row:
    """Ultralytics' own loop: `YOLO(weights).track(video, stream=True)` with its tracker YAML."""
    model = load_yolo(weights, task="detect")
    results = model.track(
        str(video),
        stream=True,
        tracker=f"{tracker}.yaml",
        conf=_CONFIDENCE,
        iou=0.7,
        classes=list(_PERSON),
        imgsz=640,
        rect=False,
        verbose=False,
    )
    stamps, ids, boxes = [], set(), 0
    for result in results:
        stamps.append(time.perf_counter())
        if result.boxes.is_track:
            ids.update(int(i) for i in result.boxes.id.tolist())
            boxes += len(result.boxes)
        if len(stamps) == frames:
            break
    return Row(
        video=video.name,
        pipeline=f"model.track ({tracker})",
        model=weights.name,
        frames=len(stamps),
        fps=_steady_fps(stamps),
        detect_ms=None,
        track_ms=None,
        boxes_per_frame=boxes / max(len(stamps), 1),
        tracks=len(ids),
    )


def _pipelines(
    weights: Path, adapted: Path, pt: Path | None
) -> Iterable[tuple[str, str, Callable[[], Detector]]]:
    """(pipeline label, model label, detector factory) for each of our rows."""
    common = {"confidence": _CONFIDENCE, "iou": 0.7, "classes": _PERSON, "device": "cpu"}
    yield (
        "onnx-yolo",
        weights.name,
        lambda: create_detector("onnx-yolo", weights=weights, **common),
    )
    yield (
        "ultralytics",
        f"{weights.stem} (adapted)",
        lambda: create_detector("ultralytics", weights=adapted, **common),
    )
    if pt is not None:
        yield (
            "ultralytics",
            f"{pt.name} (random weights)",
            lambda: create_detector("ultralytics", weights=pt, **common),
        )
    yield "hog", "OpenCV people SVM", lambda: create_detector("hog", **common)


def _build_pt(yaml_name: str, folder: Path) -> Path:
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    path = folder / f"{Path(yaml_name).stem}_random.pt"
    YOLO(yaml_name).save(path)
    return path


def print_table(rows: Sequence[Row]) -> None:
    """Prints the rows as a Markdown table."""
    cells = [_HEADER, *(row.cells() for row in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_HEADER))]
    for n, line in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def run(
    *,
    weights: Path,
    videos: Sequence[Path],
    frames: int = 100,
    tracker: str = "bytetrack",
    pt_yaml: str | None = None,
    input_sizes: Sequence[int] | None = None,
) -> list[Row] | list[SizeRow]:
    """Measures every pipeline on the first `frames` frames of each video; prints the table.

    Args:
        weights: The YOLOv5 ONNX (COCO).
        videos: Video files, each measured on its own.
        frames: Frames per video and row.
        tracker: ``bytetrack`` or ``botsort``, for every row.
        pt_yaml: An Ultralytics architecture YAML: also time a random-weight ``.pt`` of it.
        input_sizes: Instead, measure ``onnx-yolo`` at these input sizes against its 640
            square input (`pipeline.bench.input_size`).
    """
    if input_sizes:
        return input_size.run(weights=weights, videos=videos, sizes=input_sizes, frames=frames)
    print(f"CPU threads: {os.cpu_count()}; load average {os.getloadavg()[0]:.2f} at start")
    rows = []
    with tempfile.TemporaryDirectory(prefix="reidstream-bench-") as folder:
        adapted = adapt_yolov5_onnx(weights, Path(folder) / f"{weights.stem}.onnx")
        pt = _build_pt(pt_yaml, Path(folder)) if pt_yaml else None
        for video in videos:
            for pipeline, model, factory in _pipelines(weights, adapted, pt):
                row = measure_ours(
                    video,
                    factory(),
                    tracker=tracker,
                    frames=frames,
                    pipeline=f"{pipeline} + {tracker}",
                    model=model,
                )
                rows.append(row)
            rows.append(measure_ultralytics_track(video, adapted, tracker=tracker, frames=frames))
    print(f"load average {os.getloadavg()[0]:.2f} at end\n")
    print_table(rows)
    return rows

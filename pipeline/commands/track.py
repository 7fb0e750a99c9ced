"""`reidstream track`: detect and track people in one video file; write MOTChallenge results.

    VIDEO -> detector (detector.*) -> tracker (tracker.*) -> OUT/<stem>.txt  MOTChallenge lines
                                                          -> OUT/<stem>.mp4  drawn (--save-video)
                                                          -> OUT/<stem>.config.yaml  the config

The flags are shorthands for configuration keys (--detector = detector.name, --weights =
detector.weights, --tracker = tracker.name, --out = track.out_dir, --save-video =
track.save_video, --max-frames = track.max_frames); they apply after the --config file and the
environment, and KEY=VALUE arguments apply after them.

Exit status: 0 done; 2 a usage or configuration error, or an input that cannot be used (a video
that does not decode, a weights file that is not a detector).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from detectors import DetectorError, create_detector, create_tracker
from detectors.annotate import draw_detections
from detectors.base import Detector
from detectors.mot import MotWriter
from detectors.offline import StageTimes, track_frames
from detectors.trackers import Tracker
from detectors.video import VideoError, VideoReader, VideoWriter
from pipeline.commands.common import add_config_arguments, setup_logging
from pipeline.config import ConfigError, dump_config, load_config
from pipeline.settings import ReidstreamConfig

logger = logging.getLogger(__name__)

#: Exit status for a usage or configuration error, or unusable input (as the CLI uses).
EXIT_USAGE = 2

#: flag attribute -> configuration key it sets.
_FLAG_KEYS = {
    "detector": "detector.name",
    "weights": "detector.weights",
    "tracker": "tracker.name",
    "out": "track.out_dir",
    "max_frames": "track.max_frames",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "track",
        help="detect and track people in a video file; write MOTChallenge results",
        description="Run the configured detector and tracker over VIDEO and write "
        "OUT/<stem>.txt in MOTChallenge format (frame, id, x, y, w, h, conf, -1, -1, -1; "
        "frames from 1), the resolved configuration, and with --save-video an annotated MP4.",
    )
    parser.add_argument("video", metavar="VIDEO", type=Path, help="video file to track")
    parser.add_argument("--detector", help="detector.name: onnx-yolo, ultralytics or hog")
    parser.add_argument("--weights", help="detector.weights: the detector's weights file")
    parser.add_argument("--tracker", help="tracker.name: bytetrack or botsort")
    parser.add_argument("--out", metavar="DIR", help="track.out_dir: folder for the outputs")
    parser.add_argument(
        "--save-video", action="store_true", help="track.save_video: also write OUT/<stem>.mp4"
    )
    parser.add_argument("--max-frames", type=int, help="track.max_frames: stop after N frames")
    add_config_arguments(parser)
    parser.set_defaults(run=run)


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """The flags given on the command line, as ``KEY=VALUE`` overrides."""
    overrides = [
        f"{key}={getattr(args, flag)}"
        for flag, key in _FLAG_KEYS.items()
        if getattr(args, flag) is not None
    ]
    if args.save_video:
        overrides.append("track.save_video=true")
    return overrides


def run(args: argparse.Namespace) -> int:
    cfg = load_config(
        ReidstreamConfig, path=args.config, overrides=[*flag_overrides(args), *args.overrides]
    )
    if problems := cfg.detector.missing():
        raise ConfigError("\n".join(problems))
    setup_logging(cfg.log_level)
    try:
        job = _open(args.video, cfg)
    except (FileNotFoundError, VideoError, DetectorError, ValueError) as e:
        print(f"reidstream track: {e}", file=sys.stderr)
        return EXIT_USAGE
    with job:
        times, wall_s, tracks = _track(job, cfg)
    fps = times.frames / wall_s if wall_s > 0 else 0.0
    print(
        f"{times.frames} frames of {args.video.name}, {tracks} tracks: {fps:.1f} frames/s end to "
        f"end; detection + tracking alone {times.fps:.1f} frames/s "
        f"({1000 * times.detect_s / max(times.frames, 1):.1f} + "
        f"{1000 * times.track_s / max(times.frames, 1):.1f} ms/frame, "
        f"{cfg.detector.name} + {cfg.tracker.name})"
    )
    for path in job.outputs:
        print(f"wrote {path}")
    return 0


@dataclass
class _Job:
    """What one `track` run holds open: the video, the models and the output files."""

    reader: VideoReader
    detector: Detector
    tracker: Tracker
    mot_path: Path
    video_path: Path | None
    config_path: Path

    @property
    def outputs(self) -> list[Path]:
        return [p for p in (self.mot_path, self.video_path, self.config_path) if p is not None]

    def __enter__(self) -> _Job:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.close()
        self.detector.close()


def _open(video: Path, cfg: ReidstreamConfig) -> _Job:
    """Opens the video first (the cheapest check), then builds the detector and the tracker."""
    reader = VideoReader(video, max_frames=cfg.track.max_frames)
    try:
        detector = create_detector(cfg.detector.name, **cfg.detector.options(device=cfg.device))
        tracker = create_tracker(cfg.tracker.name, **cfg.tracker.options(device=cfg.device))
    except BaseException:
        reader.close()
        raise
    out_dir = cfg.track.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = video.stem
    config_path = out_dir / f"{stem}.config.yaml"
    config_path.write_text(dump_config(cfg), encoding="utf-8")
    return _Job(
        reader=reader,
        detector=detector,
        tracker=tracker,
        mot_path=out_dir / f"{stem}.txt",
        video_path=out_dir / f"{stem}.mp4" if cfg.track.save_video else None,
        config_path=config_path,
    )


def _track(job: _Job, cfg: ReidstreamConfig) -> tuple[StageTimes, float, int]:
    """Runs the loop; returns the stage times, the wall time and the number of distinct tracks."""
    times = StageTimes()
    track_ids: set[int] = set()
    start = time.perf_counter()
    with MotWriter(job.mot_path) as mot, _annotated_writer(job) as annotated:
        progress = tqdm(total=len(job.reader) or None, unit="frame", desc=job.reader.path.name)
        with progress:
            loop = track_frames(
                job.reader,
                detector=job.detector,
                tracker=job.tracker,
                batch_size=cfg.track.batch_size,
                times=times,
            )
            for number, (frame, tracked) in enumerate(loop, start=1):
                mot.write(number, tracked)
                track_ids.update(tracked.tracker_id.tolist())
                if annotated is not None:
                    annotated.write(draw_detections(frame, tracked))
                progress.update()
    return times, time.perf_counter() - start, len(track_ids)


@contextlib.contextmanager
def _annotated_writer(job: _Job) -> Iterator[VideoWriter | None]:
    if job.video_path is None:
        yield None
        return
    info = job.reader.info
    with VideoWriter(job.video_path, fps=info.fps, size=(info.width, info.height)) as writer:
        yield writer

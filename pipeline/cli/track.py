"""`reidstream track`: detect and track people in one video source; write MOTChallenge results.

    SOURCE -> detector (detector.*) -> tracker (tracker.*) -> OUT/<stem>.txt  MOTChallenge lines
                                                          -> OUT/<stem>.mp4  drawn (--save-video)
                                                          -> OUT/<stem>.config.yaml  the config

The flags are shorthands for configuration keys (--detector = detector.name, --weights =
detector.weights, --tracker = tracker.name, --out = track.out_dir, --save-video =
track.save_video, --max-frames = track.max_frames); they apply after the --config file and the
environment, and KEY=VALUE arguments apply after them. The loop is
`detectors.offline.track_video`. A source that does not open or decode, or a weights file that is
not a detector, exits with status 2 (`pipeline.cli`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.cli.common import add_config_arguments, setup_logging, usage_errors
from pipeline.config import ConfigError, dump_config, load_config

__all__ = ["add_arguments", "flag_overrides", "run"]

#: flag attribute -> configuration key it sets.
_FLAG_KEYS = {
    "detector": "detector.name",
    "weights": "detector.weights",
    "tracker": "tracker.name",
    "out": "track.out_dir",
    "max_frames": "track.max_frames",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run the configured detector and tracker over SOURCE and write OUT/<name>.txt in "
        "MOTChallenge format (frame, id, x, y, w, h, conf, -1, -1, -1; frames from 1), the "
        "resolved configuration, and with --save-video an annotated MP4."
    )
    parser.add_argument(
        "video",
        metavar="SOURCE",
        help="what to track, as a camera's uri takes it: a video file (raw .264/.h265 too), an "
        "image pattern (frames/%%06d.jpg), folder or glob, a stream URL (rtsp://...), or a "
        "webcam (webcam:N or N)",
    )
    parser.add_argument("--detector", help="detector.name: onnx-yolo, ultralytics, openvino or hog")
    parser.add_argument("--weights", help="detector.weights: the detector's weights file")
    parser.add_argument("--tracker", help="tracker.name: bytetrack or botsort")
    parser.add_argument("--out", metavar="DIR", help="track.out_dir: folder for the outputs")
    parser.add_argument(
        "--save-video", action="store_true", help="track.save_video: also write OUT/<stem>.mp4"
    )
    parser.add_argument("--max-frames", type=int, help="track.max_frames: stop after N frames")
    add_config_arguments(parser)


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
    from detectors import create_detector, create_tracker
    from detectors.offline import track_video
    from detectors.sources import source_name
    from detectors.video import VideoReader
    from pipeline.settings import ReidstreamConfig

    cfg = load_config(
        ReidstreamConfig, path=args.config, overrides=[*flag_overrides(args), *args.overrides]
    )
    if problems := cfg.detector.missing():
        raise ConfigError("\n".join(problems))
    setup_logging(cfg.log_level)
    # The video first (the cheapest check), then the models.
    with usage_errors(FileNotFoundError, ValueError):
        reader = VideoReader(args.video, max_frames=cfg.track.max_frames)
    with reader:
        with usage_errors(FileNotFoundError, ValueError):
            detector = create_detector(cfg.detector.name, **cfg.detector.options(device=cfg.device))
        with detector:
            with usage_errors(ValueError):
                tracker = create_tracker(cfg.tracker.name, **cfg.tracker.options(device=cfg.device))
            out_dir, stem = cfg.track.out_dir, source_name(args.video)
            out_dir.mkdir(parents=True, exist_ok=True)
            config_path = out_dir / f"{stem}.config.yaml"
            config_path.write_text(dump_config(cfg), encoding="utf-8")
            result = track_video(
                reader,
                detector=detector,
                tracker=tracker,
                mot_path=out_dir / f"{stem}.txt",
                video_path=out_dir / f"{stem}.mp4" if cfg.track.save_video else None,
                batch_size=cfg.track.batch_size,
            )
    times = result.times
    print(
        f"{times.frames} frames of {_label(args.video, stem)}, {result.tracks} tracks: "
        f"{result.fps:.1f} frames/s end to end; "
        f"detection + tracking alone {times.fps:.1f} frames/s "
        f"({1000 * times.detect_s / max(times.frames, 1):.1f} + "
        f"{1000 * times.track_s / max(times.frames, 1):.1f} ms/frame, "
        f"{cfg.detector.name} + {cfg.tracker.name})"
    )
    for path in [*result.outputs, config_path]:
        print(f"wrote {path}")
    return 0


def _label(source: str, name: str) -> str:
    """How the summary names the source: a video file by its file name, others by `name`."""
    from detectors.sources import source_kind

    is_file = source_kind(source) == "file" and "%" not in Path(source).name
    return Path(source).name if is_file else name

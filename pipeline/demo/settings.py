"""Configuration section of the synthetic multi-camera scene (`synthetic.*`; composed into the
root schema by `pipeline.settings`; see `pipeline.config` for how a schema loads)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["SyntheticConfig"]


@dataclass(frozen=True)
class SyntheticConfig:
    """The synthetic multi-camera scene, the source used when no camera is configured.

    People (with known global ids) walk along a corridor past the cameras; see
    `trainers.synthetic.SyntheticScene`.
    """

    cameras: int = field(
        default=3,
        metadata={"ge": 2, "le": 16, "help": "Cameras along the corridor (cam1, cam2, ...)."},
    )
    people: int = field(
        default=12, metadata={"ge": 1, "help": "People, each walking the whole corridor once."}
    )
    duration_s: float = field(
        default=60.0,
        metadata={
            "gt": 0,
            "help": "Length of the scene; every person needs time to pass two cameras.",
        },
    )
    fps: float = field(
        default=10.0, metadata={"gt": 0, "help": "Frames per second of every camera."}
    )
    size: tuple[int, int] = field(
        default=(360, 640), metadata={"ge": 32, "help": "(H, W) of every camera frame."}
    )
    seed: int = field(
        default=0, metadata={"ge": 0, "help": "Everything in the scene is a function of it."}
    )
    overlap: float = field(
        default=-0.25,
        metadata={
            "gt": -1.0,
            "le": 0.9,
            "help": "Fraction of a view shared with the next camera; negative leaves a blind gap "
            "of that fraction of a view between them (the default: people vanish for a moment).",
        },
    )
    twin_fraction: float = field(
        default=0.0,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "Fraction of people in look-alike pairs that differ only in gait: harder to "
            "tell apart, for stress tests of the matcher.",
        },
    )
    replay: Literal["native", "fast"] = field(
        default="native",
        metadata={
            "help": "'native' renders frames at the scene's frame rate, like live cameras (frames "
            "are dropped when the pipeline falls behind); 'fast' as fast as the pipeline takes "
            "them."
        },
    )
    only_cameras: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "Read only these cameras of the scene (default: all); distributed workers "
            "split one scene this way."
        },
    )
    detections: Literal["truth", "detector"] = field(
        default="truth",
        metadata={
            "help": "'truth': the scene's ground-truth boxes made noisy (jitter, misses), no "
            "detector is run; 'detector': the configured detector.* runs on the rendered frames."
        },
    )
    box_jitter: float = field(
        default=0.04,
        metadata={
            "ge": 0.0,
            "le": 0.5,
            "help": "truth only: standard deviation of the noise added to each box side, as a "
            "fraction of the box height.",
        },
    )
    miss_rate: float = field(
        default=0.05,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "truth only: probability that a visible person is missed.",
        },
    )
    min_visible: float = field(
        default=0.3,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "truth only: people with a smaller visible fraction (occluded, at the border) "
            "are not reported, as a detector would miss them.",
        },
    )

    def __post_init__(self) -> None:
        ids = {f"cam{c + 1}" for c in range(self.cameras)}
        unknown = sorted(set(self.only_cameras) - ids)
        if unknown:
            raise ValueError(
                f"only_cameras = {list(self.only_cameras)}: {unknown} not in the scene's "
                f"cameras {sorted(ids)}"
            )

"""Synthetic people for training, tests and demos: a MARS-format dataset and multi-camera scenes.

figure.py      Appearance + Gait -> pose -> drawn articulated walker
identities.py  appearance groups (twins, motion-only groups) that differ only in cadence
backdrop.py    camera look: background, clutter, colour cast, blur, noise
mars.py        generate_mars: tracklet crops written in the MARS on-disk format
scene.py       SyntheticScene: people walking through several camera views, with ground truth
"""

from __future__ import annotations

from trainers.synthetic.backdrop import CameraStyle, sample_camera_style
from trainers.synthetic.figure import (
    Appearance,
    Gait,
    Pose,
    draw_figure,
    pose_at,
    sample_appearance,
    sample_gait,
)
from trainers.synthetic.identities import CADENCE_RANGE_HZ, Identity, plan_groups
from trainers.synthetic.mars import NUM_CAMERAS, generate_mars, read_identities, render_tracklet
from trainers.synthetic.scene import PersonBox, SceneFiles, SceneStep, SyntheticScene, write_scene

__all__ = [
    "CADENCE_RANGE_HZ",
    "NUM_CAMERAS",
    "Appearance",
    "CameraStyle",
    "Gait",
    "Identity",
    "PersonBox",
    "Pose",
    "SceneFiles",
    "SceneStep",
    "SyntheticScene",
    "draw_figure",
    "generate_mars",
    "plan_groups",
    "pose_at",
    "read_identities",
    "render_tracklet",
    "sample_appearance",
    "sample_camera_style",
    "sample_gait",
    "write_scene",
]

"""A walking articulated figure: who a synthetic person is (appearance, gait) and how it is drawn.

A person is two frozen records. `Appearance` is everything a single frame shows (colours, clothes,
hair, bag, height, build); `Gait` is how the body moves (cadence, leg and arm swing, elbow and knee
bend, bounce, lean, sway). A pose is a pure function of the gait and the gait phase, so two people
with equal appearances drawn at equal poses give equal pixels.

The figure is seen from the side, walking towards `facing` (+1 right, -1 left), drawn far limbs
first (darkened), then torso and head, then near limbs::

            (o)        head, hair
             |         neck
           [===]=o     torso (pattern), near arm: upper arm, forearm, hand
           [===]       backpack or side bag behind the torso
            /  \\       thighs: +-leg_amp * sin(2 pi phase); knee bends while the leg swings
           /    \\_     shins, shoes; the hip height keeps the lower foot on the ground

Figure units: the standing height is 1; points are (x forward, y up) from the ground point under
the hip. `draw_figure` maps them to pixels with `cv2` anti-aliased primitives at 1/16-pixel
precision (``shift=4``), so motion is smooth at small sizes; no per-pixel Python loop.

Hand-written: no library draws parametric people; the drawing is plain `cv2` primitives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

__all__ = [
    "Appearance",
    "Gait",
    "Pose",
    "draw_figure",
    "figure_extent",
    "pose_at",
    "sample_appearance",
    "sample_gait",
]

BGR = tuple[int, int, int]
TopPattern = Literal["solid", "stripes", "jacket", "emblem"]
Bottom = Literal["trousers", "shorts", "skirt"]
HairStyle = Literal["short", "long", "bald", "cap"]
Bag = Literal["none", "backpack", "side_bag"]

_SHIFT = 4  # cv2 fixed-point bits: coordinates are drawn at 1/16 pixel
_SCALE = 1 << _SHIFT
_FAR_SHADE = 0.72  # far limbs are darker, which gives the figure depth

# Body proportions, in units of the standing height.
_THIGH, _SHIN, _FOOT = 0.245, 0.225, 0.075
_UPPER_ARM, _FOREARM = 0.17, 0.16
_SHOULDER_Y, _NECK_Y, _HEAD_R = 0.815, 0.86, 0.068
_LEG_W, _ARM_W, _TORSO_W = 0.085, 0.06, 0.17

_SKINS: tuple[BGR, ...] = ((189, 214, 255), (140, 180, 230), (96, 134, 190), (60, 90, 140))


@dataclass(frozen=True)
class Appearance:
    """What one frame shows of a person. Colours are BGR uint8 triples.

    Attributes:
        skin: Face, hands and bare limbs.
        hair: Hair (or cap) colour.
        hair_style: ``short``, ``long`` (down the back), ``bald`` or ``cap`` (with a brim).
        top: Shirt colour.
        top_pattern: ``solid``, ``stripes`` (horizontal bands), ``jacket`` (open jacket over the
            shirt: the back and sleeves in the pattern colour) or ``emblem`` (a chest badge).
        pattern: The pattern's colour.
        long_sleeves: Whether the forearms are covered by the top's colour.
        bottom: Trousers, shorts or skirt colour.
        bottom_style: ``trousers``, ``shorts`` or ``skirt``.
        shoes: Shoe colour.
        bag: ``none``, ``backpack`` or ``side_bag``.
        bag_colour: The bag's colour.
        height: Standing height relative to the tallest person, in [0.85, 1].
        build: Limb and torso thickness factor, in [0.8, 1.25].
    """

    skin: BGR
    hair: BGR
    hair_style: HairStyle
    top: BGR
    top_pattern: TopPattern
    pattern: BGR
    long_sleeves: bool
    bottom: BGR
    bottom_style: Bottom
    shoes: BGR
    bag: Bag
    bag_colour: BGR
    height: float
    build: float


@dataclass(frozen=True)
class Gait:
    """How a person walks. Angles in degrees; one gait cycle is two steps.

    Attributes:
        cadence_hz: Gait cycles per second. The only parameter a bag of frames cannot see: the
            pose distribution over a cycle does not depend on it.
        leg_amp: Thigh swing amplitude from vertical.
        knee: Knee bend during the forward swing, as a multiple of `leg_amp`.
        arm_amp: Upper-arm swing amplitude.
        elbow: Constant elbow bend.
        arm_lag: Arm phase lag behind the opposite leg, in cycles.
        bounce: Extra vertical body bob (twice per cycle), in heights.
        lean: Constant forward torso lean.
        sway: Torso rocking amplitude (twice per cycle).
    """

    cadence_hz: float
    leg_amp: float
    knee: float
    arm_amp: float
    elbow: float
    arm_lag: float
    bounce: float
    lean: float
    sway: float


@dataclass(frozen=True)
class Pose:
    """Joint angles (radians from straight down, positive = forward) and body offsets.

    `legs`, `shins`, `arms`, `forearms` are (near, far) pairs; `lift` raises the hip above its
    standing height (figure units); `torso` is the torso's forward tilt.
    """

    legs: tuple[float, float]
    shins: tuple[float, float]
    arms: tuple[float, float]
    forearms: tuple[float, float]
    lift: float
    torso: float


def _colour(rng: np.random.Generator, *, sat: tuple[float, float], val: tuple[float, float]) -> BGR:
    hsv = np.array(
        [[[rng.uniform(0, 180), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]], np.uint8
    )
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])  # type: ignore[return-value]


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Draws a random person's look; every field is used, so random people rarely coincide."""
    vivid = {"sat": (0.35, 1.0), "val": (0.25, 0.95)}
    return Appearance(
        skin=_SKINS[int(rng.integers(len(_SKINS)))],
        hair=_colour(rng, sat=(0.1, 0.7), val=(0.05, 0.6)),
        hair_style=("short", "long", "bald", "cap")[int(rng.choice(4, p=[0.45, 0.3, 0.1, 0.15]))],
        top=_colour(rng, **vivid),
        top_pattern=("solid", "stripes", "jacket", "emblem")[int(rng.integers(4))],
        pattern=_colour(rng, **vivid),
        long_sleeves=bool(rng.random() < 0.5),
        bottom=_colour(rng, sat=(0.1, 0.9), val=(0.15, 0.85)),
        bottom_style=("trousers", "shorts", "skirt")[int(rng.choice(3, p=[0.6, 0.2, 0.2]))],
        shoes=_colour(rng, sat=(0.0, 0.8), val=(0.05, 0.9)),
        bag=("none", "backpack", "side_bag")[int(rng.choice(3, p=[0.5, 0.3, 0.2]))],
        bag_colour=_colour(rng, **vivid),
        height=float(rng.uniform(0.85, 1.0)),
        build=float(rng.uniform(0.8, 1.25)),
    )


def sample_gait(rng: np.random.Generator, *, cadence_hz: float | None = None) -> Gait:
    """Draws a random walking style; `cadence_hz` fixes the cadence (otherwise 0.6-1.6 Hz)."""
    return Gait(
        cadence_hz=float(rng.uniform(0.6, 1.6) if cadence_hz is None else cadence_hz),
        leg_amp=float(rng.uniform(16.0, 34.0)),
        knee=float(rng.uniform(0.4, 1.4)),
        arm_amp=float(rng.uniform(8.0, 45.0)),
        elbow=float(rng.uniform(5.0, 50.0)),
        arm_lag=float(rng.uniform(-0.08, 0.08)),
        bounce=float(rng.uniform(0.0, 0.03)),
        lean=float(rng.uniform(-3.0, 10.0)),
        sway=float(rng.uniform(0.0, 5.0)),
    )


def pose_at(gait: Gait, phase: float) -> Pose:
    """The body pose at a gait phase (in cycles; phase 0 has the near leg vertical, moving forward).

    The walk is periodic in `phase` with period 1, so the pose at a frame is
    ``pose_at(gait, phase0 + cadence_hz * t)``.
    """
    amp, two_pi = math.radians(gait.leg_amp), 2.0 * math.pi
    legs, shins = [], []
    for psi in (phase, phase + 0.5):
        thigh = amp * math.sin(two_pi * psi)
        # The knee bends while the leg swings forward (thigh angle rising).
        bend = gait.knee * amp * max(0.0, math.cos(two_pi * psi))
        legs.append(thigh)
        shins.append(thigh - bend)
    arm_amp, elbow = math.radians(gait.arm_amp), math.radians(gait.elbow)
    arms = [arm_amp * math.sin(two_pi * (psi + 0.5 - gait.arm_lag)) for psi in (phase, phase + 0.5)]
    bob = gait.bounce * 0.5 * (1.0 + math.cos(2.0 * two_pi * phase))
    torso = math.radians(gait.lean + gait.sway * math.sin(2.0 * two_pi * phase))
    return Pose(
        legs=(legs[0], legs[1]),
        shins=(shins[0], shins[1]),
        arms=(arms[0], arms[1]),
        forearms=(arms[0] + elbow, arms[1] + elbow),
        lift=bob,
        torso=torso,
    )


def _hip_height(pose: Pose) -> float:
    """Hip height that puts the lower foot on the ground, plus the gait's bob."""
    reach = max(
        _THIGH * math.cos(t) + _SHIN * math.cos(s)
        for t, s in zip(pose.legs, pose.shins, strict=True)
    )
    return reach + pose.lift


def figure_extent(appearance: Appearance) -> tuple[float, float]:
    """(half width, height) of a box around the figure in any pose, in pixels per unit height.

    Used to place and crop figures: the swinging limbs and the bag stay within
    ``x in [-half_width, half_width]`` of the hip and the head within ``height`` of the ground.
    """
    return 0.36 * appearance.height, 1.0 * appearance.height + 0.04


class _Canvas:
    """Maps figure units to fixed-point pixels for one figure on one image."""

    def __init__(self, image: np.ndarray, foot: tuple[float, float], pixels: float, facing: int):
        # Python floats: `round` on numpy scalars is several times slower, and this is the hot path.
        self.image, self.fx, self.fy = image, float(foot[0]), float(foot[1])
        self.px, self.facing = float(pixels), facing

    def pt(self, x: float, y: float) -> tuple[int, int]:
        return (
            round((self.fx + self.facing * x * self.px) * _SCALE),
            round((self.fy - y * self.px) * _SCALE),
        )

    def width(self, w: float) -> int:
        return max(1, round(w * self.px))

    def line(self, a, b, colour: BGR, w: float) -> None:
        cv2.line(self.image, self.pt(*a), self.pt(*b), colour, self.width(w), cv2.LINE_AA, _SHIFT)

    def disc(self, c, r: float, colour: BGR) -> None:
        radius = max(1, round(r * self.px * _SCALE))
        cv2.circle(self.image, self.pt(*c), radius, colour, -1, cv2.LINE_AA, _SHIFT)

    def poly(self, points, colour: BGR) -> None:
        pts = np.array([self.pt(*p) for p in points], np.int32)
        cv2.fillConvexPoly(self.image, pts, colour, cv2.LINE_AA, _SHIFT)


def _shade(colour: BGR, factor: float) -> BGR:
    return tuple(int(c * factor) for c in colour)  # type: ignore[return-value]


def _limb(origin, angle: float, length: float) -> tuple[float, float]:
    return origin[0] + length * math.sin(angle), origin[1] - length * math.cos(angle)


def _draw_leg(cv: _Canvas, a: Appearance, hip, thigh: float, shin: float, shade: float) -> None:
    knee = _limb(hip, thigh, _THIGH)
    ankle = _limb(knee, shin, _SHIN)
    w = _LEG_W * a.build
    upper = _shade(a.skin if a.bottom_style == "skirt" else a.bottom, shade)
    lower = _shade(a.bottom if a.bottom_style == "trousers" else a.skin, shade)
    cv.line(hip, knee, upper, w)
    cv.line(knee, ankle, lower, w * 0.9)
    cv.line(ankle, (ankle[0] + _FOOT, ankle[1]), _shade(a.shoes, shade), w * 0.7)


def _draw_arm(cv: _Canvas, a: Appearance, shoulder, arm: float, fore: float, shade: float) -> None:
    elbow = _limb(shoulder, arm, _UPPER_ARM)
    hand = _limb(elbow, fore, _FOREARM)
    w = _ARM_W * a.build
    sleeve = a.pattern if a.top_pattern == "jacket" else a.top
    cv.line(shoulder, elbow, _shade(sleeve, shade), w)
    cv.line(elbow, hand, _shade(sleeve if a.long_sleeves else a.skin, shade), w * 0.9)
    cv.disc(hand, w * 0.55, _shade(a.skin, shade))


def _torso_quad(hip, shoulder, w: float, t0: float, t1: float):
    """Corners (back-bottom, front-bottom, front-top, back-top) of the torso band t0..t1."""
    bx, by = hip[0] + (shoulder[0] - hip[0]) * t0, hip[1] + (shoulder[1] - hip[1]) * t0
    tx, ty = hip[0] + (shoulder[0] - hip[0]) * t1, hip[1] + (shoulder[1] - hip[1]) * t1
    wb, wt = w * (0.88 + 0.12 * t0), w * (0.88 + 0.12 * t1)
    return [(bx - wb / 2, by), (bx + wb / 2, by), (tx + wt / 2, ty), (tx - wt / 2, ty)]


def _draw_torso(cv: _Canvas, a: Appearance, hip, shoulder) -> None:
    w = _TORSO_W * a.build
    cv.poly(_torso_quad(hip, shoulder, w, 0.0, 1.0), a.top)
    if a.top_pattern == "stripes":
        for k in range(3):
            cv.poly(_torso_quad(hip, shoulder, w, 0.12 + 0.28 * k, 0.24 + 0.28 * k), a.pattern)
    elif a.top_pattern == "jacket":
        back = _torso_quad(hip, shoulder, w, 0.0, 1.0)
        mid_b = ((back[0][0] + back[1][0]) / 2 + 0.01, back[0][1])
        mid_t = ((back[2][0] + back[3][0]) / 2 + 0.01, back[2][1])
        cv.poly([back[0], mid_b, mid_t, back[3]], a.pattern)
    elif a.top_pattern == "emblem":
        cx = hip[0] + (shoulder[0] - hip[0]) * 0.7 + w * 0.25
        cy = hip[1] + (shoulder[1] - hip[1]) * 0.7
        cv.disc((cx, cy), w * 0.22, a.pattern)
    if a.bottom_style == "skirt":
        skirt_w = w * 1.5
        cv.poly(
            [
                (hip[0] - skirt_w / 2, hip[1] - 0.2),
                (hip[0] + skirt_w / 2, hip[1] - 0.2),
                (hip[0] + w / 2, hip[1] + 0.02),
                (hip[0] - w / 2, hip[1] + 0.02),
            ],
            a.bottom,
        )


def _draw_bag(cv: _Canvas, a: Appearance, hip, shoulder) -> None:
    w = _TORSO_W * a.build
    if a.bag == "backpack":
        quad = _torso_quad(hip, shoulder, w, 0.3, 0.9)
        back_b, back_t = quad[0], quad[3]
        depth = 0.07 * a.build
        cv.poly(
            [back_b, (back_b[0] - depth, back_b[1]), (back_t[0] - depth, back_t[1]), back_t],
            a.bag_colour,
        )
    elif a.bag == "side_bag":
        cx, cy = hip[0] - w * 0.35, hip[1] + 0.03
        cv.poly(
            [(cx - 0.05, cy - 0.06), (cx + 0.05, cy - 0.06), (cx + 0.05, cy + 0.05),
             (cx - 0.05, cy + 0.05)],
            a.bag_colour,
        )  # fmt: skip
        cv.line((cx, cy + 0.05), shoulder, _shade(a.bag_colour, 0.8), 0.015)


def _draw_head(cv: _Canvas, a: Appearance, shoulder, torso: float) -> None:
    neck = _limb(shoulder, math.pi - torso, _NECK_Y - _SHOULDER_Y)
    head = (neck[0] + 0.01, neck[1] + _HEAD_R * 0.95)
    cv.line(shoulder, neck, a.skin, 0.045)
    if a.hair_style == "long":
        cv.poly(
            [(head[0] - _HEAD_R * 1.05, head[1]), (head[0] + 0.01, head[1] + _HEAD_R),
             (head[0] - _HEAD_R * 0.4, neck[1] - 0.09), (head[0] - _HEAD_R * 1.15, neck[1] - 0.07)],
            a.hair,
        )  # fmt: skip
    cv.disc(head, _HEAD_R, a.skin)
    if a.hair_style in ("short", "long"):
        cv.poly(
            [(head[0] - _HEAD_R, head[1] - 0.01), (head[0] - _HEAD_R * 0.6, head[1] + _HEAD_R),
             (head[0] + _HEAD_R * 0.5, head[1] + _HEAD_R * 1.02),
             (head[0] + _HEAD_R * 0.9, head[1] + _HEAD_R * 0.4)],
            a.hair,
        )  # fmt: skip
    elif a.hair_style == "cap":
        top = head[1] + _HEAD_R * 0.35
        cv.poly(
            [(head[0] - _HEAD_R, top), (head[0] + _HEAD_R * 1.7, top),
             (head[0] + _HEAD_R * 0.7, head[1] + _HEAD_R * 1.05),
             (head[0] - _HEAD_R * 0.7, head[1] + _HEAD_R * 1.05)],
            a.hair,
        )  # fmt: skip


def draw_figure(
    image: np.ndarray,
    appearance: Appearance,
    pose: Pose,
    *,
    foot: tuple[float, float],
    pixels: float,
    facing: int = 1,
) -> None:
    """Draws a person into `image` in place.

    Args:
        image: (H, W, 3) uint8 BGR canvas; parts outside it are clipped.
        appearance: The person's look.
        pose: The body pose (see `pose_at`).
        foot: (x, y) pixel of the ground point under the hip.
        pixels: Pixels per unit height of the tallest person (the figure is `appearance.height`
            of that).
        facing: +1 walks to the right, -1 to the left.
    """
    if facing not in (1, -1):
        raise ValueError(f"facing: expected +1 or -1, got {facing!r}")
    cv = _Canvas(image, foot, pixels * appearance.height, facing)
    hip = (0.0, _hip_height(pose))
    shoulder = _limb(hip, math.pi - pose.torso, _SHOULDER_Y - 0.47)
    arm_root = (shoulder[0], shoulder[1] - 0.02)
    _draw_arm(cv, appearance, arm_root, pose.arms[1], pose.forearms[1], _FAR_SHADE)
    _draw_leg(cv, appearance, hip, pose.legs[1], pose.shins[1], _FAR_SHADE)
    if appearance.bag == "side_bag":
        _draw_bag(cv, appearance, hip, shoulder)
    _draw_leg(cv, appearance, hip, pose.legs[0], pose.shins[0], 1.0)
    _draw_torso(cv, appearance, hip, shoulder)
    if appearance.bag == "backpack":
        _draw_bag(cv, appearance, hip, shoulder)
    _draw_head(cv, appearance, shoulder, pose.torso)
    _draw_arm(cv, appearance, arm_root, pose.arms[0], pose.forearms[0], 1.0)

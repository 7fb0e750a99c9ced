"""Multi-camera scenes: people walk along a corridor past several cameras, with ground truth.

The world is one straight route (metres). Camera c sees the stretch
``[c * spacing, c * spacing + view_m]`` with ``spacing = view_m * (1 - overlap)``, so a positive
`overlap` makes neighbouring views share a stretch and a negative one leaves a blind gap::

    route  -|=========== cam1 ===========|--gap--|=========== cam2 ===========|--gap--|== cam3 ..
    people  >>> enter at one end at a random time, walk at stride * cadence, leave at the other

Every person keeps a lane (depth across the corridor): far lanes are drawn higher and smaller.
Odd cameras look from the other side of the corridor, so there a walker moves the other way on
screen and lanes swap. Each camera has its own background, clutter, colour cast, blur and noise
(backdrop.py), and the people are the same walkers as in the MARS-format dataset (figure.py), so
a model trained on `generate_mars` crops meets the same people here.

Ground truth per camera and time step: (global id, tight box xyxy clipped to the frame, visible
fraction). The visible fraction is the share of the person's drawn pixels that are inside the
frame and not covered by someone nearer, counted on a label map drawn in the same depth order.

Output is deterministic for a seed, and `SyntheticScene.render(index)` gives the same step as
iterating `frames()` up to it (each camera frame's noise is seeded by (seed, camera, index)).

Hand-written: no library simulates walkers across camera views; drawing and video I/O are `cv2`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from trainers.synthetic.backdrop import CameraStyle, background, sample_camera_style
from trainers.synthetic.figure import Appearance, draw_figure, pose_at
from trainers.synthetic.identities import Identity, identity_to_dict, plan_groups

__all__ = ["PersonBox", "SceneFiles", "SceneStep", "SyntheticScene", "write_scene"]

_MARGIN_M = 1.0  # people appear this far before the route's first view and leave as far after it
_LEG_M = 0.9  # leg length of a person of height 1 in metres, for the stride length
_NOISE_BANK = 6  # precomputed noise frames per camera (the noise of a frame is picked at random)
_MASK_COLOURS = ("skin", "hair", "top", "pattern", "bottom", "shoes", "bag_colour")


@dataclass(frozen=True)
class PersonBox:
    """One person's ground truth in one camera frame.

    Attributes:
        global_id: The person's id, the same in every camera (1-based).
        xyxy: Tight box (x1, y1, x2, y2) around the drawn pixels, clipped to the frame; x2, y2
            exclusive.
        visible: Fraction of the person's pixels that are in the frame and not occluded, in (0, 1].
    """

    global_id: int
    xyxy: tuple[float, float, float, float]
    visible: float


@dataclass(frozen=True)
class SceneStep:
    """All cameras at one time step.

    Attributes:
        index: Frame number, 0-based.
        time_s: ``index / fps``.
        images: One (H, W, 3) uint8 BGR frame per camera, in `SyntheticScene.camera_ids` order.
        truth: Per camera, the people visible in that frame.
    """

    index: int
    time_s: float
    images: tuple[np.ndarray, ...]
    truth: tuple[tuple[PersonBox, ...], ...]


@dataclass(frozen=True)
class _Walker:
    identity: Identity
    start_s: float  # time the walker enters
    direction: int  # +1 walks towards the route's end, -1 towards its start
    speed: float  # metres per second
    lane: float  # 0 near side .. 1 far side (seen from even cameras)
    phase0: float


@dataclass(frozen=True)
class _Camera:
    style: CameraStyle
    start_m: float
    mirrored: bool
    near: tuple[float, float]  # (foot y, pixels per unit height) of lane 0
    far: tuple[float, float]  # the same for lane 1
    lut: np.ndarray  # (256, 1, 3) uint8: gain and brightness
    noise: np.ndarray  # (_NOISE_BANK, 2, H, W, 3) uint8: positive and negative noise parts
    background: np.ndarray


@dataclass(frozen=True)
class SceneFiles:
    """Files written by `write_scene`, by camera id.

    Attributes:
        videos: ``<out>/<camera>.mp4`` (mp4v).
        ground_truth: ``<out>/<camera>/gt/gt.txt`` in the MOT16 format.
        description: ``<out>/scene.json``: cameras, identities and options.
    """

    videos: dict[str, Path]
    ground_truth: dict[str, Path]
    description: Path


class SyntheticScene:
    """People walking past `num_cameras` cameras along a corridor; frames plus ground truth.

    Example::

        scene = SyntheticScene(num_cameras=3, num_people=10, duration_s=60, seed=0)
        for step in scene.frames():
            for camera_id, image, boxes in zip(scene.camera_ids, step.images, step.truth):
                ...  # boxes: PersonBox(global_id, xyxy, visible)

    Args:
        num_cameras: Cameras along the route, ids ``cam1``, ``cam2``, ...
        num_people: People, global ids 1..num_people; each walks the whole route once.
        size: (H, W) of every camera frame.
        fps: Frames per second.
        duration_s: Scene length; must leave every person time to cross two camera views.
        seed: Everything is a function of it.
        overlap: Fraction of a view shared with the next camera's view, in (-1, 0.9]; negative
            values leave a blind gap of that fraction of a view between them.
        view_m: Length of route one camera sees, in metres.
        twin_fraction: Fraction of people that come in look-alike pairs differing only in gait
            cadence (harder matching).
    """

    def __init__(
        self,
        *,
        num_cameras: int = 3,
        num_people: int = 10,
        size: tuple[int, int] = (360, 640),
        fps: float = 15.0,
        duration_s: float = 60.0,
        seed: int = 0,
        overlap: float = -0.25,
        view_m: float = 8.0,
        twin_fraction: float = 0.0,
    ) -> None:
        if num_cameras < 2 or num_people < 1:
            raise ValueError(
                f"num_cameras, num_people: expected >= 2 and >= 1, got {num_cameras}, {num_people}"
            )
        if not -1.0 < overlap <= 0.9:
            raise ValueError(f"overlap: expected a fraction in (-1, 0.9], got {overlap}")
        if fps <= 0 or duration_s <= 0 or view_m <= 0:
            raise ValueError(
                f"fps, duration_s, view_m: expected > 0, got {fps}, {duration_s}, {view_m}"
            )
        self.size, self.fps, self.duration_s, self.seed = size, float(fps), float(duration_s), seed
        self.options = dict(num_cameras=num_cameras, num_people=num_people, overlap=overlap,
                            view_m=view_m, twin_fraction=twin_fraction)  # fmt: skip
        self.camera_ids = tuple(f"cam{c + 1}" for c in range(num_cameras))
        self.num_frames = math.floor(self.duration_s * self.fps)
        rng = np.random.default_rng([seed, 3])
        self.view_m, self.spacing = view_m, view_m * (1.0 - overlap)
        self.length_m = self.spacing * (num_cameras - 1) + view_m
        self._cameras = tuple(self._make_camera(c, rng) for c in range(num_cameras))
        pairs = round(num_people * twin_fraction / 2)
        sizes = [int(s) for s in rng.permutation([2] * pairs + [1] * (num_people - 2 * pairs))]
        people = plan_groups(list(range(1, num_people + 1)), group_sizes=sizes, rng=rng)
        self.identities = tuple(people)
        self._walkers = tuple(self._make_walker(p, rng) for p in people)

    def _make_camera(self, c: int, rng: np.random.Generator) -> _Camera:
        h, w = self.size
        style = sample_camera_style(rng)
        near_px = h * rng.uniform(0.5, 0.62)
        far_px = near_px * rng.uniform(0.5, 0.65)
        far_foot = max(h * (style.horizon + 0.1), far_px * 1.05)
        near_foot = h * rng.uniform(0.93, 0.98)
        levels = np.clip(np.arange(256, dtype=np.float32)[:, None] * np.asarray(style.gain)
                         + style.brightness, 0, 255)  # fmt: skip
        noise = rng.standard_normal((_NOISE_BANK, h, w, 3), dtype=np.float32) * style.noise
        bank = np.stack([np.clip(noise, 0, 255), np.clip(-noise, 0, 255)], axis=1)
        return _Camera(
            style=style,
            start_m=c * self.spacing,
            mirrored=c % 2 == 1,
            near=(near_foot, near_px),
            far=(far_foot, far_px),
            lut=levels.astype(np.uint8).reshape(256, 1, 3),
            noise=np.round(bank).astype(np.uint8),
            background=background(self.size, style, rng, clutter=round(10 * w / h)),
        )

    def _make_walker(self, identity: Identity, rng: np.random.Generator) -> _Walker:
        gait = identity.gait
        stride = 4.0 * _LEG_M * identity.appearance.height * math.sin(math.radians(gait.leg_amp))
        speed = stride * gait.cadence_hz
        # Time from entering until leaving the second camera view on the way.
        needed = (_MARGIN_M + self.spacing + self.view_m + 0.5) / speed
        if needed > self.duration_s:
            raise ValueError(
                f"duration_s: {self.duration_s} s is too short; person {identity.pid} walks "
                f"{speed:.2f} m/s and needs {needed:.1f} s to cross two camera views"
            )
        return _Walker(
            identity=identity,
            start_s=float(rng.uniform(0.0, self.duration_s - needed)),
            direction=1 if rng.random() < 0.5 else -1,
            speed=speed,
            lane=float(rng.uniform(0.0, 1.0)),
            phase0=float(rng.random()),
        )

    def frames(self) -> Iterator[SceneStep]:
        """Yields every time step in order (`num_frames` steps)."""
        for index in range(self.num_frames):
            yield self.render(index)

    def render(self, index: int) -> SceneStep:
        """Renders time step `index` of every camera."""
        if not 0 <= index < self.num_frames:
            raise IndexError(f"index: expected 0..{self.num_frames - 1}, got {index}")
        t = index / self.fps
        images, truth = [], []
        for c, camera in enumerate(self._cameras):
            image, boxes = self._render_camera(camera, t)
            rng = np.random.default_rng([self.seed, 4, c, index])
            images.append(_finish(image, camera, rng))
            truth.append(boxes)
        return SceneStep(index, t, tuple(images), tuple(truth))

    def _placements(self, camera: _Camera, t: float) -> list[tuple[float, _Walker, tuple]]:
        """(lane, walker, draw arguments) of everyone who may be in this camera's view."""
        w = self.size[1]
        out = []
        for walker in self._walkers:
            travelled = walker.speed * (t - walker.start_s)
            if travelled < 0 or travelled > self.length_m + 2 * _MARGIN_M:
                continue
            start = -_MARGIN_M if walker.direction > 0 else self.length_m + _MARGIN_M
            s = (start + walker.direction * travelled - camera.start_m) / self.view_m
            lane = 1.0 - walker.lane if camera.mirrored else walker.lane
            foot_y = camera.near[0] + (camera.far[0] - camera.near[0]) * lane
            pixels = camera.near[1] + (camera.far[1] - camera.near[1]) * lane
            x = (1.0 - s if camera.mirrored else s) * w
            if not -0.5 * pixels < x < w + 0.5 * pixels:
                continue
            facing = walker.direction * (-1 if camera.mirrored else 1)
            phase = walker.phase0 + walker.identity.gait.cadence_hz * t
            out.append((lane, walker, ((x, foot_y), pixels, facing, phase)))
        return sorted(out, key=lambda item: -item[0])  # far lanes first

    def _render_camera(self, camera: _Camera, t: float) -> tuple[np.ndarray, tuple[PersonBox, ...]]:
        h, w = self.size
        image = camera.background.copy()
        labels = np.zeros((h, w), np.int32)
        masks = []
        for k, (_, walker, (foot, pixels, facing, phase)) in enumerate(self._placements(camera, t)):
            person = walker.identity
            pose = pose_at(person.gait, phase)
            draw_figure(image, person.appearance, pose, foot=foot, pixels=pixels, facing=facing)
            mask, (x0, y0) = _person_mask(person.appearance, pose, foot, pixels, facing)
            region = _paste_region(mask.shape, x0, y0, w, h)
            if region is not None:
                (fy, fx), (my, mx) = region
                labels[fy, fx][mask[my, mx]] = k + 1
            masks.append((person.pid, mask, x0, y0))
        boxes = (_truth_box(pid, labels, k + 1, mask, x0, y0) for k, (pid, mask, x0, y0)
                 in enumerate(masks))  # fmt: skip
        return image, tuple(sorted((b for b in boxes if b), key=lambda b: b.global_id))

    def description(self) -> dict:
        """JSON-ready options, cameras and identities of the scene."""
        return {
            "seed": self.seed,
            "size": list(self.size),
            "fps": self.fps,
            "duration_s": self.duration_s,
            **self.options,
            "camera_ids": list(self.camera_ids),
            "cameras": [dataclasses.asdict(c.style) for c in self._cameras],
            "identities": [identity_to_dict(p) for p in self.identities],
        }


def _finish(image: np.ndarray, camera: _Camera, rng: np.random.Generator) -> np.ndarray:
    """The camera's colour cast, blur and noise: `backdrop.apply_camera` on uint8 with a LUT and
    a bank of precomputed noise frames, about 10x faster on full frames."""
    out = cv2.LUT(image, camera.lut)
    if camera.style.blur:
        out = cv2.GaussianBlur(out, (3, 3), 0.8)
    positive, negative = camera.noise[int(rng.integers(_NOISE_BANK))]
    return cv2.subtract(cv2.add(out, positive), negative)


def _person_mask(appearance: Appearance, pose, foot, pixels: float, facing: int):
    """The person's drawn pixels on a local canvas: (mask (h, w) bool, (x0, y0) of its corner)."""
    scale = pixels * appearance.height
    x0, y0 = math.floor(foot[0] - 0.55 * scale) - 2, math.floor(foot[1] - 1.1 * scale) - 2
    shape = (math.ceil(1.2 * scale) + 5, math.ceil(1.1 * scale) + 5)
    canvas = np.zeros((*shape, 3), np.uint8)
    white = dataclasses.replace(appearance, **dict.fromkeys(_MASK_COLOURS, (255, 255, 255)))
    draw_figure(canvas, white, pose, foot=(foot[0] - x0, foot[1] - y0), pixels=pixels,
                facing=facing)  # fmt: skip
    return canvas.max(axis=2) > 64, (x0, y0)


def _paste_region(shape: tuple[int, int], x0: int, y0: int, w: int, h: int):
    """((frame rows, frame cols), (mask rows, mask cols)) slices of the overlap, or None."""
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + shape[1], w), min(y0 + shape[0], h)
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    return (
        (slice(fy0, fy1), slice(fx0, fx1)),
        (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0)),
    )


def _truth_box(pid: int, labels: np.ndarray, label: int, mask: np.ndarray, x0: int, y0: int):
    """A `PersonBox` around the person's in-frame pixels, or None where none is visible."""
    h, w = labels.shape
    region = _paste_region(mask.shape, x0, y0, w, h)
    area = int(mask.sum())
    if region is None or area == 0:
        return None
    (fy, fx), (my, mx) = region
    visible = int((labels[fy, fx] == label).sum())
    inside = mask[my, mx]
    if visible == 0:
        return None
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    box = (fx.start + cols[0], fy.start + rows[0], fx.start + cols[-1] + 1, fy.start + rows[-1] + 1)
    return PersonBox(pid, tuple(float(v) for v in box), visible / area)


def write_scene(scene: SyntheticScene, out_dir: str | Path, *, codec: str = "mp4v") -> SceneFiles:
    """Writes every camera as a video and its ground truth in the MOT16 text format.

    MOT16 ``gt.txt`` rows: ``frame, id, left, top, width, height, conf, class, visibility`` with
    1-based frames, conf 1 and class 1 (pedestrian); ids are the global ids, so the files of
    all cameras together also give the cross-camera truth. Each camera folder gets a
    ``seqinfo.ini`` as in the MOT benchmarks.

    Args:
        scene: The scene to write.
        out_dir: Output folder (created).
        codec: FourCC of `cv2.VideoWriter`.

    Returns:
        The paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    h, w = scene.size
    videos = {cam: out / f"{cam}.mp4" for cam in scene.camera_ids}
    truth = {cam: out / cam / "gt" / "gt.txt" for cam in scene.camera_ids}
    writers = {cam: cv2.VideoWriter(str(videos[cam]), cv2.VideoWriter_fourcc(*codec), scene.fps,
                                    (w, h)) for cam in scene.camera_ids}  # fmt: skip
    rows: dict[str, list[str]] = {cam: [] for cam in scene.camera_ids}
    try:
        for cam, writer in writers.items():
            if not writer.isOpened():
                raise OSError(f"cv2.VideoWriter cannot open {videos[cam]} with codec {codec!r}")
        for step in scene.frames():
            for cam, image, boxes in zip(scene.camera_ids, step.images, step.truth, strict=True):
                writers[cam].write(image)
                rows[cam].extend(_mot_row(step.index + 1, box) for box in boxes)
    finally:
        for writer in writers.values():
            writer.release()
    for cam in scene.camera_ids:
        truth[cam].parent.mkdir(parents=True, exist_ok=True)
        truth[cam].write_text("".join(rows[cam]))
        (out / cam / "seqinfo.ini").write_text(
            f"[Sequence]\nname={cam}\nframeRate={scene.fps:g}\n"
            f"seqLength={scene.num_frames}\nimWidth={w}\nimHeight={h}\n"
        )
    description = out / "scene.json"
    description.write_text(json.dumps(scene.description(), indent=1, sort_keys=True) + "\n")
    return SceneFiles(videos=videos, ground_truth=truth, description=description)


def _mot_row(frame: int, box: PersonBox) -> str:
    x1, y1, x2, y2 = box.xyxy
    return f"{frame},{box.global_id},{x1:g},{y1:g},{x2 - x1:g},{y2 - y1:g},1,1,{box.visible:.4f}\n"

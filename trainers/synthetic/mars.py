"""A synthetic video ReID dataset written in the MARS on-disk format.

The tree is the one `create_dataset("mars", root)` reads (see `trainers.datasets.mars`):

    root/
      bbox_train/<pid4>/<pid4>C<cam>T<tttt>F<fff>.jpg   train ids 0001..N
      bbox_test/<pid4>/...                              test ids N+1..N+M, 0000 (distractors),
                                                        00-1 (junk)
      info/train_name.txt, test_name.txt                names, per-id folders in ASCII order
                                                        ("00-1" < "0000" < "0001"), CRLF lines
      info/tracks_train_info.mat, tracks_test_info.mat  int32 (N, 4) [start, end, pid, cam],
                                                        1-based inclusive rows of the name list
      info/query_IDX.mat                                (1, Q) 1-based rows of track_test_info
      synthetic.json                                    the generator's options and identities

Identities come in appearance groups (identities.py): with ``motion_only=False`` a fraction of
the ids are twins (same look, different cadence) and the rest look unique; with
``motion_only=True`` every id belongs to a group of `group_size` identical-looking people.
Every id is seen by 2 to 4 of the 6 cameras. Queries follow MARS: one tracklet per (test id,
camera); the other tracklets of that id in the query's camera are same-camera junk for the
protocol, those in other cameras its true matches.

Each tracklet is a tight detector-style crop of one walk past a camera:

    scrolling background strip (camera palette + clutter) -> figure at phase0 + cadence * t/fps
    -> per-tracklet scale, offset, lighting; per-frame +-1 px jitter -> camera cast, blur, noise

Output is byte-for-byte deterministic for a given `seed` (every tracklet draws from its own
`numpy` generator seeded by (seed, split, pid, tracklet)).
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from trainers.synthetic.backdrop import CameraStyle, apply_camera, background, sample_camera_style
from trainers.synthetic.figure import (
    draw_figure,
    figure_extent,
    pose_at,
    sample_appearance,
    sample_gait,
)
from trainers.synthetic.identities import (
    Identity,
    identity_from_dict,
    identity_to_dict,
    plan_groups,
)

__all__ = ["NUM_CAMERAS", "generate_mars", "read_identities", "render_tracklet"]

logger = logging.getLogger(__name__)

#: MARS has six cameras, numbered 1..6 in file names.
NUM_CAMERAS = 6
_MANIFEST = "synthetic.json"
_JUNK, _DISTRACTOR = -1, 0


@dataclass(frozen=True)
class _Track:
    """One tracklet to write: which person, camera and tracklet number, and how long."""

    pid: int  # -1 junk, 0 distractor, else the identity
    cam: int  # 1..6
    number: int  # the T of the file name, unique per pid
    length: int

    @property
    def folder(self) -> str:
        return "00-1" if self.pid == _JUNK else f"{self.pid:04d}"

    def name(self, frame: int) -> str:
        return f"{self.folder}C{self.cam}T{self.number:04d}F{frame + 1:03d}.jpg"


def render_tracklet(identity: Identity, style: CameraStyle, *, size: tuple[int, int],
                    num_frames: int, fps: float, rng: np.random.Generator,
                    visible: float = 1.0) -> np.ndarray:  # fmt: skip
    """Renders a tracklet: crops that follow one person walking past one camera.

    Args:
        identity: Who walks.
        style: The camera's look.
        size: (H, W) of each crop.
        num_frames: Number of frames T.
        fps: Frame rate; the gait phase advances by ``cadence_hz / fps`` per frame.
        rng: Source of every per-tracklet and per-frame choice.
        visible: Fraction of the person's width inside the crop; below 1 the figure is pushed
            off the side (the badly cropped "junk" detections of MARS).

    Returns:
        (T, H, W, 3) uint8 BGR frames.
    """
    h, w = size
    half_width, height = figure_extent(identity.appearance)
    pixels = rng.uniform(0.84, 0.95) * h / height  # tight crops: every person fills the height
    facing = 1 if rng.random() < 0.5 else -1
    cadence = identity.gait.cadence_hz * rng.uniform(0.96, 1.04)
    phase0 = rng.random()
    # The crop follows the walker, so the background scrolls against the walking direction at
    # the walking speed (about 1.4 heights per gait cycle).
    speed = 1.4 * identity.appearance.height * pixels * cadence / fps
    strip_w = int(w + speed * num_frames) + 2
    strip = background((h, strip_w), style, rng, clutter=1 + round(1.5 * strip_w / w))
    foot_x = w / 2 + rng.uniform(-0.06, 0.06) * w + (1.0 - visible) * 2 * half_width * pixels
    foot_y = h * (1.0 - rng.uniform(0.02, 0.06))
    light = rng.uniform(-12.0, 12.0)
    frames = np.empty((num_frames, h, w, 3), np.uint8)
    for t in range(num_frames):
        x0 = round(speed * t) if facing > 0 else round(speed * (num_frames - 1 - t))
        image = np.ascontiguousarray(strip[:, x0 : x0 + w])
        jitter = rng.uniform(-1.0, 1.0, size=3)
        pose = pose_at(identity.gait, phase0 + cadence * t / fps)
        draw_figure(image, identity.appearance, pose, foot=(foot_x + jitter[0], foot_y + jitter[1]),
                    pixels=pixels * (1.0 + 0.015 * jitter[2]), facing=facing)  # fmt: skip
        frames[t] = apply_camera(image, style, rng, brightness=light)
    return frames


def _camera_plan(rng: np.random.Generator, *, tracklets: int) -> list[int]:
    """Cameras (1-based) of an id's tracklets: 2 to 4 cameras, each with at least one."""
    count = int(rng.integers(2, min(4, tracklets) + 1))
    cams = sorted(int(c) + 1 for c in rng.choice(NUM_CAMERAS, size=count, replace=False))
    extra = [cams[int(i)] for i in rng.integers(count, size=tracklets - count)]
    return sorted(cams + extra)


def _tracks_for(pid: int, cams: list[int], lengths: np.ndarray) -> list[_Track]:
    return [
        _Track(pid, cam, k + 1, int(n))
        for k, (cam, n) in enumerate(zip(cams, lengths, strict=True))
    ]


def _lengths(rng: np.random.Generator, frames: int | tuple[int, int], n: int) -> np.ndarray:
    if isinstance(frames, int):
        return np.full(n, frames)
    return rng.integers(frames[0], frames[1] + 1, size=n)


def _group_sizes(n: int, *, size: int, rng: np.random.Generator, fraction: float) -> list[int]:
    """Group sizes covering n ids: all of `size` (motion-only) or twins for `fraction` of them."""
    if fraction >= 1.0:
        return [size] * (n // size) + ([n % size] if n % size else [])
    pairs = round(n * fraction / 2)
    sizes = [2] * pairs + [1] * (n - 2 * pairs)
    return [int(s) for s in rng.permutation(sizes)]


def _write_tracklet(folder: Path, track: _Track, frames: np.ndarray, quality: int) -> list[str]:
    person_dir = folder / track.folder
    person_dir.mkdir(parents=True, exist_ok=True)
    names = [track.name(t) for t in range(track.length)]
    for name, frame in zip(names, frames, strict=True):
        if not cv2.imwrite(str(person_dir / name), frame, [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise OSError(f"cv2.imwrite failed for {person_dir / name}")
    return names


def _write_split(root: Path, split: str, tracks: list[_Track], render, quality: int) -> np.ndarray:
    """Writes the images and the name list of one split; returns track_*_info (N, 4) int32."""
    tracks = sorted(tracks, key=lambda tr: (tr.folder, tr.cam, tr.number))
    rows, names = [], []
    for track in tracks:
        written = _write_tracklet(root / f"bbox_{split}", track, render(track), quality)
        rows.append([len(names) + 1, len(names) + len(written), track.pid, track.cam])
        names.extend(written)
    (root / "info" / f"{split}_name.txt").write_bytes("".join(n + "\r\n" for n in names).encode())
    return np.asarray(rows, np.int32).reshape(-1, 4)


def _savemat(path: Path, name: str, array: np.ndarray) -> None:
    """`scipy.io.savemat` (MAT v5) with a fixed header text instead of the creation time, so the
    same seed writes the same bytes (MAT readers ignore the 116-byte description)."""
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {name: array})
    data = bytearray(buffer.getvalue())
    data[:116] = b"MATLAB 5.0 MAT-file, written by trainers.synthetic".ljust(116)
    path.write_bytes(bytes(data))


def _query_rows(info: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1-based rows of one query per (pid, cam) for every real test id seen by >= 2 cameras."""
    queries = []
    for pid in np.unique(info[:, 2][info[:, 2] > 0]):
        rows = np.flatnonzero(info[:, 2] == pid)
        cams = np.unique(info[rows, 3])
        if len(cams) < 2:
            continue
        queries.extend(int(rng.choice(rows[info[rows, 3] == cam])) + 1 for cam in cams)
    dtype = np.uint16 if len(info) < 2**16 else np.uint32
    return np.asarray(sorted(queries), dtype).reshape(1, -1)


def _check(num_train_ids: int, num_test_ids: int, tracklets_per_id: int,
           frames: int | tuple[int, int], group_size: int) -> None:  # fmt: skip
    if num_train_ids < 1 or num_test_ids < 1 or num_train_ids + num_test_ids > 9999:
        raise ValueError(
            f"num_train_ids, num_test_ids: expected >= 1 each and <= 9999 together, got "
            f"{num_train_ids}, {num_test_ids}"
        )
    if tracklets_per_id < 2:
        raise ValueError(f"tracklets_per_id: expected >= 2 (two cameras), got {tracklets_per_id}")
    lo, hi = (frames, frames) if isinstance(frames, int) else frames
    if not 1 <= lo <= hi <= 999:
        raise ValueError(f"frames_per_tracklet: expected 1..999 (or lo <= hi), got {frames!r}")
    if group_size < 2:
        raise ValueError(f"group_size: expected >= 2, got {group_size}")


def _plan(pids: range, *, motion_only: bool, group_size: int, twin_fraction: float,
          rng: np.random.Generator, first_group: int) -> list[Identity]:  # fmt: skip
    sizes = _group_sizes(len(pids), size=group_size, rng=rng,
                         fraction=1.0 if motion_only else twin_fraction)  # fmt: skip
    return plan_groups(list(pids), group_sizes=sizes, rng=rng, first_group=first_group)


def _extra_tracks(pid: int, count: int, rng: np.random.Generator, frames) -> list[_Track]:
    """Distractor (pid 0) or junk (pid -1) tracklets, numbered 1..count, on random cameras."""
    cams = sorted(int(c) + 1 for c in rng.integers(NUM_CAMERAS, size=count))
    return _tracks_for(pid, cams, _lengths(rng, frames, count))


def _new_tree(root: Path) -> Path:
    """Creates ``root/info``; refuses a root that already holds a MARS tree."""
    if any((root / sub).exists() for sub in ("info", "bbox_train", "bbox_test")):
        raise FileExistsError(
            f"{root} already holds a MARS tree (info/ or bbox_*/); pick a new root"
        )
    (root / "info").mkdir(parents=True)
    return root


def _plan_identities(num_train: int, num_test: int, *, rng: np.random.Generator,
                     **options) -> tuple[list[Identity], list[Identity]]:  # fmt: skip
    """Train ids 1..num_train and the next num_test test ids, in appearance groups of their own."""
    train = _plan(range(1, num_train + 1), rng=rng, first_group=0, **options)
    test = _plan(range(num_train + 1, num_train + num_test + 1), rng=rng,
                 first_group=train[-1].group + 1, **options)  # fmt: skip
    return train, test


def _identity_tracks(identities: list[Identity], *, rng: np.random.Generator, per_id: int,
                     frames: int | tuple[int, int]) -> list[_Track]:  # fmt: skip
    """`per_id` tracklets of every identity, spread over 2 to 4 cameras."""
    out = []
    for identity in identities:
        cams = _camera_plan(rng, tracklets=per_id)
        out += _tracks_for(identity.pid, cams, _lengths(rng, frames, len(cams)))
    return out


def _odd_tracks(num_test_ids: int, distractors: int | None, junk: int | None,
                rng: np.random.Generator, frames) -> list[_Track]:  # fmt: skip
    """The test split's distractor and junk tracklets (defaults: a quarter and an eighth of the
    test ids, at least 1 each)."""
    distractors = max(1, num_test_ids // 4) if distractors is None else distractors
    junk = max(1, num_test_ids // 8) if junk is None else junk
    extra = _extra_tracks(_DISTRACTOR, distractors, rng, frames)
    return extra + _extra_tracks(_JUNK, junk, rng, frames)


@dataclass(frozen=True)
class _Renderer:
    """Renders a `_Track`'s frames from its own generator, seeded by (seed, pid, tracklet)."""

    seed: int
    people: dict[int, Identity]
    styles: list[CameraStyle]
    size: tuple[int, int]
    fps: float

    def __call__(self, track: _Track) -> np.ndarray:
        track_rng = np.random.default_rng([self.seed, 1, track.pid + 1, track.number])
        person = self.people.get(track.pid) or Identity(
            track.pid, sample_appearance(track_rng), sample_gait(track_rng), -1
        )
        visible = track_rng.uniform(0.15, 0.45) if track.pid == _JUNK else 1.0
        return render_tracklet(person, self.styles[track.cam - 1], size=self.size, fps=self.fps,
                               num_frames=track.length, rng=track_rng, visible=visible)  # fmt: skip


def _write_info(root: Path, info: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """Writes ``tracks_*_info.mat`` and ``query_IDX.mat`` (the queries drawn from `rng`)."""
    for split, table in info.items():
        _savemat(root / "info" / f"tracks_{split}_info.mat", f"track_{split}_info", table)
    queries = _query_rows(info["test"], rng)
    _savemat(root / "info" / "query_IDX.mat", "query_IDX", queries)
    logger.info(
        "wrote synthetic MARS tree %s: %d train + %d test tracklets, %d queries",
        root, len(info["train"]), len(info["test"]), queries.shape[1],
    )  # fmt: skip


def _write_manifest(root: Path, manifest: dict, styles: list[CameraStyle],
                    identities: list[Identity]) -> None:  # fmt: skip
    """``synthetic.json``: the generator's options, the cameras and every identity."""
    manifest = {
        **manifest,
        "cameras": [asdict(style) for style in styles],
        "identities": [identity_to_dict(identity) for identity in identities],
    }
    (root / _MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def generate_mars(
    root: str | Path,
    *,
    num_train_ids: int = 40,
    num_test_ids: int = 40,
    tracklets_per_id: int = 8,
    frames_per_tracklet: int | tuple[int, int] = 16,
    size: tuple[int, int] = (128, 64),
    fps: float = 10.0,
    motion_only: bool = False,
    group_size: int = 2,
    twin_fraction: float = 0.25,
    num_distractors: int | None = None,
    num_junk: int | None = None,
    seed: int = 0,
    jpeg_quality: int = 90,
) -> Path:
    """Writes a synthetic video ReID dataset in the MARS format under `root`.

    Args:
        root: Folder to write into (created; must not already hold a MARS tree). Pass it to
            ``create_dataset("mars", root)``.
        num_train_ids: Train identities, ids 0001..num_train_ids.
        num_test_ids: Test identities, the next ids; disjoint from train.
        tracklets_per_id: Tracklets per identity, spread over 2-4 cameras (>= 2).
        frames_per_tracklet: Frames per tracklet, or an inclusive (min, max) range.
        size: (H, W) of every crop.
        fps: Frame rate of the tracklets; sets how far the gait advances per frame.
        motion_only: Every id belongs to a group of `group_size` identical-looking people that
            differ only in cadence (a temporal model's benchmark); otherwise only
            `twin_fraction` of the ids come in such pairs.
        group_size: Members per group when `motion_only`.
        twin_fraction: Fraction of ids in appearance-twin pairs when not `motion_only`.
        num_distractors: Test tracklets of random one-off people under pid 0000 (default:
            a quarter of `num_test_ids`).
        num_junk: Badly cropped test tracklets under pid 00-1 (default: an eighth, at least 1).
        seed: Everything is a function of it; the same seed writes the same bytes.
        jpeg_quality: `cv2.IMWRITE_JPEG_QUALITY` of the frames.

    Returns:
        `root`, as a `Path`.
    """
    _check(num_train_ids, num_test_ids, tracklets_per_id, frames_per_tracklet, group_size)
    root = _new_tree(Path(root))
    rng = np.random.default_rng([seed, 0])
    styles = [sample_camera_style(rng) for _ in range(NUM_CAMERAS)]
    options = dict(motion_only=motion_only, group_size=group_size, twin_fraction=twin_fraction)
    train, test = _plan_identities(num_train_ids, num_test_ids, rng=rng, **options)
    extra = _odd_tracks(num_test_ids, num_distractors, num_junk, rng, frames_per_tracklet)
    render = _Renderer(seed, {i.pid: i for i in train + test}, styles, size=size, fps=fps)
    tracks = partial(_identity_tracks, rng=rng, per_id=tracklets_per_id, frames=frames_per_tracklet)
    info = {  # train's tracks, test's, then the queries draw from `rng`: same seed, same bytes
        "train": _write_split(root, "train", tracks(train), render, jpeg_quality),
        "test": _write_split(root, "test", tracks(test) + extra, render, jpeg_quality),
    }
    manifest = dict(format="mars", seed=seed, size=list(size), fps=fps, num_train_ids=num_train_ids,
                    num_test_ids=num_test_ids, **options)  # fmt: skip
    _write_manifest(root, manifest, styles, train + test)
    _write_info(root, info, rng)
    return root


def read_identities(root: str | Path) -> dict[int, Identity]:
    """The identities `generate_mars` wrote under `root`, by pid (train and test).

    Raises:
        FileNotFoundError: `root` holds no ``synthetic.json``.
    """
    path = Path(root) / _MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a synthetic tree (no {_MANIFEST}); expected the "
                                "root passed to generate_mars")  # fmt: skip
    data = json.loads(path.read_text())
    return {int(d["pid"]): identity_from_dict(d) for d in data["identities"]}

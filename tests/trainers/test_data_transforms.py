"""Clip transforms: one decision per clip, the normalisation formula, resizing, decoding."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from reid_models.c3d import C3D_MEAN_RGB, C3D_STD
from reid_models.pretrained import IMAGENET_MEAN, IMAGENET_STD, PretrainedCfg
from trainers.data import ClipTransform, read_frames

CFG = PretrainedCfg(paper="test", input_size=(3, 16, 8))


def _frames(t: int = 4, h: int = 16, w: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def _to_pixels(clip: torch.Tensor, transform: ClipTransform) -> np.ndarray:
    mean = torch.tensor(transform.mean).view(3, 1, 1, 1)
    std = torch.tensor(transform.std).view(3, 1, 1, 1)
    return ((clip * std + mean) * 255).round().permute(1, 2, 3, 0).numpy().astype(np.int64)


@pytest.mark.parametrize("seed", range(12))
def test_identical_frames_stay_identical_under_every_augmentation(seed: int) -> None:
    transform = ClipTransform.from_cfg(CFG, train=True, flip=0.5, random_erasing=1.0, pad=3)
    frames = np.repeat(_frames(t=1, seed=seed), 6, axis=0)
    clip = transform(frames, np.random.default_rng(seed))
    assert clip.shape == (3, 6, 16, 8) and clip.dtype == torch.float32
    for t in range(1, 6):
        assert torch.equal(clip[:, t], clip[:, 0])


def test_augmentations_do_change_the_clip() -> None:
    transform = ClipTransform.from_cfg(CFG, train=True, flip=0.5, random_erasing=0.5, pad=3)
    frames = _frames()
    plain = ClipTransform.from_cfg(CFG, train=False)(frames)
    outs = [transform(frames, np.random.default_rng(s)) for s in range(10)]
    assert sum(not torch.equal(o, plain) for o in outs) >= 8


def test_flip_mirrors_every_frame() -> None:
    transform = ClipTransform.from_cfg(CFG, train=True, flip=1.0, pad=0)
    frames = _frames()
    got = _to_pixels(transform(frames, np.random.default_rng(0)), transform)
    assert np.array_equal(got, frames[:, :, ::-1])


@pytest.mark.parametrize("pad", [2, 10])  # 10 > the frame's width of 8
def test_pad_crop_is_one_shift_of_the_zero_padded_clip(pad: int) -> None:
    transform = ClipTransform.from_cfg(CFG, train=True, flip=0.0, pad=pad)
    frames = _frames(seed=4)
    padded = np.pad(frames, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    for seed in range(6):
        got = _to_pixels(transform(frames, np.random.default_rng(seed)), transform)
        crops = [
            padded[:, y : y + 16, x : x + 8] for y in range(2 * pad + 1) for x in range(2 * pad + 1)
        ]
        assert any(np.array_equal(got, crop) for crop in crops)


def test_random_erasing_zeroes_one_rectangle_in_every_frame() -> None:
    transform = ClipTransform.from_cfg(CFG, train=True, flip=0.0, pad=0, random_erasing=1.0)
    clip = transform(_frames(), np.random.default_rng(1))
    zero = (clip == 0).all(dim=0)  # (T, H, W): erased where every channel is 0
    assert zero.any()
    for t in range(1, 4):
        assert torch.equal(zero[t], zero[0])
    ys, xs = torch.nonzero(zero[0], as_tuple=True)
    box = zero[0][ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    assert bool(box.all())


def test_imagenet_normalisation_by_hand() -> None:
    frames = np.zeros((1, 16, 8, 3), dtype=np.uint8)
    frames[..., 0], frames[..., 1], frames[..., 2] = 255, 0, 128
    clip = ClipTransform.from_cfg(CFG, train=False)(frames)
    expected = [
        (1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0],
        (0.0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1],
        (128 / 255 - IMAGENET_MEAN[2]) / IMAGENET_STD[2],
    ]
    for c in range(3):
        assert torch.allclose(clip[c], torch.full((1, 16, 8), expected[c]), atol=1e-5)


def test_c3d_normalisation_is_mean_subtraction_on_0_255_pixels() -> None:
    cfg = CFG.with_changes(mean=C3D_MEAN_RGB, std=C3D_STD)
    frames = np.full((2, 16, 8, 3), 200, dtype=np.uint8)
    clip = ClipTransform.from_cfg(cfg, train=False)(frames)
    for c, mean in enumerate((101.4083, 97.6570, 90.2516)):
        assert torch.allclose(clip[c], torch.full((2, 16, 8), 200 - mean), atol=1e-3)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_resize_uses_the_cfg_filter(interpolation: str) -> None:
    cfg = CFG.with_changes(interpolation=interpolation)
    transform = ClipTransform.from_cfg(cfg, train=False)
    frames = _frames(t=2, h=32, w=20, seed=5)
    got = _to_pixels(transform(frames), transform)
    flag = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}[interpolation]
    expected = np.stack([cv2.resize(f, (8, 16), interpolation=flag) for f in frames])
    assert np.array_equal(got, expected)


def test_test_transform_is_deterministic_and_needs_no_rng() -> None:
    transform = ClipTransform.from_cfg(CFG, train=False, flip=1.0, random_erasing=1.0)
    frames = _frames()
    assert torch.equal(transform(frames), transform(frames))
    assert np.array_equal(_to_pixels(transform(frames), transform), frames)


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"interpolation": "nearest"}, "bilinear"), ({"flip": 1.5}, "flip"), ({"pad": -1}, "pad")],
)
def test_bad_options_raise(kw: dict, match: str) -> None:
    base = {"size": (16, 8), "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    with pytest.raises(ValueError, match=match):
        ClipTransform(**base, **kw)


def test_bad_frames_raise() -> None:
    with pytest.raises(ValueError, match="uint8"):
        ClipTransform.from_cfg(CFG, train=False)(np.zeros((2, 16, 8, 3), dtype=np.float32))


def test_read_frames_decodes_rgb_and_resizes(tmp_path: Path) -> None:
    rgb = _frames(t=3, h=20, w=10, seed=6)
    paths = []
    for t, frame in enumerate(rgb):
        path = tmp_path / f"f{t}.png"  # lossless, so pixels compare exactly
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        paths.append(str(path))
    assert np.array_equal(read_frames(paths), rgb)
    small = read_frames(paths, size=(16, 8), interpolation="bilinear")
    expected = np.stack([cv2.resize(f, (8, 16), interpolation=cv2.INTER_LINEAR) for f in rgb])
    assert np.array_equal(small, expected)
    with pytest.raises(OSError, match=r"missing\.png"):
        read_frames([str(tmp_path / "missing.png")])

"""The training dataset and loader on real image files whose pixels say which frame they are."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from reid_models.pretrained import PretrainedCfg
from trainers.data import TrainClipDataset, build_train_loader
from trainers.data.transforms import ClipTransform
from trainers.datasets.base import Tracklet

CFG = PretrainedCfg(
    paper="test", input_size=(3, 16, 8), train_clip_len=4, train_sampling="stride", train_stride=3
)
NUM_PIDS, PER_PID = 6, 2


@pytest.fixture(scope="module")
def tracklets(tmp_path_factory: pytest.TempPathFactory) -> list[Tracklet]:
    """Frame f of tracklet k is a flat PNG of grey level f * 4 in R, k * 10 in G."""
    root = tmp_path_factory.mktemp("tracklets")
    out = []
    for k in range(NUM_PIDS * PER_PID):
        paths = []
        for f in range(8 + 3 * k):
            image = np.zeros((16, 8, 3), dtype=np.uint8)
            image[..., 2], image[..., 1] = f * 4, k * 10  # BGR on disk
            path = root / f"{k:02d}_{f:03d}.png"
            cv2.imwrite(str(path), image)
            paths.append(str(path))
        out.append(Tracklet(tuple(paths), pid=k // PER_PID, camid=k % PER_PID))
    return out


def _decode(clip: torch.Tensor) -> tuple[list[int], int]:
    """(frame indices, tracklet) read back from a clip's pixels."""
    t = ClipTransform.from_cfg(CFG, train=False)
    pixels = clip * torch.tensor(t.std).view(3, 1, 1, 1) + torch.tensor(t.mean).view(3, 1, 1, 1)
    pixels = (pixels * 255).round()
    frames = [int(pixels[0, i, 8, 4]) // 4 for i in range(clip.shape[1])]
    return frames, int(pixels[1, 0, 8, 4]) // 10


def test_dataset_item_is_a_stride_clip_of_that_tracklet(tracklets) -> None:
    transform = ClipTransform.from_cfg(CFG, train=True, flip=0.0, pad=0)
    dataset = TrainClipDataset(
        tracklets, clip_len=4, sampling="stride", stride=3, transform=transform, seed=1
    )
    for i in (0, 5, 11):
        clip, pid, camid = dataset[i]
        assert clip.shape == (3, 4, 16, 8) and clip.dtype == torch.float32
        assert (pid, camid) == (tracklets[i].pid, tracklets[i].camid)
        frames, k = _decode(clip)
        assert k == i
        n = len(tracklets[i].frame_paths)
        if n >= 12:
            assert np.all(np.diff(frames) == 3) and frames[-1] < n
        else:
            assert np.all(np.diff(frames) > 0)


def test_loader_batches_are_p_by_k_and_reproducible(tracklets) -> None:
    def first_batch(seed: int):
        loader = build_train_loader(
            tracklets, CFG, batch_size=6, num_instances=2, workers=0, seed=seed, pad=2
        )
        return next(iter(loader))

    clips, pids, camids = first_batch(0)
    assert clips.shape == (6, 3, 4, 16, 8)
    assert sorted(torch.bincount(pids).tolist(), reverse=True)[:3] == [2, 2, 2]
    assert pids.dtype == torch.int64 and camids.dtype == torch.int64
    again = first_batch(0)
    assert torch.equal(clips, again[0]) and torch.equal(pids, again[1])
    assert not torch.equal(clips, first_batch(1)[0])


def test_loader_with_workers_and_epochs(tracklets) -> None:
    loader = build_train_loader(
        tracklets,
        CFG.with_changes(train_sampling="consecutive"),
        batch_size=4,
        num_instances=2,
        workers=2,
        seed=0,
        flip=0.0,
        pad=0,
    )
    seen = []
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        for clips, pids, _ in loader:
            for clip, pid in zip(clips, pids, strict=True):
                frames, k = _decode(clip)
                assert k // PER_PID == int(pid) and np.all(np.diff(frames) == 1)
            seen.append(pids.tolist())
    assert len(seen) == 2 * len(loader)


def test_num_instances_zero_shuffles_tracklets_across_ranks(tracklets) -> None:
    shares = []
    for rank in range(2):
        loader = build_train_loader(
            tracklets,
            CFG,
            batch_size=2,
            num_instances=0,
            workers=0,
            seed=3,
            pad=0,
            rank=rank,
            world_size=2,
        )
        shares.append({k for clips, _, _ in loader for k in [_decode(c)[1] for c in clips]})
    assert shares[0].isdisjoint(shares[1]) and len(shares[0] | shares[1]) == len(tracklets)

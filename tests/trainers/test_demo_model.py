"""The demo ReID model shipped in pipeline/assets: made by its recipe, served from the file alone,
and able to tell apart the people of a synthetic multi-camera scene.

The file is ``runs/synthetic_demo/best.pt`` of ``trainers/configs/synthetic_demo.yaml`` (the
recipe's header has the commands). The scene check renders a short `SyntheticScene`, cuts each
person's ground-truth crops per camera, embeds them in 8-frame clips and asks, for every
tracklet, whether the most similar tracklet on another camera is the same person.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from deploy.engines import create_engine
from pipeline.config import load_config
from reid_models import read_model_spec
from trainers.settings import TrainConfig
from trainers.synthetic.scene import SyntheticScene

ROOT = Path(__file__).resolve().parents[2]
ASSET = ROOT / "pipeline" / "assets" / "synthetic_reid.pt"
RECIPE = ROOT / "trainers" / "configs" / "synthetic_demo.yaml"


def test_the_shipped_model_is_the_recipes_and_small():
    recipe = load_config(TrainConfig, path=RECIPE, environ={})
    spec = read_model_spec(ASSET)
    assert (spec["name"], spec["overrides"]) == (recipe.model.name, recipe.model.overrides)
    cfg = spec["pretrained_cfg"]
    assert cfg["input_size"][1:] == list(recipe.data.input_size)
    assert (cfg["train_clip_len"], cfg["test_clip_len"]) == (4, recipe.eval.test_clip_len)
    stored = torch.load(ASSET, map_location="cpu", weights_only=True)["config"]
    assert stored["model"]["overrides"] == recipe.model.overrides
    assert ASSET.stat().st_size < 4_000_000


def test_the_engine_serves_the_shipped_model_from_the_file_alone():
    engine = create_engine("torch", checkpoint=ASSET, max_batch=4)
    assert engine.cfg.input_size == (3, 64, 32) and engine.embedding_dim == 128
    clips = np.random.default_rng(0).integers(0, 256, (2, 8, 128, 64, 3), dtype=np.uint8)
    out = engine.embed(clips)
    assert out.shape == (2, 128) and np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def _tracklets(scene: SyntheticScene) -> list[tuple[int, int, np.ndarray]]:
    """(camera, global id, (N, 128, 64, 3) RGB crops) per person and camera, visible >= 0.5."""
    crops: dict[tuple[int, int], list[np.ndarray]] = {}
    for step in scene.frames():
        for c, (image, boxes) in enumerate(zip(step.images, step.truth, strict=True)):
            for box in boxes:
                x1, y1, x2, y2 = (round(v) for v in box.xyxy)
                if box.visible < 0.5 or y2 - y1 < 32:
                    continue
                crop = cv2.resize(image[y1:y2, x1:x2], (64, 128), interpolation=cv2.INTER_AREA)
                crops.setdefault((c, box.global_id), []).append(crop[..., ::-1])
    return [(c, gid, np.stack(v)) for (c, gid), v in sorted(crops.items()) if len(v) >= 8]


@pytest.mark.slow
def test_the_shipped_model_matches_people_across_the_scenes_cameras():
    scene = SyntheticScene(num_cameras=3, num_people=8, duration_s=40, fps=5, seed=3)
    tracklets = _tracklets(scene)
    engine = create_engine("torch", checkpoint=ASSET, max_batch=8)
    embeddings = []
    for _, _, frames in tracklets:
        clips = frames[: len(frames) // 8 * 8].reshape(-1, 8, *frames.shape[1:])
        mean = engine.embed(clips).mean(axis=0)
        embeddings.append(mean / np.linalg.norm(mean))
    cams = np.array([t[0] for t in tracklets])
    gids = np.array([t[1] for t in tracklets])
    sim = np.stack(embeddings) @ np.stack(embeddings).T
    other = cams[:, None] != cams[None, :]
    same = gids[:, None] == gids[None, :]
    queries = [i for i in range(len(tracklets)) if (other[i] & same[i]).any()]
    hits = [gids[np.where(other[i])[0][np.argmax(sim[i][other[i]])]] == gids[i] for i in queries]
    assert len(queries) >= 16 and np.mean(hits) >= 0.9, (len(queries), np.mean(hits))
    # Same person on another camera well above different people (the matcher's threshold).
    assert np.median(sim[other & same]) > np.quantile(sim[other & ~same], 0.95) + 0.2

"""Site adaptation end to end on a small tracklet folder: the student starts as the teacher,
trains, resumes, and writes a checkpoint the engines, the exporter and `reidstream run` take."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from deploy.engines import create_engine
from deploy.export import export_onnx
from reid_models import create_model, load_pretrained
from trainers.adapt import AdaptConfig, StoreError, TrackletStore, adapt, split_tracklets
from trainers.adapt.fit import teacher_frames

#: Four people, two cameras, each a tracklet per camera: (shirt, trousers) colours in BGR.
PEOPLE = [((40, 40, 200), (90, 60, 20)), ((200, 60, 40), (30, 30, 30)),
          ((40, 200, 60), (150, 150, 150)), ((0, 200, 220), (70, 20, 90))]  # fmt: skip


def _person(shirt, trousers, shift: int, rng) -> np.ndarray:
    crop = np.full((256, 128, 3), 180, np.uint8)
    crop[30 + shift : 130 + shift, 30:98] = shirt
    crop[130 + shift : 240, 35:93] = trousers
    crop[5 + shift : 30 + shift, 50:78] = (90, 120, 170)  # a head
    noise = rng.integers(-12, 13, crop.shape)
    return np.clip(crop.astype(int) + noise, 0, 255).astype(np.uint8)


def _site(root) -> TrackletStore:
    rng = np.random.default_rng(0)
    store = TrackletStore(root)
    for cam, start in (("cam-a", 0.0), ("cam-b", 10.0)):
        for p, (shirt, trousers) in enumerate(PEOPLE):
            n = 12
            frames = np.arange(n) + 100 * p
            store.add(
                tracklet_id=f"{cam}.{p}",
                camera=cam,
                track_id=p,
                frames=frames,
                timestamps=start + p + frames / 10,
                boxes=np.tile([10.0, 10.0, 60.0, 130.0], (n, 1)),
                crops=np.stack([_person(shirt, trousers, i % 4, rng) for i in range(n)]),
            )
    store.close({"cameras": ["cam-a", "cam-b"]})
    return TrackletStore.open(root)


def _cfg(**kw) -> AdaptConfig:
    base = dict(epochs=2, steps_per_epoch=2, identities_per_batch=2, clips_per_identity=2,
                holdout=0.25, min_crops=8, pair_threshold=0.9)  # fmt: skip
    return AdaptConfig(**(base | kw))


def test_split_holds_out_the_latest_tracklets(tmp_path):
    store = _site(tmp_path / "site")
    train, held = split_tracklets(store, min_crops=8, holdout=0.25)
    assert len(train) == 6 and len(held) == 2
    assert max(t.start for t in train) <= min(t.start for t in held)
    assert split_tracklets(store, min_crops=13, holdout=0.25) == ([], [])


def test_too_few_tracklets_is_a_clear_error(tmp_path, osnet_teacher):
    store = _site(tmp_path / "site")
    with pytest.raises(StoreError, match="tracklets of 8\\+ crops to train on"):
        adapt(_cfg(identities_per_batch=8), store, tmp_path / "out", teacher_path=osnet_teacher)


@pytest.mark.slow
def test_adapt_trains_resumes_and_writes_a_servable_checkpoint(tmp_path, osnet_teacher, caplog):
    store = _site(tmp_path / "site")
    out = tmp_path / "out"
    identities = {f"{c}.{p}": p for c in ("cam-a", "cam-b") for p in range(4)}
    first = adapt(_cfg(epochs=1), store, out, teacher_path=osnet_teacher,
                  identities=identities, progress=False)  # fmt: skip
    report = first.report
    assert [e["epoch"] for e in report["epochs"]] == [1]
    assert all(np.isfinite(v) for v in report["epochs"][0].values())
    assert report["tracklets"] == {"collected": 8, "train": 6, "held_out": 2}
    checked = report["pseudo_labels"]["pairs_checked"]
    assert checked["wrong"] == 0, report["pseudo_labels"]
    json.dumps(report)  # plain data, as report.json needs

    # Run again with more epochs: it resumes after epoch 1 instead of starting over.
    caplog.set_level("INFO")
    second = adapt(_cfg(epochs=2), store, out, teacher_path=osnet_teacher, progress=False)
    assert [e["epoch"] for e in second.report["epochs"]] == [1, 2]
    assert "resuming after epoch 1" in caplog.text
    assert second.report["epochs"][0] == report["epochs"][0]

    # The checkpoint serves as it is: the torch engine rebuilds the model from its spec, and
    # the ONNX export of it embeds the same.
    engine = create_engine("torch", checkpoint=second.checkpoint)
    assert engine.cfg.embedding_dim == 512
    clips = np.stack([store.crops(t)[:8, :, :, ::-1] for t in list(store)[:2]])  # BGR, as cut
    emb = engine.embed(clips)
    assert emb.shape == (2, 512) and np.isfinite(emb).all()
    state = torch.load(second.checkpoint, weights_only=True)
    assert state["model"]["name"] == "ap3d_osnet_x0_25"
    assert not any(k.startswith("classifier") for k in state["state_dict"])
    model = create_model("ap3d_osnet_x0_25")
    model.load_state_dict(state["state_dict"])
    onnx = export_onnx(model, tmp_path / "adapted.onnx", clip_len=8)
    ort = create_engine("onnxruntime", onnx_path=onnx)
    np.testing.assert_allclose((ort.embed(clips) * emb).sum(1), 1.0, atol=1e-4)


def test_a_changed_configuration_starts_over(tmp_path, osnet_teacher, caplog):
    store = _site(tmp_path / "site")
    out = tmp_path / "out"
    adapt(_cfg(epochs=1, steps_per_epoch=1), store, out, teacher_path=osnet_teacher,
          progress=False)  # fmt: skip
    caplog.set_level("WARNING")
    result = adapt(_cfg(epochs=1, steps_per_epoch=1, lr=2e-4), store, out,
                   teacher_path=osnet_teacher, progress=False)  # fmt: skip
    assert "another adapt configuration: starting over" in caplog.text
    assert len(result.report["epochs"]) == 1


def test_the_untrained_student_is_the_teacher_averaged_over_frames(tmp_path, osnet_teacher):
    store = _site(tmp_path / "site")
    tracklets = list(store)[:3]
    teacher = create_model("c2d_osnet_x0_25", pretrained=osnet_teacher).eval()
    frames = teacher_frames(teacher, store, tracklets, device="cpu", progress=False)
    student = create_model("ap3d_osnet_x0_25", pretrained=osnet_teacher).eval()
    from trainers.adapt.evaluate import embed_tracklets

    emb = embed_tracklets(student, store, tracklets, clip_len=12)
    for f, e in zip(frames, emb, strict=True):
        mean = f.mean(0) / np.linalg.norm(f.mean(0))
        assert float(mean @ e) > 0.9999


def test_config_rejects_an_unknown_model():
    with pytest.raises(ValueError, match="model = 'nope'"):
        dataclasses.replace(AdaptConfig(), model="nope")
    with pytest.raises(ValueError, match="would return the teacher unchanged"):
        AdaptConfig(model="c2d_osnet_x0_25")  # train_layers="new" by default
    assert AdaptConfig(model="c2d_osnet_x0_25", train_layers="all").model == "c2d_osnet_x0_25"


def test_training_only_the_new_layers_keeps_the_teachers_weights(tmp_path, osnet_teacher):
    store = _site(tmp_path / "site")
    result = adapt(_cfg(epochs=1, train_layers="new"), store, tmp_path / "out",
                   teacher_path=osnet_teacher, progress=False)  # fmt: skip
    trained = torch.load(result.checkpoint, weights_only=True)["state_dict"]
    student = create_model("ap3d_osnet_x0_25")
    new = set(load_pretrained(student, osnet_teacher).missing)  # what the teacher lacks
    assert new, "the student has no temporal layers"
    start = student.state_dict()
    moved = {k for k, v in start.items() if v.dtype.is_floating_point and
             not torch.equal(v, trained[k])}  # fmt: skip
    assert moved and moved <= new, sorted(moved - new)[:5]

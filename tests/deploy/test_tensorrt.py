"""TensorRT: the import guard, the engine cache, int8 calibration data, and (where TensorRT and a
GPU exist) the built engine against PyTorch.

The ONNX graph TensorRT consumes is `deploy.export.export_onnx`'s; its parity with PyTorch through
ONNX Runtime, for every registered model, is pinned in test_engines.py
(`test_onnxruntime_cpu_matches_the_model`), so it is not repeated here.
"""

from __future__ import annotations

import importlib.util
import json
import logging

import cv2
import numpy as np
import pytest
import torch

from deploy.calibration import (
    CalibrationBatches,
    CalibrationError,
    find_clips,
    load_clip,
    split_clip,
)
from deploy.engine_cache import EngineCache, EngineKey, sha256_file
from deploy.engines.base import BackendUnavailable, EngineError, preprocess
from deploy.tensorrt_engine import BuildOptions, import_tensorrt
from reid_models.pretrained import PretrainedCfg

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
SHA = "ab" * 32
PROFILE = ((1, 3, 4, 256, 128), (16, 3, 4, 256, 128), (32, 3, 4, 256, 128))


def make_key(**changes) -> EngineKey:
    fields = {
        "model_sha256": SHA,
        "backend_version": "10.3.0",
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "compute_capability": "9.0",
        "precision": "fp16",
        "input_profile": PROFILE,
    }
    return EngineKey(**{**fields, **changes})


# --- import guard and build options ------------------------------------------------------------


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_missing_tensorrt_says_how_to_install_it():
    with pytest.raises(BackendUnavailable) as err:
        import_tensorrt()
    message = str(err.value)
    for hint in ("pip install tensorrt", "reidstream[tensorrt]", "NVIDIA PyTorch container"):
        assert hint in message


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"precision": "fp8"}, "expected one of"),
        ({"min_batch": 4, "opt_batch": 2}, "min_batch <= opt_batch"),
        ({"opt_batch": 64, "max_batch": 32}, "opt_batch <= max_batch"),
        ({"precision": "int8"}, "calibration_dir"),
    ],
)
def test_build_options_refuse_bad_values(options, message):
    with pytest.raises(EngineError, match=message):
        BuildOptions(**options)


def test_build_options_profile_spans_the_batch_axis_only():
    profile = BuildOptions(min_batch=2, opt_batch=8, max_batch=16).profile((3, 4, 256, 128))
    assert profile == ((2, 3, 4, 256, 128), (8, 3, 4, 256, 128), (16, 3, 4, 256, 128))


# --- engine cache key --------------------------------------------------------------------------


def test_equal_keys_have_equal_digests_and_file_names():
    assert make_key().digest() == make_key().digest()
    assert make_key().stem.startswith(f"{SHA[:12]}-fp16-")


@pytest.mark.parametrize(
    "change",
    [
        {"model_sha256": "cd" * 32},
        {"backend_version": "10.4.0"},
        {"gpu_name": "NVIDIA A100-SXM4-80GB"},
        {"compute_capability": "8.0"},
        {"precision": "int8"},
        {"input_profile": (PROFILE[0], PROFILE[1], (64, 3, 4, 256, 128))},
        {"input_profile": tuple((b, 3, 8, 256, 128) for b in (1, 16, 32))},
        {"calibration": "f" * 64},
    ],
)
def test_every_key_field_changes_the_digest(change):
    assert make_key(**change).digest() != make_key().digest()
    assert make_key(**change).stem != make_key().stem


def test_key_round_trips_through_json():
    key = make_key(calibration="e" * 64)
    assert EngineKey.from_dict(json.loads(json.dumps(key.to_dict()))) == key


@pytest.mark.parametrize(
    "change",
    [
        {"model_sha256": "not-a-hash"},
        {"input_profile": (PROFILE[1], PROFILE[0], PROFILE[2])},
        {"input_profile": (PROFILE[0], PROFILE[1])},
    ],
)
def test_malformed_keys_are_refused(change):
    with pytest.raises(ValueError, match=r"model_sha256|input_profile"):
        make_key(**change)


def test_model_hash_is_the_sha256_of_the_file_bytes(tmp_path):
    import hashlib

    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07onnx-bytes" * 1000)
    assert sha256_file(path, chunk=100) == hashlib.sha256(path.read_bytes()).hexdigest()


# --- engine cache files ------------------------------------------------------------------------


class Builder:
    """Counts builds; returns distinct fake plan bytes each time."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return b"fake plan %d " % self.calls * 100


def test_second_lookup_is_a_hit_without_building(tmp_path):
    cache, build = EngineCache(tmp_path / "engines"), Builder()
    first = cache.get_or_build(make_key(), build)
    second = cache.get_or_build(make_key(), build)
    assert (first.hit, second.hit, build.calls) == (False, True, 1)
    assert second.payload == first.payload == first.path.read_bytes()
    assert sorted(p.name for p in (tmp_path / "engines").iterdir()) == sorted(
        [f"{make_key().stem}.engine", f"{make_key().stem}.json"]
    )


def test_a_different_key_builds_its_own_entry(tmp_path):
    cache, build = EngineCache(tmp_path), Builder()
    cache.get_or_build(make_key(), build)
    other = cache.get_or_build(make_key(precision="fp32"), build)
    assert (other.hit, build.calls) == (False, 2)
    assert cache.load(make_key()) is not None


def _corrupt_plan(cache, key):
    data = bytearray(cache.path_for(key).read_bytes())
    data[len(data) // 2] ^= 0xFF
    cache.path_for(key).write_bytes(bytes(data))


def _truncate_plan(cache, key):
    cache.path_for(key).write_bytes(cache.path_for(key).read_bytes()[:-7])


def _drop_record(cache, key):
    cache.path_for(key).with_suffix(".json").unlink()


def _garble_record(cache, key):
    cache.path_for(key).with_suffix(".json").write_text("{not json")


def _other_key_record(cache, key):
    record_path = cache.path_for(key).with_suffix(".json")
    record = json.loads(record_path.read_text())
    record["key"]["gpu_name"] = "another GPU"
    record_path.write_text(json.dumps(record))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_corrupt_plan, "sha256"),
        (_truncate_plan, "bytes"),
        (_drop_record, "no record"),
        (_garble_record, "unreadable record"),
        (_other_key_record, "another key"),
    ],
)
def test_corrupt_entry_is_detected_and_rebuilt_with_a_warning(tmp_path, caplog, damage, reason):
    cache, build = EngineCache(tmp_path), Builder()
    cache.get_or_build(make_key(), build)
    damage(cache, make_key())
    with caplog.at_level(logging.WARNING, logger="deploy.engine_cache"):
        again = cache.get_or_build(make_key(), build)
    assert (again.hit, build.calls) == (False, 2)
    assert reason in caplog.text and "rebuilding" in caplog.text
    assert cache.load(make_key()) == again.payload  # the rebuilt entry is valid


def test_discard_removes_the_entry(tmp_path, caplog):
    cache = EngineCache(tmp_path)
    cache.store(make_key(), b"plan")
    with caplog.at_level(logging.WARNING, logger="deploy.engine_cache"):
        cache.discard(make_key(), reason="runtime refused it")
    assert cache.load(make_key()) is None
    assert list(tmp_path.iterdir()) == []
    assert "runtime refused it" in caplog.text


def test_store_leaves_no_temporary_files_and_refuses_empty_plans(tmp_path):
    cache = EngineCache(tmp_path)
    cache.store(make_key(), b"plan-1")
    cache.store(make_key(), b"plan-2")  # overwriting is atomic too
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".engine", ".json"]
    assert cache.load(make_key()) == b"plan-2"
    with pytest.raises(ValueError, match="empty plan"):
        cache.store(make_key(), b"")


# --- calibration data --------------------------------------------------------------------------

CFG = PretrainedCfg(paper="test", input_size=(3, 16, 8), interpolation="bilinear")


def _clip(t: int, h: int = 20, w: int = 10, *, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), np.uint8)


@pytest.fixture
def calibration_folder(tmp_path):
    """a.npy (5 frames), b.npy (2 frames), c/ (3 PNG frames of two sizes), notes.txt."""
    np.save(tmp_path / "a.npy", _clip(5, seed=1))
    np.save(tmp_path / "b.npy", _clip(2, seed=2))
    frames = tmp_path / "c"
    frames.mkdir()
    for i, size in enumerate([(20, 10), (20, 10), (24, 12)]):
        rgb = _clip(1, *size, seed=10 + i)[0]
        cv2.imwrite(str(frames / f"{i:03d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    (tmp_path / "notes.txt").write_text("not a clip")
    return tmp_path


def test_find_clips_takes_npy_files_and_frame_folders_in_name_order(calibration_folder):
    assert [p.name for p in find_clips(calibration_folder)] == ["a.npy", "b.npy", "c"]


def test_frame_folder_reads_rgb_in_name_order_and_unifies_sizes(calibration_folder):
    clip = load_clip(calibration_folder / "c")
    assert clip.shape == (3, 20, 10, 3) and clip.dtype == np.uint8
    np.testing.assert_array_equal(clip[0], _clip(1, 20, 10, seed=10)[0])  # PNG is lossless
    np.testing.assert_array_equal(clip[1], _clip(1, 20, 10, seed=11)[0])


def test_split_clip_chunks_consecutively_and_loops_short_clips():
    clip = np.arange(5)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    assert [c[:, 0, 0, 0].tolist() for c in split_clip(clip, 2)] == [[0, 1], [2, 3]]
    assert split_clip(clip[:2], 3)[0][:, 0, 0, 0].tolist() == [0, 1, 0]


def test_batches_are_full_and_preprocessed_like_the_engines(calibration_folder):
    batches = CalibrationBatches(calibration_folder, cfg=CFG, clip_len=2, batch_size=2)
    got = list(batches)
    # a.npy -> 2 chunks, b.npy -> 1, c/ -> 1: 4 clips, 2 full batches of 2.
    assert [tuple(b.shape) for b in got] == [batches.input_shape] * 2 == [(2, 3, 2, 16, 8)] * 2
    a = np.load(calibration_folder / "a.npy")
    expected = preprocess(torch.from_numpy(a[None, 0:2]), CFG, device="cpu")
    torch.testing.assert_close(got[0][:1], expected, rtol=0, atol=0)
    assert all(b.dtype == torch.float32 and b.is_contiguous() for b in got)


def test_remainder_and_max_batches_are_left_out(calibration_folder):
    assert len(list(CalibrationBatches(calibration_folder, cfg=CFG, clip_len=2, batch_size=3))) == 1
    limited = CalibrationBatches(
        calibration_folder, cfg=CFG, clip_len=2, batch_size=1, max_batches=2
    )
    assert len(list(limited)) == 2


def test_no_full_batch_is_an_error(calibration_folder):
    batches = CalibrationBatches(calibration_folder, cfg=CFG, clip_len=2, batch_size=5)
    with pytest.raises(CalibrationError, match="no full batch"):
        list(batches)


def test_empty_folder_and_malformed_clip_are_errors(tmp_path):
    with pytest.raises(CalibrationError, match="no clips"):
        find_clips(tmp_path)
    np.save(tmp_path / "bad.npy", np.zeros((4, 8, 8), np.float32))
    with pytest.raises(CalibrationError, match="uint8"):
        load_clip(tmp_path / "bad.npy")


def test_fingerprint_changes_with_the_data_and_the_batching(calibration_folder):
    def fingerprint(**kw):
        args = {"cfg": CFG, "clip_len": 2, "batch_size": 2, **kw}
        return CalibrationBatches(calibration_folder, **args).fingerprint()

    before = fingerprint()
    assert fingerprint() == before
    assert fingerprint(batch_size=1) != before
    np.save(calibration_folder / "a.npy", _clip(6, seed=3))
    assert fingerprint() != before


# --- TensorRT itself (where it is installed and a GPU exists) ----------------------------------


@pytest.mark.gpu
@pytest.mark.slow
def test_fp16_engine_matches_torch_and_second_build_is_a_cache_hit(tmp_path, small_model, clips):
    pytest.importorskip("tensorrt")
    from deploy.export import export_onnx, parity
    from deploy.tensorrt_engine import TensorRTEngine

    model = small_model("ap3d_r18")
    onnx_path = export_onnx(model, tmp_path / "ap3d_r18.onnx", model_name="ap3d_r18")
    cache = tmp_path / "engines"
    kwargs = {"onnx_path": onnx_path, "device": "cuda:0", "precision": "fp16", "max_batch": 4}
    with TensorRTEngine.create(cache_dir=cache, **kwargs) as engine:
        report = parity(model, engine, clips(4, model.pretrained_cfg.test_clip_len))
    assert report.min_cosine >= 0.999
    plans = sorted(cache.glob("*.engine"))
    stamp = plans[0].stat().st_mtime_ns
    with TensorRTEngine.create(cache_dir=cache, **kwargs):
        pass
    assert sorted(cache.glob("*.engine")) == plans and plans[0].stat().st_mtime_ns == stamp

"""The message types: validated on construction, with deterministic event ids; numpy only."""

from __future__ import annotations

import dataclasses
import uuid

import numpy as np
import pytest

from pipeline.messages.types import ClipEmbedding, IdentityLink, TrackletClosed


def _embedding(**kwargs) -> ClipEmbedding:
    fields = {
        "camera_id": "cam-1",
        "track_id": 3,
        "tracklet_id": "cam-1/3/100",
        "start_frame": 100,
        "end_frame": 106,
        "start_time": 1_700_000_000.0,
        "end_time": 1_700_000_000.4,
        "embedding": np.ones(8, np.float32) / np.sqrt(8),
        "model": "c2d_r50",
    }
    return ClipEmbedding(**(fields | kwargs))


# ---------------------------------------------------------------------------------- ClipEmbedding


def test_clip_embedding_is_read_only_float32_and_converts_integers():
    emb = _embedding(embedding=np.arange(1, 5))
    assert emb.embedding.dtype == np.float32 and not emb.embedding.flags.writeable
    assert emb.tracklet_start == emb.start_time
    assert uuid.UUID(emb.event_id).version == 5 and emb.event_id == _embedding().event_id


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        (np.array([1.0, np.nan], np.float32), "expected finite values, got nan at"),
        (np.zeros(4, np.float32), "non-zero vector"),
        (np.zeros(0, np.float32), "non-empty"),
        (np.ones((2, 4), np.float32), r"expected shape \(any,\), got \(2, 4\)"),
        (np.array([1.0, np.inf]), "expected finite values, got inf at"),
    ],
)
def test_clip_embedding_rejects_bad_vectors(vector, message):
    with pytest.raises(ValueError, match="ClipEmbedding.embedding: .*" + message):
        _embedding(embedding=vector)


def test_clip_embedding_rejects_reversed_span():
    emb = _embedding()
    with pytest.raises(ValueError, match="expected start <= end"):
        dataclasses.replace(emb, start_frame=emb.end_frame + 1)


def test_clip_embedding_rejects_a_vector_of_text():
    with pytest.raises(TypeError, match=r"embedding: expected dtype float32, got <U1"):
        _embedding(embedding=np.array(["a", "b"]))


def test_clip_embedding_rejects_a_tracklet_start_after_its_start():
    with pytest.raises(ValueError, match="tracklet_start: expected at most start_time"):
        _embedding(tracklet_start=1_700_000_001.0)


# --------------------------------------------------------------------------------- TrackletClosed


def test_tracklet_closed_has_one_event_id_per_tracklet():
    end = TrackletClosed("cam-1", 3, "cam-1/3/100", last_seen=1_700_000_009.5)
    assert end.event_id == TrackletClosed("cam-1", 3, "cam-1/3/100", 1_700_000_010.0).event_id
    assert end.event_id != TrackletClosed("cam-1", 3, "cam-1/3/101", 1_700_000_009.5).event_id
    with pytest.raises(ValueError, match=r"TrackletClosed\.last_seen: expected a finite number"):
        TrackletClosed("cam-1", 3, "cam-1/3/100", last_seen=float("nan"))


# ----------------------------------------------------------------------------------- IdentityLink


def _link(**kwargs) -> IdentityLink:
    fields = {
        "global_id": "g-000042",
        "camera_id": "cam-2",
        "track_id": 11,
        "tracklet_id": "cam-2/11/900",
        "start_time": 1_700_000_030.0,
        "end_time": 1_700_000_034.5,
        "similarity": 0.83,
    }
    return IdentityLink(**(fields | kwargs))


def test_identity_link_event_id_is_deterministic():
    a, b = _link(), _link()
    assert a == b and a.event_id == b.event_id
    assert len({a.event_id, _link(end_time=1_700_000_035.0).event_id}) == 2
    assert _link(global_id="g-7").event_id != a.event_id
    assert uuid.UUID(a.event_id).version == 5


def test_identity_link_new_identity():
    assert _link(similarity=None).is_new_identity
    assert not _link().is_new_identity


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"similarity": 1.5}, r"similarity: expected a value in \[-1, 1\]"),
        ({"similarity": float("nan")}, "similarity: expected a finite number"),
        ({"end_time": 0.0}, "expected start_time <= end_time"),
        ({"global_id": ""}, "global_id: expected a non-empty string"),
        ({"camera_id": "a/b"}, "camera_id: expected 1-128 characters"),
    ],
)
def test_identity_link_rejects_bad_fields(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _link(**kwargs)

"""The matcher's bounds on records beyond their schema: model, dimension, length, capture times."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.matching.plausibility import Plausibility
from pipeline.messages.encoding import MessageError
from pipeline.messages.types import ClipEmbedding, TrackletClosed

NOW = 1_700_000_000.0


def clip(vector=None, *, start: float = NOW - 2, end: float = NOW - 1, model: str = "m",
         dim: int = 8) -> ClipEmbedding:  # fmt: skip
    if vector is None:
        vector = np.ones(dim, np.float32) / np.sqrt(dim)
    return ClipEmbedding("cam1", 1, "cam1.x.1", 0, 9, start, end, vector, model)


def reason(check, *args) -> str | None:
    try:
        check(*args)
    except MessageError as e:
        return e.reason
    return None


def test_a_plausible_record_passes_and_fixes_the_dimension_when_none_is_configured():
    p = Plausibility("m")
    assert reason(p.check, clip(), NOW) is None
    assert p.dim == 8
    assert reason(p.check, clip(dim=16), NOW) == "wrong_model"
    assert reason(p.check, TrackletClosed("cam1", 1, "cam1.x.1", NOW), NOW) is None


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (clip(model="other"), "wrong_model"),  # even as the very first record
        (clip(dim=16), "wrong_model"),
        (clip(np.full(8, 1e20, np.float32)), "implausible_value"),  # overflows to inf in float32
        (clip(np.full(8, 1e-30, np.float32)), "implausible_value"),
        (clip(np.full(8, 0.5, np.float32)), "implausible_value"),  # length 1.41
        (clip(start=NOW + 1e6, end=NOW + 1e6), "implausible_time"),
        (clip(start=NOW + 121, end=NOW + 122), "implausible_time"),
        (clip(start=0.0, end=1.0), "implausible_time"),
        (clip(start=-5.0, end=NOW), "implausible_time"),
        (TrackletClosed("cam1", 1, "cam1.x.1", NOW + 1e6), "implausible_time"),
    ],
)
def test_implausible_records_are_rejected_with_their_reason(record, why):
    p = Plausibility("m", 8, max_ahead_s=120.0, max_behind_s=3600.0)
    assert reason(p.check, record, NOW) == why
    assert p.dim == 8


def test_the_window_follows_the_clock_it_is_given():
    p = Plausibility("m", 8, max_ahead_s=60.0, max_behind_s=600.0)
    late = clip(start=NOW + 100, end=NOW + 101)
    assert reason(p.check, late, NOW) == "implausible_time"
    assert reason(p.check, late, NOW + 50) is None  # the matcher's stream time ran ahead
    assert reason(p.check, clip(), NOW + 700) == "implausible_time"

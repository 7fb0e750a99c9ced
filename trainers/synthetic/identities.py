"""Synthetic identities: who looks like whom and how each one walks.

An `Identity` is a person id with an `Appearance` and a `Gait`. Identities are drawn in
appearance groups: every member of a group has the same appearance and the same gait amplitudes,
and the members differ only in cadence, taken from a ladder of well separated values::

    group of 2 (twins):         cadence 0.60 Hz | 1.60 Hz          (everything else equal)
    group of 3 (motion-only):   cadence 0.60 Hz | 0.98 Hz | 1.60 Hz

Cadence is the one cue that a bag of frames cannot carry: over a gait cycle the pose
distribution does not depend on it, so a frame-averaging model sees group members as one person,
while a temporal model can tell them apart from how fast the limbs move between frames (and how
fast the background scrolls behind the walker). The cue is read best from adjacent frames
(``consecutive`` sampling, or a small stride): at 10 fps the ladder's ends advance the gait by
22 and 58 degrees per frame, and a stride of 4 or more frames starts to alias the fast walkers.
Singletons (groups of 1) draw every field at random.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainers.synthetic.figure import Appearance, Gait, sample_appearance, sample_gait

__all__ = ["CADENCE_RANGE_HZ", "Identity", "identity_from_dict", "identity_to_dict", "plan_groups"]

#: Lowest and highest cadence (gait cycles per second) of any synthetic person.
CADENCE_RANGE_HZ = (0.6, 1.6)


@dataclass(frozen=True)
class Identity:
    """One synthetic person.

    Attributes:
        pid: Person id (1-based in the dataset; any int in scenes).
        appearance: What a frame shows.
        gait: How the person walks.
        group: Appearance group; identities of one group look the same and differ in cadence.
    """

    pid: int
    appearance: Appearance
    gait: Gait
    group: int


def _cadence_ladder(size: int) -> np.ndarray:
    return np.geomspace(*CADENCE_RANGE_HZ, num=size)


def plan_groups(pids: Sequence[int], *, group_sizes: Sequence[int], rng: np.random.Generator,
                first_group: int = 0) -> list[Identity]:  # fmt: skip
    """Draws identities for `pids` in consecutive groups of the given sizes.

    Args:
        pids: The ids, in order; ``sum(group_sizes)`` must equal ``len(pids)``.
        group_sizes: Members per group (1 = singleton with a random gait).
        rng: Source of every random choice.
        first_group: Number given to the first group (groups are numbered consecutively).

    Returns:
        One `Identity` per pid, in the order of `pids`.
    """
    if sum(group_sizes) != len(pids) or any(s < 1 for s in group_sizes):
        raise ValueError(
            f"group_sizes: expected positive sizes summing to {len(pids)}, got {list(group_sizes)}"
        )
    identities: list[Identity] = []
    start = 0
    for offset, size in enumerate(group_sizes):
        appearance = sample_appearance(rng)
        base = sample_gait(rng)
        cadences = rng.permutation(_cadence_ladder(size)) if size > 1 else [base.cadence_hz]
        for k in range(size):
            gait = dataclasses.replace(base, cadence_hz=float(cadences[k]))
            identities.append(Identity(pids[start + k], appearance, gait, first_group + offset))
        start += size
    return identities


def identity_to_dict(identity: Identity) -> dict[str, Any]:
    """A JSON-ready dict of an identity (see `identity_from_dict`)."""
    return dataclasses.asdict(identity)


def identity_from_dict(data: Mapping[str, Any]) -> Identity:
    """Rebuilds an `Identity` from `identity_to_dict`'s output (JSON turns tuples into lists)."""
    look = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(data["appearance"]).items()}
    return Identity(
        pid=int(data["pid"]),
        appearance=Appearance(**look),
        gait=Gait(**data["gait"]),
        group=int(data["group"]),
    )

"""Configuration section of the matcher (`matcher.*`, with its list `matcher.transitions`;
composed into the root schema by `pipeline.settings`; see `pipeline.config` for how a schema loads).

Plain frozen dataclasses: each leaf's `metadata` says what it does and what changing it trades.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipeline.messages.types import check_camera_key

__all__ = ["MatcherConfig", "TransitionConfig"]


@dataclass(frozen=True)
class TransitionConfig:
    """How long people take from one camera to another (a camera-topology constraint)."""

    source: str = field(default="", metadata={"help": "Camera a person leaves (required)."})
    target: str = field(default="", metadata={"help": "Camera the person reaches next (required)."})
    min_s: float = field(
        default=0.0,
        metadata={
            "help": "Shortest time from leaving `source` to appearing on `target`; negative when "
            "the views overlap."
        },
    )
    max_s: float = field(
        default=60.0, metadata={"help": "Longest such time; a longer gap cannot be the same walk."}
    )
    both_ways: bool = field(
        default=True, metadata={"help": "The same window applies from target to source."}
    )

    def __post_init__(self) -> None:
        for what, value in (("source", self.source), ("target", self.target)):
            if not value:
                raise ValueError(f"{what}: required, a camera id")
            check_camera_key(what, value)
        if self.max_s < self.min_s:
            raise ValueError(f"max_s = {self.max_s} must be at least min_s = {self.min_s}")


@dataclass(frozen=True)
class MatcherConfig:
    """The global identity gallery and how tracklets are assigned to it."""

    threshold: float = field(
        default=0.6,
        metadata={
            "ge": -1.0,
            "le": 1.0,
            "help": "Least cosine similarity between a tracklet and an identity for the tracklet "
            "to join it; below, it opens a new global id. Raising it splits one person into "
            "several ids (fewer false merges); lowering it merges different people. Depends on "
            "the model: measure same vs different person similarities on your cameras.",
        },
    )
    switch_margin: float = field(
        default=0.05,
        metadata={
            "ge": 0.0,
            "le": 2.0,
            "help": "A tracklet already linked moves to another identity only if that one is more "
            "similar by this margin. Higher keeps ids stable; lower corrects early mistakes "
            "sooner.",
        },
    )
    ttl_s: float = field(
        default=600.0,
        metadata={
            "gt": 0.0,
            "help": "An identity not seen on any camera for this long (stream time) is forgotten: "
            "a later return gets a new global id. Longer re-identifies people after long "
            "absences, with a larger gallery and more chances of a false match.",
        },
    )
    max_identities: int = field(
        default=10_000,
        metadata={
            "ge": 1,
            "help": "Gallery size bound; beyond it the identity seen longest ago is forgotten "
            "first. Bounds memory and matching time (linear in the gallery size).",
        },
    )
    silent_tracklet_s: float = field(
        default=30.0,
        metadata={
            "gt": 0.0,
            "help": "A tracklet counts as in view (so its person cannot be matched elsewhere) "
            "until its end arrives; one that sent no clip for this long (stream time) counts as "
            "ended at its last clip, in case its worker died before ending it. Longer keeps a "
            "stalled camera's people from being matched elsewhere for longer.",
        },
    )
    index: Literal["exact", "faiss"] = field(
        default="exact",
        metadata={
            "help": "How the identities above the threshold are found: 'exact' compares each "
            "tracklet with every identity (one matrix product; 54 ms per 32 clips at 100k 512-d "
            "identities on 2 CPU cores); 'faiss' asks a FAISS inverted-file index "
            "(reidstream[faiss]), about 2.5x faster at 100k identities but approximate (it found "
            "60-77% of them on random embeddings) and it stalls for its training; see "
            "BENCHMARKS.md."
        },
    )
    nprobe: int = field(
        default=64,
        metadata={
            "ge": 1,
            "help": "index = 'faiss': inverted lists searched per query (of 4 sqrt(identities)). "
            "More finds more of the identities above the threshold, and costs more.",
        },
    )
    top_k: int = field(
        default=5,
        metadata={
            "ge": 1,
            "le": 100,
            "help": "Candidates kept per decision: the identities most similar to the tracklet "
            "(its own excluded), each with why it was accepted or refused; the refusals are "
            "counted (reidstream_match_refusals_total) and, with run.decisions, written to "
            "decisions.jsonl for `reidstream explain`. More explains more, in a larger file.",
        },
    )
    overlapping_cameras: tuple[tuple[str, ...], ...] = field(
        default=(),
        metadata={
            "help": "Groups of cameras whose views overlap, e.g. [[cam1, cam2]]: one person may "
            "be on two of them at once. Elsewhere a person is never in two places at the same "
            "time, and two tracklets overlapping in time on one camera are never one person. "
            "Recordings replayed together share one clock unless their cameras set start_time "
            "or clock_offset_s: without either, their people are all 'at once'."
        },
    )
    transitions: tuple[TransitionConfig, ...] = field(
        default=(),
        metadata={
            "help": "Optional camera-to-camera transit time windows: a tracklet may continue an "
            "identity last seen on the source camera only if it starts within [min_s, max_s] "
            "after that sighting ends. Pairs without a window are not constrained."
        },
    )

    model: str | None = field(
        default=None,
        metadata={
            "help": "Model name `reidstream matcher` accepts embeddings of, as the workers stamp "
            "it (e.g. 'ap3d_osnet:site.onnx'); any other is rejected (reason wrong_model). "
            "Default: the model the reid section names, which workers sharing this configuration "
            "run. Never taken from the first message, which anyone can send.",
        },
    )
    embedding_dim: int | None = field(
        default=None,
        metadata={
            "ge": 1,
            "help": "Embedding size `reidstream matcher` accepts (others: wrong_model). Default: "
            "the size of the first embedding of `model` (logged); set it to pin it.",
        },
    )
    max_ahead_s: float = field(
        default=120.0,
        metadata={
            "gt": 0.0,
            "help": "`reidstream matcher` rejects a record whose capture times run more than "
            "this ahead of its clock (the later of the wall clock and the newest capture time "
            "matched; reason implausible_time): one far in the future would expire the whole "
            "gallery. Keep it well below ttl_s; raise it for workers replaying files fast "
            "(replay: fast), whose times run ahead of the wall clock.",
        },
    )
    max_behind_s: float = field(
        default=604_800.0,
        metadata={
            "gt": 0.0,
            "help": "`reidstream matcher` rejects a record whose capture times lie more than "
            "this behind its clock (implausible_time), e.g. 0 or negative. Default: 7 days, "
            "Kafka's default retention, so a topic can be read again from its start.",
        },
    )
    norm_tolerance: float = field(
        default=0.01,
        metadata={
            "gt": 0.0,
            "le": 1.0,
            "help": "Workers send unit-length embeddings; `reidstream matcher` rejects one whose "
            "length differs from 1 by more than this (implausible_value), such as a 1e20 "
            "vector, which would otherwise become a zero identity.",
        },
    )
    changelog: bool = field(
        default=True,
        metadata={
            "help": "`reidstream matcher` keeps its gallery in a compacted Kafka topic and reads "
            "it back at start, so that a restarted matcher (or one that replaces it) keeps every "
            "global id; each batch then commits its gallery changes and its offsets in one "
            "transaction. Off: the gallery lives in memory only and a restart begins empty.",
        },
    )
    changelog_topic: str = field(
        default="",
        metadata={
            "pattern": r"[A-Za-z0-9._\-]{0,249}",
            "help": "The changelog topic (and the matcher's transactional id: two matchers with "
            "the same one fence each other). Empty: '<kafka.group_id>-gallery-changelog'. "
            "Created compacted with one partition if missing.",
        },
    )

    def __post_init__(self) -> None:
        if self.max_ahead_s >= self.ttl_s:
            raise ValueError(
                f"max_ahead_s = {self.max_ahead_s} must be less than ttl_s = {self.ttl_s}: a "
                f"record that far ahead would expire the gallery"
            )
        for group in self.overlapping_cameras:
            if len(group) < 2:
                raise ValueError(
                    f"overlapping_cameras: each group names at least two cameras, got {list(group)}"
                )
            for camera in group:
                check_camera_key("overlapping_cameras", camera)

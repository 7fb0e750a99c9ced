"""`reidstream bench matcher`: latency and memory of cross-camera matching on large galleries.

    reidstream bench matcher [--identities 1000,10000,100000] [--dim 512,2048] [--batch 32]
        [--batches 50] [--index exact,faiss] [--nprobe 64] [--cameras 8] [--json OUT]

For every (identities N, dim D, index[, nprobe]), in one process:

    gallery   N identities enrolled with `Matcher.enroll`: random unit vectors, 1% of them near
              copies of another (cosine ~0.8); 1 or 2 member tracklets each on --cameras cameras,
              last seen uniformly over the ttl (600 s) before the first batch; tracklets that
              ended in the last 30 s are still open (in view), so the constraints reject some
    batches   --batch clips each, one stream second apart: a quarter more clips of the stream's
              own open tracklets, a quarter new tracklets of a gallery person (cosine ~0.8 to
              it), the rest new people; the gallery is full (max_identities = N), so every
              batch also expires and forgets identities
    timed     Matcher.update(batch), wall time per call after one untimed call (which trains
              the FAISS index) ─▶ p50 / p95 / p99 ms per batch, queries/s
    memory    Matcher.gallery_nbytes (the identity matrix, plus the FAISS index) and the growth
              of the process RSS from before the gallery was built to after the last batch
    recall    faiss rows: after the batches, for every timed clip, the identities the index
              finds at least `threshold` similar over those the exact product finds (the clip's
              own identity left out, which either finds trivially)

Not a test: the figures depend on the machine and its load (printed beside them).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import psutil

from pipeline.matching.matcher import INDEX_KINDS, Matcher
from pipeline.messages.types import ClipEmbedding, TrackletClosed

__all__ = [
    "MatcherBenchRow",
    "QueryStream",
    "bench_matcher",
    "build_gallery",
    "format_table",
    "run",
]

logger = logging.getLogger(__name__)

_MODEL = "bench"
_TTL_S = 600.0  # the matcher's default
_START_S = 2 * _TTL_S  # stream time of the first batch (keeps the gallery's times positive)
_IN_VIEW_S = 30.0  # gallery tracklets that ended this recently are still open
_CLIPS_PER_TRACKLET = 4  # stream tracklets close after this many clips


@dataclass(frozen=True)
class MatcherBenchRow:
    """One measured (identities, dim, index) combination.

    Attributes:
        index: The `Matcher` index asked for.
        searched: How the last batch found its candidates (`Matcher.search`): ``"exact"`` for
            a faiss row whose gallery is too small to train the index on.
        nprobe: Inverted lists searched per query (faiss rows only).
        first_batch_ms: The untimed first update (it trains the FAISS index).
        gallery_mib: `Matcher.gallery_nbytes` after the batches.
        rss_growth_mib: Process RSS after the batches minus before the gallery was built.
        recall: Share of the exact product's above-threshold identities the index found
            (faiss rows only).
        build_s: Seconds to enroll the gallery.
    """

    identities: int
    dim: int
    index: str
    searched: str
    nprobe: int | None
    batch: int
    batches: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    queries_per_s: float
    first_batch_ms: float
    gallery_mib: float
    rss_growth_mib: float
    recall: float | None
    build_s: float


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _near(rng: np.random.Generator, base: np.ndarray, cosine: float) -> np.ndarray:
    """A unit vector at about `cosine` to unit `base` (exactly, for a random direction)."""
    other = _unit(rng.standard_normal(base.shape, dtype=np.float32))
    other = _unit(other - (other @ base) * base)  # orthogonal to base
    return _unit(cosine * base + np.sqrt(1 - cosine**2) * other)


def _clip(vector, camera, tracklet, start, end, *, first=None) -> ClipEmbedding:
    return ClipEmbedding(
        camera_id=camera, track_id=int(tracklet.rsplit("-", 1)[1]), tracklet_id=tracklet,
        start_frame=int(start * 10), end_frame=int(end * 10), start_time=start, end_time=end,
        embedding=vector, model=_MODEL, tracklet_start=first,
    )  # fmt: skip


def build_gallery(
    matcher: Matcher, *, identities: int, dim: int, cameras: int, rng: np.random.Generator
) -> np.ndarray:
    """Enrolls `identities` people (see the module docstring); returns their (N, D) looks."""
    looks = _unit(rng.standard_normal((identities, dim), dtype=np.float32))
    copies = rng.choice(identities, size=identities // 100, replace=False)
    for i in copies:  # a few look-alikes, so that some batches contest an identity
        looks[i] = _near(rng, looks[rng.integers(identities)], 0.8)
    closed: list[TrackletClosed] = []
    for person in range(identities):
        end = float(rng.uniform(_START_S - _TTL_S, _START_S))
        spans, cams = [], rng.choice(cameras, size=int(rng.integers(1, 3)), replace=False)
        for camera in cams:  # the last sighting first, earlier ones on other cameras
            start = end - float(rng.uniform(2.0, 20.0))
            spans.append((f"cam{camera}", f"g{person}-{len(spans)}", start, end))
            end = start - float(rng.uniform(5.0, 60.0))
        clips = [_clip(_near(rng, looks[person], 0.95), *span) for span in spans]
        matcher.enroll(clips)
        closed += [
            TrackletClosed(c, int(t.rsplit("-", 1)[1]), t, e)
            for c, t, _, e in spans
            if e < _START_S - _IN_VIEW_S
        ]
    matcher.close(closed)
    return looks


class QueryStream:
    """Query batches one stream second apart (see the module docstring)."""

    def __init__(self, looks: np.ndarray, *, cameras: int, rng: np.random.Generator) -> None:
        self.looks, self.cameras, self.rng = looks, cameras, rng
        self.now = _START_S
        self._open: deque[tuple[np.ndarray, str, str, float, int]] = deque()
        self._next = 0
        self.closed: list[TrackletClosed] = []  # tracklets that ended with the last batch

    def batch(self, size: int) -> list[ClipEmbedding]:
        rng, self.now = self.rng, self.now + 1.0
        self.closed = []
        clips = []
        for _ in range(min(size // 4, len(self._open))):  # the stream's own tracklets go on
            look, camera, tracklet, first, count = self._open.popleft()
            clips.append(_clip(_near(rng, look, 0.95), camera, tracklet, self.now - 1, self.now,
                               first=first))  # fmt: skip
            self._keep_or_close((look, camera, tracklet, first, count + 1))
        returning = size // 4
        while len(clips) < size:
            known = returning > 0
            returning -= 1
            person = self.looks[rng.integers(len(self.looks))]
            look = _near(rng, person, 0.8) if known else _unit(rng.standard_normal(person.shape))
            camera, tracklet = f"cam{rng.integers(self.cameras)}", f"s{self._next}-{self._next}"
            self._next += 1
            clips.append(_clip(_near(rng, look, 0.95), camera, tracklet, self.now - 1, self.now))
            self._keep_or_close((look, camera, tracklet, self.now - 1, 1))
        return clips

    def _keep_or_close(self, track: tuple[np.ndarray, str, str, float, int]) -> None:
        _, camera, tracklet, _, count = track
        if count < _CLIPS_PER_TRACKLET:
            self._open.append(track)
        else:
            tid = int(tracklet.rsplit("-", 1)[1])
            self.closed.append(TrackletClosed(camera, tid, tracklet, self.now))


def _recall(matcher: Matcher, batches: Sequence[Sequence[ClipEmbedding]]) -> float:
    """Share of the exact above-threshold (clip, identity) pairs the index also finds."""
    found = wanted = 0
    for clips in batches:
        vectors = np.stack([c.embedding for c in clips])
        for clip, approx, exact in zip(
            clips, matcher.similar(vectors), matcher.similar(vectors, exact=True), strict=True
        ):
            exact = exact.keys() - {matcher.global_id_of(clip.camera_id, clip.tracklet_id)}
            wanted += len(exact)
            found += len(exact & approx.keys())
    return found / wanted if wanted else 1.0


def bench_matcher(
    *, identities: int, dim: int, index: str, nprobe: int, batch: int, batches: int,
    cameras: int = 8, seed: int = 0,
) -> MatcherBenchRow:  # fmt: skip
    """Builds one gallery and times `Matcher.update` on `batches` query batches."""
    rng = np.random.default_rng(seed)
    rss = psutil.Process().memory_info().rss
    matcher = Matcher(max_identities=identities, ttl_s=_TTL_S, id_prefix="g", index=index,
                      nprobe=nprobe, silent_tracklet_s=_IN_VIEW_S)  # fmt: skip
    start = time.perf_counter()
    looks = build_gallery(matcher, identities=identities, dim=dim, cameras=cameras, rng=rng)
    build_s = time.perf_counter() - start
    stream = QueryStream(looks, cameras=cameras, rng=rng)
    first_s = _timed(matcher.update, stream.batch(batch))
    matcher.close(stream.closed)
    times, timed_batches = [], []
    for _ in range(batches):
        clips = stream.batch(batch)
        times.append(_timed(matcher.update, clips))
        matcher.close(stream.closed)
        timed_batches.append(clips)
    rss_growth = psutil.Process().memory_info().rss - rss
    ms = 1000 * np.asarray(times)
    return MatcherBenchRow(
        identities=identities, dim=dim, index=index, searched=matcher.search,
        nprobe=nprobe if index == "faiss" else None,
        batch=batch, batches=batches, p50_ms=float(np.percentile(ms, 50)),
        p95_ms=float(np.percentile(ms, 95)), p99_ms=float(np.percentile(ms, 99)),
        queries_per_s=batch * len(times) / float(np.sum(times)), first_batch_ms=1000 * first_s,
        gallery_mib=matcher.gallery_nbytes / 2**20, rss_growth_mib=rss_growth / 2**20,
        recall=_recall(matcher, timed_batches) if index == "faiss" else None, build_s=build_s,
    )  # fmt: skip


def _timed(call: Callable, *args: object) -> float:
    start = time.perf_counter()
    call(*args)
    return time.perf_counter() - start


_HEADER = (
    "identities", "dim", "index", "p50 ms", "p95 ms", "p99 ms", "queries/s", "first batch ms",
    "gallery MiB", "RSS growth MiB", "recall", "build s",
)  # fmt: skip


def format_table(rows: Sequence[MatcherBenchRow]) -> str:
    """The rows as a Markdown table."""
    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for r in rows:
        index = r.index if r.nprobe is None else f"{r.index} nprobe={r.nprobe}"
        if r.searched != r.index:
            index += f" (untrained: {r.searched})"
        cells = (
            str(r.identities), str(r.dim), index, f"{r.p50_ms:.2f}", f"{r.p95_ms:.2f}",
            f"{r.p99_ms:.2f}", f"{r.queries_per_s:.0f}", f"{r.first_batch_ms:.0f}",
            f"{r.gallery_mib:.1f}", f"{r.rss_growth_mib:.0f}",
            "exact" if r.recall is None else f"{r.recall:.3f}", f"{r.build_s:.1f}",
        )  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _combinations(
    identities: Sequence[int], dims: Sequence[int], indexes: Sequence[str], nprobes: Sequence[int]
) -> list[dict]:
    combos = []
    for n in identities:
        for dim in dims:
            for index in indexes:
                for nprobe in nprobes if index == "faiss" else nprobes[:1]:
                    combos.append({"identities": n, "dim": dim, "index": index, "nprobe": nprobe})
    return combos


def run(
    *,
    identities: Sequence[int] = (1000, 10000, 100000),
    dims: Sequence[int] = (512, 2048),
    indexes: Sequence[str] = INDEX_KINDS,
    nprobes: Sequence[int] = (64,),
    batch: int = 32,
    batches: int = 50,
    cameras: int = 8,
    seed: int = 0,
    json_path: Path | None = None,
) -> list[MatcherBenchRow]:
    """Measures every (identities, dim, index[, nprobe]); prints the table and the combinations
    skipped (faiss not installed), and writes the rows to `json_path`. Returns the rows."""
    print(f"CPU threads {os.cpu_count()}; load average {os.getloadavg()[0]:.2f} at start")
    rows, skipped = [], []
    for combo in _combinations(identities, dims, indexes, nprobes):
        try:
            row = bench_matcher(**combo, batch=batch, batches=batches, cameras=cameras, seed=seed)
        except ImportError as e:  # faiss not installed
            skipped.append(f"{combo}: {e}")
            continue
        logger.info("%s: p50 %.2f ms", combo, row.p50_ms)
        rows.append(row)
    print(f"load average {os.getloadavg()[0]:.2f} at end\n")
    print(format_table(rows))
    for line in skipped:
        print(f"skipped: {line}")
    if json_path is not None:
        document = {"cpu_threads": os.cpu_count(), "rows": [asdict(r) for r in rows],
                    "skipped": skipped}  # fmt: skip
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {json_path}")
    return rows

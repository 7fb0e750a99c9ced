"""The matcher: running means, thresholds, constraints, Hungarian assignment, expiry."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pipeline.matching.matcher import Matcher, Transition
from pipeline.messages.types import ClipEmbedding, TrackletClosed

DIM = 32
RNG = np.random.default_rng(0)
PEOPLE = RNG.standard_normal((20, DIM)).astype(np.float32)  # nearly orthogonal in 32-d


def clip(person: int | np.ndarray, camera: str, tracklet: str, start: float, end: float,
         *, noise: float = 0.05, model: str = "m", seed: int = 0) -> ClipEmbedding:  # fmt: skip
    base = PEOPLE[person] if isinstance(person, int) else person
    rng = np.random.default_rng(seed)
    vector = base / np.linalg.norm(base) + noise * rng.standard_normal(DIM)
    return ClipEmbedding(camera_id=camera, track_id=int(tracklet.rsplit("-", 1)[-1]),
                         tracklet_id=tracklet, start_frame=int(start * 10),
                         end_frame=int(end * 10), start_time=start, end_time=end,
                         embedding=vector.astype(np.float32), model=model)  # fmt: skip


def ended(tracklet: str, camera: str, last_seen: float) -> TrackletClosed:
    return TrackletClosed(camera, int(tracklet.rsplit("-", 1)[-1]), tracklet, last_seen)


def matcher(**kw) -> Matcher:
    return Matcher(**({"threshold": 0.6, "id_prefix": "g"} | kw))


def test_one_person_on_two_cameras_is_one_identity_and_others_are_not():
    m = matcher()
    (a,) = m.update([clip(0, "cam1", "t-1", 0, 2)])
    assert a.is_new_identity and a.similarity is None and a.global_id == "g-1"
    m.close([ended("t-1", "cam1", 2.5)])
    (b,) = m.update([clip(0, "cam2", "t-2", 5, 7, seed=1)])
    assert b.global_id == a.global_id and b.similarity > 0.9
    (c,) = m.update([clip(1, "cam2", "t-3", 8, 9)])
    assert c.global_id not in (a.global_id,) and c.is_new_identity
    assert m.identities == 2


def test_a_tracklet_mean_grows_over_its_clips_and_its_link_moves_forward():
    m = matcher()
    first = m.update([clip(0, "cam1", "t-1", 0, 1)])[0]
    later = m.update([clip(0, "cam1", "t-1", 1, 2, seed=3)])[0]
    assert later.global_id == first.global_id
    assert (later.start_time, later.end_time) == (0, 2)
    assert later.event_id != first.event_id


def test_a_tracklet_is_in_view_until_it_is_closed():
    m = matcher(silent_tracklet_s=20.0)
    (a,) = m.update([clip(0, "cam1", "t-1", 0, 2)])
    # Still open on cam1 (its track may go on): the same look on cam2 is someone else, for now.
    (b,) = m.update([clip(0, "cam2", "t-2", 5, 6, seed=1)])
    assert b.global_id != a.global_id
    m.close([ended("t-1", "cam1", 3.0)])  # it was last seen at 3 s
    (b,) = m.update([clip(0, "cam2", "t-2", 6, 7, seed=2)])
    assert b.global_id == a.global_id  # corrected as soon as the evidence allows
    # A tracklet whose worker went silent stops blocking after silent_tracklet_s.
    (c,) = m.update([clip(1, "cam3", "t-3", 10, 11)])
    (d,) = m.update([clip(1, "cam1", "t-4", 40, 41, seed=3)])
    assert d.global_id == c.global_id


def test_the_link_starts_at_the_first_box_not_the_first_clip():
    m = matcher()
    embedding = clip(0, "cam1", "t-1", 5, 6)
    early = ClipEmbedding(**{**{f: getattr(embedding, f) for f in
                                ("camera_id", "track_id", "tracklet_id", "start_frame", "end_frame",
                                 "start_time", "end_time", "embedding", "model")},
                             "tracklet_start": 2.0})  # fmt: skip
    (link,) = m.update([early])
    assert (link.start_time, link.end_time) == (2.0, 6)


def test_same_camera_overlap_is_never_one_person():
    m = matcher()
    (a,) = m.update([clip(0, "cam1", "t-1", 0, 5)])
    (b,) = m.update([clip(0, "cam1", "t-2", 3, 8, seed=2)])  # identical look, same time
    assert b.global_id != a.global_id


@pytest.mark.parametrize(("overlap", "joined"), [((), False), ((("cam1", "cam2"),), True)])
def test_two_places_at_once_only_where_cameras_overlap(overlap, joined):
    m = matcher(overlapping_cameras=overlap)
    (a,) = m.update([clip(0, "cam1", "t-1", 0, 5)])
    (b,) = m.update([clip(0, "cam2", "t-2", 3, 8, seed=2)])
    assert (b.global_id == a.global_id) is joined


@pytest.mark.parametrize(("start", "joined"), [(6.0, True), (30.0, False), (4.9, False)])
def test_transition_windows(start, joined):
    # cam1 -> cam2 takes 0.5 .. 10 s; the window also bounds the other direction below.
    m = matcher(transitions=[Transition("cam1", "cam2", 0.5, 10.0)])
    (a,) = m.update([clip(0, "cam1", "t-1", 0, 5)])
    m.close([ended("t-1", "cam1", 5.0)])
    (b,) = m.update([clip(0, "cam2", "t-2", start, start + 2, seed=2)])
    assert (b.global_id == a.global_id) is joined


def test_the_window_checks_the_sighting_just_before_not_older_ones():
    m = matcher(transitions=[Transition("cam1", "cam2", 0.0, 10.0)])
    a = m.update([clip(0, "cam1", "t-1", 0, 5)])[0]
    m.close([ended("t-1", "cam1", 5.0)])
    m.update([clip(0, "cam3", "t-2", 8, 12, seed=1)])  # no window cam1 -> cam3
    m.close([ended("t-2", "cam3", 12.0)])
    # cam2 at 100 s: 95 s after cam1, but the sighting just before is cam3's: unconstrained.
    (c,) = m.update([clip(0, "cam2", "t-3", 100, 101, seed=2)])
    assert c.global_id == a.global_id


def test_hungarian_gives_a_contested_identity_to_the_closer_tracklet():
    m = matcher(threshold=0.5)
    (a,) = m.update([clip(0, "cam1", "t-1", 0, 2)])
    m.close([ended("t-1", "cam1", 2.0)])
    near = PEOPLE[0] / np.linalg.norm(PEOPLE[0])
    other = PEOPLE[1] / np.linalg.norm(PEOPLE[1])
    links = m.update([
        clip(near + 0.3 * other, "cam2", "t-2", 5, 6, noise=0),  # cos ~0.96
        clip(near + 0.8 * other, "cam3", "t-3", 5, 6, noise=0),  # cos ~0.78, same time
    ])  # fmt: skip
    by_tracklet = {link.tracklet_id: link.global_id for link in links}
    assert by_tracklet["t-2"] == a.global_id
    assert by_tracklet["t-3"] not in (a.global_id, None)


def test_two_members_updated_in_one_batch_both_stay():
    m = matcher(overlapping_cameras=[("cam1", "cam2")])  # both in view at once: overlapping
    a = m.update([clip(0, "cam1", "t-1", 0, 2)])[0]
    m.update([clip(0, "cam2", "t-2", 1, 3, seed=1)])
    links = m.update([clip(0, "cam1", "t-1", 2, 3, seed=2), clip(0, "cam2", "t-2", 3, 4, seed=3)])
    assert {link.global_id for link in links} == {a.global_id}


def test_a_lone_tracklet_joins_an_identity_once_it_looks_like_it():
    m = matcher(threshold=0.7)
    (a,) = m.update([clip(0, "cam1", "t-1", 0, 2)])
    m.close([ended("t-1", "cam1", 2.0)])
    blend = PEOPLE[0] / np.linalg.norm(PEOPLE[0]) + PEOPLE[2] / np.linalg.norm(PEOPLE[2])
    (b,) = m.update([clip(blend, "cam2", "t-2", 5, 6, noise=0)])  # cos ~0.7: unsure
    assert b.global_id != a.global_id
    for k in range(4):  # clearer clips pull its mean towards person 0
        (b,) = m.update([clip(0, "cam2", "t-2", 6 + k, 7 + k, seed=10 + k)])
    assert b.global_id == a.global_id and b.similarity > 0.7
    assert m.identities == 1  # its first identity had no one else: gone


def test_a_member_that_stops_looking_like_its_identity_leaves_it():
    m = matcher(threshold=0.6, switch_margin=0.05)
    a = m.update([clip(0, "cam1", "t-1", 0, 2)])[0]
    m.close([ended("t-1", "cam1", 2.0)])
    assert m.update([clip(0, "cam2", "t-2", 4, 5, seed=1)])[0].global_id == a.global_id
    for k in range(6):  # its later clips show someone else
        (b,) = m.update([clip(3, "cam2", "t-2", 5 + k, 6 + k, seed=20 + k)])
    assert b.global_id != a.global_id and b.is_new_identity


def test_identities_expire_after_ttl_in_stream_time():
    m = matcher(ttl_s=10.0)
    (a,) = m.update([clip(0, "cam1", "t-1", 0, 2)])
    m.close([ended("t-1", "cam1", 2.0)])
    (b,) = m.update([clip(0, "cam2", "t-2", 11, 12, seed=1)])  # 9 s after: still known
    assert b.global_id == a.global_id
    m.close([ended("t-2", "cam2", 12.0)])
    m.update([clip(5, "cam1", "t-3", 30, 31)])  # stream time moves on to 31 s
    (c,) = m.update([clip(0, "cam3", "t-4", 31, 32, seed=2)])  # last seen at 12 s: forgotten
    assert c.global_id != a.global_id


def test_gallery_is_bounded_forgetting_the_identity_seen_longest_ago():
    m = matcher(max_identities=3)
    first = [m.update([clip(p, "cam1", f"t-{p}", p, p + 0.5)])[0] for p in range(5)]
    assert m.identities == 3
    assert m.global_id_of("cam1", "t-0") is None
    assert m.global_id_of("cam1", "t-4") == first[4].global_id


def test_embeddings_of_another_model_are_refused():
    m = matcher()
    m.update([clip(0, "cam1", "t-1", 0, 1)])
    with pytest.raises(ValueError, match="model 'other'"):
        m.update([clip(0, "cam1", "t-2", 0, 1, model="other")])


def test_a_tracklet_id_another_camera_reuses_is_another_tracklet():
    """Tracklets are keyed by camera too: a clip from cam2 that carries cam1's tracklet id (a
    misconfigured worker, or anyone writing to the topic) neither joins nor moves cam1's
    tracklet, and ending it on cam2 leaves cam1's open."""
    m = matcher()
    (a,) = m.update([clip(0, "cam1", "t-1", 0, 2)])
    (b,) = m.update([clip(7, "cam2", "t-1", 1, 3, seed=1)])  # another person, same id
    assert b.global_id != a.global_id and b.camera_id == "cam2"
    assert m.global_id_of("cam1", "t-1") == a.global_id
    assert m.global_id_of("cam2", "t-1") == b.global_id
    m.close([ended("t-1", "cam2", 3.0)])
    assert m._tracklets[("cam1", "t-1")].open and not m._tracklets[("cam2", "t-1")].open
    # cam1's tracklet still has exactly its own clip: its vector is person 0's.
    own = clip(0, "cam1", "t-9", 0, 2).embedding  # the same clip as cam1's (same seed)
    assert m._tracklets[("cam1", "t-1")].vector @ own / np.linalg.norm(own) > 0.999


def test_random_streams_never_break_the_constraints():
    """Many look-alike people on four cameras, clips arriving in batches: whatever the matcher
    decides, no global id has two overlapping sightings on one camera, or on two cameras that
    do not overlap (cam3 and cam4 do)."""
    rng = np.random.default_rng(1)
    m = matcher(threshold=0.3, overlapping_cameras=[("cam3", "cam4")])
    look = rng.standard_normal((3, DIM)).astype(np.float32)  # 3 looks for many people
    events = []
    for n in range(60):
        camera = f"cam{rng.integers(1, 5)}"
        start = float(rng.uniform(0, 60))
        person = look[rng.integers(0, 3)]
        for k in range(int(rng.integers(1, 4))):
            events.append(clip(person, camera, f"t-{n}", start, start + 1 + k,
                               noise=0.3, seed=n * 10 + k))  # fmt: skip
    events.sort(key=lambda e: e.end_time)
    for i in range(0, len(events), 5):
        m.update(events[i : i + 5])
    for identity in m._identities.values():
        for x, y in itertools.combinations(identity.members.values(), 2):
            overlap = x.start_time <= y.end_time and y.start_time <= x.end_time
            if overlap:
                assert {x.camera_id, y.camera_id} == {"cam3", "cam4"}, (x, y)


def test_two_lone_tracklets_decided_together_do_not_swap_ids():
    m = matcher()
    (a,) = m.update([clip(0, "cam1", "t-1", 0, 2)])
    (b,) = m.update([clip(0, "cam2", "t-2", 1, 3, seed=1)])  # overlaps: its own id
    assert a.global_id != b.global_id
    # Both get a clip in one batch; each looks like the other, neither may take the other's id
    # from under it.
    links = m.update([clip(0, "cam1", "t-1", 2, 3, seed=2), clip(0, "cam2", "t-2", 3, 4, seed=3)])
    assert {link.global_id for link in links} == {a.global_id, b.global_id}


def test_expiry_forgets_in_order_of_last_sighting_and_spares_the_batch():
    """Expiry follows when each identity was last seen, however its members moved it: a member
    seen later keeps its identity, and the tracklets of the current batch are never forgotten."""
    m = matcher(ttl_s=10.0)
    ids = [m.update([clip(p, f"cam{p}", f"t-{p}", p, p + 1)])[0].global_id for p in range(4)]
    m.close([ended(f"t-{p}", f"cam{p}", p + 1) for p in range(4)])
    (late,) = m.update([clip(0, "cam0", "t-10", 8, 9, seed=5)])  # person 0 seen again at 9 s
    assert late.global_id == ids[0]
    m.close([ended("t-10", "cam0", 9)])
    m.update([clip(9, "cam9", "t-11", 12.5, 13.5)])  # forgets those last seen before 3.5 s
    assert [m.global_id_of(f"cam{p}", f"t-{p}") for p in range(4)] == [ids[0], None, None, ids[3]]
    # A late clip of an old tracklet: stream time moves to 30 s but the batch keeps its own.
    m.update([clip(3, "cam3", "t-3", 3, 4, seed=6), clip(8, "cam8", "t-12", 29, 30)])
    assert m.global_id_of("cam3", "t-3") == ids[3] and m.global_id_of("cam0", "t-0") is None


def test_the_bound_forgets_the_earliest_created_among_equally_old():
    m = matcher(max_identities=2)
    links = [m.update([clip(p, f"cam{p}", f"t-{p}", 0, 1)])[0] for p in range(3)]
    assert m.identities == 2  # all last seen at 1 s: the first one made goes
    assert [m.global_id_of(f"cam{p}", f"t-{p}") for p in range(3)] == [None] + [
        link.global_id for link in links[1:]
    ]


def test_enrolled_identities_are_matched_like_learned_ones():
    m = matcher()
    gid = m.enroll([clip(0, "cam1", "t-1", 0, 2), clip(0, "cam2", "t-2", 5, 6, seed=1)])
    m.close([ended("t-1", "cam1", 2), ended("t-2", "cam2", 6)])
    assert m.identities == 1 and m.similar(PEOPLE[:2])[0].keys() == {gid}
    assert m.update([clip(0, "cam3", "t-3", 9, 10, seed=2)])[0].global_id == gid
    with pytest.raises(ValueError, match="known"):
        m.enroll([clip(1, "cam1", "t-1", 20, 21)])


def test_an_unknown_index_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="exact, faiss"):
        matcher(index="annoy")


def _stream(rng: np.random.Generator, looks: np.ndarray, batches: int) -> list[list[ClipEmbedding]]:
    """Batches of 8 clips: new tracklets of gallery people and of new ones, on 4 cameras."""
    out = []
    for b in range(batches):
        batch = []
        for k, person in enumerate(rng.integers(0, len(looks), 8)):
            look = looks[person] if k % 2 else rng.standard_normal(looks.shape[1])
            batch.append(clip(look, f"cam{k % 4}", f"q{b}-{b * 8 + k}", 1000 + b, 1001 + b,
                              noise=0.02, seed=b * 8 + k))  # fmt: skip
        out.append(batch)
    return out


def test_the_faiss_index_searching_every_list_links_as_the_exact_product():
    """With every inverted list probed the index finds what the product finds, so both paths
    give the same links, through index updates (new, moved and forgotten identities)."""
    pytest.importorskip("faiss", reason="the FAISS path needs pip install 'reidstream[faiss]'")
    rng = np.random.default_rng(3)
    n = 25_000  # enough identities for the index to be trained (39 per list, 4 sqrt(n) lists)
    looks = rng.standard_normal((n, DIM)).astype(np.float32)
    runs, nbytes = [], []
    for index in ("exact", "faiss"):
        m = matcher(index=index, nprobe=10_000, max_identities=n, ttl_s=1e9)
        for p in range(n):
            m.enroll([clip(looks[p], f"cam{p % 4}", f"g{p}-{p}", p / 100, p / 100 + 1,
                           noise=0.02, seed=p)])  # fmt: skip
        m.close([ended(f"g{p}-{p}", f"cam{p % 4}", p / 100 + 1) for p in range(n)])
        runs.append([m.update(batch) for batch in _stream(np.random.default_rng(4), looks, 6)])
        assert m.identities == n
        nbytes.append(m.gallery_nbytes)
    assert nbytes[1] > nbytes[0]  # the index was built: it holds a copy of the vectors
    exact, approx = (
        [[(x.tracklet_id, x.global_id) for x in links] for links in run] for run in runs
    )
    assert exact == approx
    joined = sum(g.startswith("g-") and int(g[2:]) <= n for links in exact for _, g in links)
    assert joined > 0  # some queries did join gallery identities

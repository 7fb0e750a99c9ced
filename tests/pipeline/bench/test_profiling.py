"""The profiler's figures from known records, what "keeping up" means, and the null models."""

from __future__ import annotations

import time

import numpy as np
import pytest

from detectors import create_tracker
from pipeline.bench.nulls import NullDetector, NullEngine
from pipeline.bench.profiling import Profiler, Sample, keeps_up
from pipeline.stream.types import Frame
from reid_models import PretrainedCfg


def _sample(t, depth, frames, dropped, cpu_s, rss=100 * 2**20):
    return Sample(
        t=t,
        depths={"embed": depth},
        frames={"cam1": frames, "cam2": frames},
        dropped={"cam1": dropped, "cam2": 0},
        cpu_s=cpu_s,
        rss=rss,
    )


@pytest.fixture
def recorded() -> Profiler:
    """Ten seconds of a made-up run: 2 cameras at 10 frames/s, one clip batch a second."""
    p = Profiler()
    for i in range(11):  # samples at t = 0..10; the embed queue grows from 0 to 10
        p.samples.append(_sample(float(i), i, frames=10 * i, dropped=i // 5, cpu_s=0.5 * i))
    for i in range(100):  # detect: one frame per camera every 0.1 s, 3 boxes each
        t = i / 10
        p.stage_batch("detect", t, 0.01, [None, None], [])
        p.frames += [(t + 0.01, "cam1", 3), (t + 0.01, "cam2", 3)]
    for i in range(10):  # embed: batches of 1, 2, 3, 4, 1, 2, ... taking 0.1 .. 1.0 s
        p.stage_batch("embed", float(i), (i + 1) / 10, [None] * (i % 4 + 1), [])
    p.links += [(float(i), 0.05 * (i + 1), False) for i in range(10)]
    p.links += [(9.5, 1.2, True)]  # a tracklet's last clip, cut when it was lost
    return p


def test_report_figures_follow_from_the_records(recorded):
    r = recorded.report(0.0, 10.0, source_fps=10.0)
    assert r.window_s == 10.0 and r.cameras == 2 and r.source_fps == 10.0
    assert r.fps_per_camera == {"cam1": pytest.approx(10.0), "cam2": pytest.approx(10.0)}
    assert r.frames_in == 200 and r.frames_dropped == 2
    assert r.detections == 600 and r.links == 11
    assert r.cpu_cores == pytest.approx(0.5)
    assert r.us_per_detection == pytest.approx(1e6 * 5.0 / 600)
    assert r.us_per_frame == pytest.approx(1e6 * 5.0 / 200)
    assert r.rss_mb == pytest.approx(100.0)
    assert r.frame_to_link_ms["p50"] == pytest.approx(np.percentile(np.arange(1, 11) * 50, 50))
    assert r.closing_link_ms == {"p50": 1200.0, "p95": 1200.0, "p99": 1200.0}
    assert len(r.latencies_ms) == 10  # the links of clips cut in view
    embed = r.stages["embed"]
    assert embed.items_per_s == pytest.approx(sum(i % 4 + 1 for i in range(10)) / 10)
    # busy: the batches take 0.1 .. 1.0 s, the last one cut at the window's end.
    assert embed.busy == pytest.approx((sum((i + 1) / 10 for i in range(9)) + 1.0) / 10)
    assert embed.batches == 10 and embed.batch_mean == pytest.approx(2.3)
    assert embed.batch_histogram == {"<=1": 3, "<=2": 3, "<=4": 4}
    assert embed.latency_ms["p99"] == pytest.approx(np.percentile(np.arange(1, 11) * 100, 99))
    assert embed.queue_max == 10 and embed.queue_growth == pytest.approx(9.0)
    assert r.stages["detect"].items_per_s == pytest.approx(20.0)
    assert r.queue_series["embed"][0] == (0.0, 0) and r.queue_series["embed"][-1] == (10.0, 10)


def test_report_windows_leave_out_what_is_outside(recorded):
    r = recorded.report(5.0, 10.0, source_fps=10.0)
    assert r.frames_in == 100 and r.frames_dropped == 1
    assert r.links == 6 and r.stages["embed"].batches == 5
    with pytest.raises(ValueError, match="empty window"):
        recorded.report(3.0, 3.0, source_fps=10.0)


def test_keeping_up_names_each_reason(recorded):
    r = recorded.report(0.0, 10.0, source_fps=10.0)
    # The embed queue grew by 9 items (9.5 - 0.5), more than 2 and 10% of a capacity of 16.
    assert keeps_up(r, {"embed": 16}) == "embed queue grew by 9"
    assert keeps_up(r, {"embed": 200}) == ""  # 9 < 10% of 200
    slow = recorded.report(0.0, 10.0, source_fps=12.0)
    assert "slowest camera 10.0 of 12.0 frames/s" in keeps_up(slow, {"embed": 200})
    recorded.samples[-1].dropped["cam2"] = 50
    dropping = recorded.report(0.0, 10.0, source_fps=10.0)
    assert "26.0% of frames dropped" in keeps_up(dropping, {"embed": 200})


def test_sampler_records_process_and_queues():
    p = Profiler(interval_s=0.01)
    depth = {"q": 0}
    p.start(depths=lambda: dict(depth), cameras=list)
    depth["q"] = 3
    time.sleep(0.1)
    p.stop()
    assert len(p.samples) >= 3
    assert p.samples[0].depths == {"q": 0} and p.samples[-1].depths == {"q": 3}
    assert all(s.rss > 0 and s.cpu_s > 0 for s in p.samples)
    assert [s.t for s in p.samples] == sorted(s.t for s in p.samples)


def test_null_detector_walks_boxes_a_tracker_follows():
    detector = NullDetector(people=4, speed=2.0)
    tracker = create_tracker("bytetrack")
    frame = np.zeros((360, 640, 3), np.uint8)
    ids = []
    for _ in range(20):
        (found,) = detector.detect([frame])
        assert len(found) == 4 and found.metadata["image_size"] == (360, 640)
        assert (found.xyxy[:, 0] >= 0).all() and (found.xyxy[:, 2] <= 640).all()
        ids.append(sorted(tracker.update(found, frame).tracker_id.tolist()))
    assert all(i == ids[-1] for i in ids[5:]) and len(ids[-1]) == 4  # 4 steady tracks
    assert NullDetector(people=0).detect([frame])[0].xyxy.shape == (0, 4)
    with pytest.raises(ValueError, match="people"):
        NullDetector(people=-1)


def test_null_engine_keeps_the_contract_of_the_model_it_replaces():
    cfg = PretrainedCfg(paper="none", embedding_dim=512)
    engine = NullEngine(cfg, clip_len=8, max_batch=4)
    clips = np.random.default_rng(0).integers(0, 255, (6, 8, 64, 32, 3), dtype=np.uint8)
    out = engine.embed(clips)
    assert out.shape == (6, cfg.embedding_dim) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(out, engine.embed(clips))  # the same clip, the same vector
    assert not np.allclose(out[0], out[1])
    assert engine.clip_len == 8 and engine.max_batch == 4


def test_frames_reach_the_profiler_through_the_detect_stage():
    p = Profiler()
    frames = [Frame("cam1", 0, 0.0, np.zeros((4, 4, 3), np.uint8))]
    p.stage_batch("detect", 1.0, 0.5, frames, [(frames[0], [1, 2, 3])])
    assert p.frames == [(1.5, "cam1", 3)] and p.batches == {"detect": [(1.0, 0.5, 1)]}


def test_links_of_a_tracklets_last_clip_are_told_apart():
    """The tracklet stage's observer marks the clips cut when a tracklet closed; the publish
    stage's files their links apart from the links of clips cut in view."""
    from pipeline.messages.types import IdentityLink, TrackletClosed
    from pipeline.stream.types import Clip

    def clip(tracklet: str, end: float) -> Clip:
        return Clip(
            camera_id="cam1",
            track_id=1,
            tracklet_id=tracklet,
            frame_indices=np.arange(2),
            timestamps=np.array([end - 0.1, end]),
            boxes=np.zeros((2, 4), np.float32),
            crops=np.zeros((2, 8, 4, 3), np.uint8),
            tracklet_start=0.0,
        )

    p = Profiler()
    closed = TrackletClosed("cam1", 1, "t1", 5.5)
    p.stage_batch("tracklets", 0.0, 0.1, [], [clip("t1", 5.0), closed, clip("t2", 5.0)])
    assert p.closing_clips == {("t1", 5.0)}

    def link(tracklet: str, end: float) -> IdentityLink:
        return IdentityLink("g-1", "cam1", 1, tracklet, 0.0, end, None)

    closed_again = TrackletClosed("cam1", 2, "t3", 6.0)  # not a link: no latency
    p.stage_batch("publish", 1.0, 0.1, [link("t1", 5.0), link("t2", 5.0), closed_again], [])
    p.stage_batch("publish", 2.0, 0.1, [link("t1", 4.0)], [])
    assert [closing for _, _, closing in p.links] == [True, False, False]
    assert all(latency > 0 for _, latency, _ in p.links)

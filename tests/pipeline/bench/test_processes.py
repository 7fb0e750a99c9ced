"""Measuring `reidstream run run.workers=W` from outside: the figures from two scrapes and the
links file."""

from __future__ import annotations

import json

import pytest

from pipeline.bench.processes import _report, _Scrape


def _link(tracklet: str, event: str, end: float, produced: float) -> str:
    return json.dumps(
        {"tracklet_id": tracklet, "event_id": event, "end_time": end, "produced_at": produced}
    )


def test_figures_come_from_the_counters_and_the_links_in_the_window(tmp_path):
    first = _Scrape(100.0, {"cam1": 50.0, "cam2": 40.0}, 5.0, 95.0, cpu_s=10.0, rss=2**20, load=0.5)
    last = _Scrape(
        110.0, {"cam1": 230.0, "cam2": 200.0}, 25.0, 455.0, cpu_s=25.0, rss=3 * 2**20, load=1.5
    )
    links = tmp_path / "links.jsonl"
    links.write_text(
        "\n".join([
            _link("a", "1", 90.0, 99.0),    # before the window: left out
            _link("a", "2", 101.0, 101.2),  # ongoing: 200 ms
            _link("a", "3", 102.0, 102.4),  # ongoing: 400 ms
            _link("a", "4", 103.0, 104.5),  # a's last link: counted apart, 1500 ms
            _link("b", "5", 105.0, 105.3),  # b's only link is its last: apart, 300 ms
        ]) + "\n"
    )  # fmt: skip
    report = _report(first, last, links, 2, 18.0)
    assert report.fps_per_camera == {"cam1": 18.0, "cam2": 16.0}
    assert report.total_fps == 34.0 and report.min_fps == 16.0
    assert (report.frames_in, report.frames_dropped) == (360, 20)
    assert report.links == 4
    assert report.frame_to_link_ms["p50"] == pytest.approx(300.0)
    assert report.closing_link_ms["p50"] == pytest.approx(900.0)
    assert report.cpu_cores == pytest.approx(1.5)
    assert report.us_per_frame == pytest.approx(1e6 * 15 / 340)
    assert report.rss_mb == 3.0
    assert report.load_1min == (0.5, 1.5)  # the machine's load at the window's start and end


def test_no_links_file_is_no_links(tmp_path):
    scrape = _Scrape(0.0, {"cam1": 0.0}, 0.0, 0.0, cpu_s=0.0, rss=0, load=None)
    later = _Scrape(1.0, {"cam1": 10.0}, 0.0, 10.0, cpu_s=0.5, rss=0, load=None)
    report = _report(scrape, later, tmp_path / "links.jsonl", 1, 10.0)
    assert report.links == 0 and report.frame_to_link_ms == {}

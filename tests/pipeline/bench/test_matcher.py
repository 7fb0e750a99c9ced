"""`reidstream bench matcher` on a tiny gallery: the report's structure and that its figures are
real numbers (never timing thresholds: the machines are shared)."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

from pipeline.bench import matcher as bench_matcher
from pipeline.cli import main
from pipeline.matching.matcher import Matcher

INDEXES = ["exact"] + (["faiss"] if importlib.util.find_spec("faiss") else [])


def test_the_benchmark_prints_a_table_and_writes_one_json_row_per_combination(tmp_path, capsys):
    out = tmp_path / "matcher.json"
    argv = ["--identities", "200", "--dim", "64", "--batches", "3", "--batch", "8",
            "--index", ",".join(INDEXES), "--json", str(out)]  # fmt: skip
    assert main(["bench", "matcher", *argv]) == 0
    table = capsys.readouterr().out
    assert "| identities | dim | index | p50 ms |" in table
    rows = json.loads(out.read_text())["rows"]
    assert [(r["identities"], r["dim"], r["index"]) for r in rows] == [
        (200, 64, index) for index in INDEXES
    ]
    for row in rows:
        assert row["batch"] == 8 and row["batches"] == 3
        for key in ("p50_ms", "p95_ms", "p99_ms", "queries_per_s", "first_batch_ms",
                    "gallery_mib", "build_s"):  # fmt: skip
            assert math.isfinite(row[key]) and row[key] > 0, key
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert math.isfinite(row["rss_growth_mib"]) and row["searched"] in ("exact", "faiss")
        assert (row["recall"] is None) == (row["index"] == "exact")
        if row["recall"] is not None:
            assert 0.0 <= row["recall"] <= 1.0


def test_the_gallery_stays_full_and_the_queries_join_some_of_it():
    rng = np.random.default_rng(0)
    m = Matcher(max_identities=300, id_prefix="g", silent_tracklet_s=30.0)
    looks = bench_matcher.build_gallery(m, identities=300, dim=32, cameras=4, rng=rng)
    assert m.identities == 300
    stream = bench_matcher.QueryStream(looks, cameras=4, rng=rng)
    joined = 0
    for _ in range(5):
        links = m.update(stream.batch(16))
        m.close(stream.closed)
        joined += sum(int(link.global_id[2:]) <= 300 for link in links)  # enrolled: g-1..g-300
    assert m.identities == 300 and joined > 0


@pytest.mark.parametrize("bad", ["0", "ten", "1,,2"])
def test_bad_sizes_are_refused(bad, capsys):
    with pytest.raises(SystemExit):
        main(["bench", "matcher", "--identities", bad])
    assert "--identities" in capsys.readouterr().err

"""`reidstream demo`, the README's main command: the whole job on a small synthetic scene, its
links read back over Kafka by the reference consumer and scored."""

from __future__ import annotations

import re

import pytest
import yaml

from pipeline.cli import main


@pytest.mark.slow
@pytest.mark.kafka
def test_the_demo_publishes_reads_back_and_scores_the_links(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "synthetic.people=4", "synthetic.duration_s=30"]) == 0
    printed = capsys.readouterr().out
    assert "demo: Kafka-protocol broker (Tansu) on 127.0.0.1:" in printed
    received = re.search(r"the consumer received (\d+) links \((\d+) duplicates dropped\)", printed)
    assert received is not None and int(received[1]) > 0, printed[-2000:]
    delivered = re.search(r'sink kafka: \{.*"delivered": (\d+)', printed)
    assert delivered is not None and int(received[1]) + int(received[2]) == int(delivered[1])
    score = re.search(r"IDF1 of the global ids received over Kafka: ([\d.]+)", printed)
    assert score is not None and 0.0 < float(score[1]) <= 100.0
    assert "  link  " in printed and "global ids for 4 people" in printed
    for name in ("mosaic.png", "tracks.csv", "summary.json", "config.yaml", "links.jsonl"):
        assert (out / name).is_file(), name


def test_without_a_broker_the_demo_writes_jsonl_only(tmp_path, capsys):
    out = tmp_path / "demo"
    args = [
        "demo",
        "--no-broker",
        "--out",
        str(out),
        "synthetic.people=2",
        "synthetic.duration_s=30",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "sink jsonl" in printed and "sink kafka" not in printed
    assert (out / "links.jsonl").read_text().count("reidstream.identity_link/1") > 0


def test_a_config_file_lies_over_the_demo_defaults_and_the_command_line_over_both(tmp_path, capsys):
    site = tmp_path / "f.yaml"
    site.write_text(
        f"matcher: {{threshold: 0.8}}\nmetrics: {{address: ''}}\n"
        f"run: {{out_dir: {tmp_path / 'from-file'}}}\ntracklets: {{min_height: 20}}\n"
    )
    argv = ["demo", "--no-broker", "--config", str(site), "tracklets.min_height=24"]
    assert main([*argv, "synthetic.people=2", "synthetic.duration_s=30"]) == 0
    assert "metrics on http" not in capsys.readouterr().out  # the file's '' serves none
    written = yaml.safe_load((tmp_path / "from-file" / "config.yaml").read_text())
    assert written["matcher"]["threshold"] == 0.8  # the file's, not the demo's 0.5
    assert written["metrics"]["address"] == ""
    assert written["tracklets"]["min_height"] == 24  # the command line's, over the file's
    assert written["run"]["record"] is True  # a demo default the file leaves alone

"""`reidstream doctor --config SITE.yaml`: the site's cameras, model files and broker, each a
line that fails for what is broken."""

from __future__ import annotations

import re

from pipeline.cli import main
from tests.video_sources import write_elementary, write_mp4

_BASE = ["doctor", "device=cpu", "kafka.bootstrap_servers=127.0.0.1:9"]


def test_a_site_whose_cameras_and_models_do_not_exist_fails_each(tmp_path, capsys):
    site = tmp_path / "site.yaml"
    site.write_text(
        f"cameras:\n  - {{id: door, uri: {tmp_path}/door.mp4}}\n"
        f"  - {{id: yard, uri: 'rtsp://user:hunter2@127.0.0.1:9/live'}}\n"
        f"detector: {{name: onnx-yolo, weights: {tmp_path}/yolo.onnx}}\n"
        f"reid: {{engine: external-onnx, onnx_path: {tmp_path}/osnet.onnx}}\n"
        "output: {sinks: [kafka]}\nsources: {open_timeout_s: 2}\n"
    )
    assert main([*_BASE, "--config", str(site)]) == 1
    out = capsys.readouterr().out
    lines = {line.split()[1] + line.split()[2]: line for line in out.splitlines() if "FAIL" in line}
    assert f"'{tmp_path}/door.mp4': video file not found" in lines["cameradoor"]
    assert "cannot be opened" in lines["camerayard"] and "hunter2" not in out
    assert re.search(r"FAIL  detector +.*yolo\.onnx", out)
    assert re.search(r"FAIL  reid model +.*osnet\.onnx", out)
    assert "FAIL  kafka" in out and "the configuration publishes to it" in out
    assert "5 failed (kafka, camera door, camera yard, detector, reid model)" in out


def test_a_working_site_passes(tmp_path, capsys):
    write_mp4(tmp_path / "door.mp4")
    write_elementary(tmp_path / "yard.264")
    site = tmp_path / "site.yaml"
    site.write_text(
        f"cameras:\n  - {{id: door, uri: {tmp_path}/door.mp4}}\n"
        f"  - {{id: yard, uri: {tmp_path}/yard.264}}\n"
        "detector: {name: hog}\noutput: {sinks: [jsonl]}\n"
    )
    assert main([*_BASE, "--config", str(site)]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"ok  camera door +{tmp_path}/door\.mp4: 96x64, 10 fps", out)
    assert re.search(rf"ok  camera yard +{tmp_path}/yard\.264: 96x64", out)
    assert re.search(r"ok  detector +hog loads", out) and re.search(r"ok  reid model ", out)
    assert "warn  kafka" in out and "0 failed" in out

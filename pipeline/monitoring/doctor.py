"""What `reidstream doctor` checks: that this machine can run reidstream, and what it would use.

Each check exercises the component for real (a tensor op on the configured device, OpenCV's HOG
people detector, ONNX Runtime's providers, a Kafka metadata request to the configured brokers)
rather than only importing it. Required components fail the command; optional ones (CUDA,
TensorRT, a reachable broker) are reported as warnings with what to do about them.

Given a site's configuration (`site_checks`), it also opens each camera and reads one frame
(through `detectors.video.open_capture`, as the job does), loads each model file the
configuration names, and makes a broker the site publishes to required: each failure is a FAIL
line naming the camera, model or broker and why.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import logging
import platform
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.config import redact_text

__all__ = ["Check", "run_checks", "site_checks"]

Status = Literal["ok", "warn", "FAIL"]

# Only one OpenCV distribution may be installed: each ships its own `cv2` and the last one
# installed silently overwrites the others' files.
_OPENCV_DISTRIBUTIONS = (
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
)


# The doctor waits this long for the first broker answer: long enough for a healthy cluster, short
# enough that `reidstream doctor` without a broker stays quick.
_KAFKA_BOOTSTRAP_TIMEOUT_MS = 3_000


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


def run_checks(
    *, device: str, kafka_options: Mapping[str, Any], kafka_required: bool = False
) -> list[Check]:
    """Runs every check; a check that raises is reported as failed, not propagated.

    Args:
        device: The configured torch device ('auto', 'cpu', 'cuda[:N]').
        kafka_options: The kafka-python client options of the configuration (brokers, TLS,
            SASL), as every client of reidstream connects.
        kafka_required: An unreachable broker fails (the site publishes to Kafka) rather than
            warns.
    """
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("python", _python),
        ("torch", lambda: _torch(device)),
        ("opencv", _opencv),
        ("ultralytics", _ultralytics),
        ("onnxruntime", _onnxruntime),
        ("tensorrt", _tensorrt),
        ("prometheus-client", lambda: _version_only("prometheus_client", "prometheus-client")),
        ("kafka", lambda: _kafka(kafka_options, kafka_required)),
    ]
    return _run(checks)


def site_checks(
    *,
    cameras: Sequence[tuple[str, str]],
    open_timeout_s: float,
    models: Mapping[str, Callable[[], str]],
) -> list[Check]:
    """Opens each camera and reads one frame, and loads each model.

    Args:
        cameras: (camera id, uri) of each camera.
        open_timeout_s: How long opening and reading a stream may take.
        models: Check name -> a loader that loads the model, releases it and describes it.
    """
    checks: list[tuple[str, Callable[[], Check]]] = [
        (f"camera {camera}", functools.partial(_camera, camera, uri, open_timeout_s))
        for camera, uri in cameras
    ]
    checks += [(name, functools.partial(_model, name, load)) for name, load in models.items()]
    return _run(checks)


def _run(checks: Sequence[tuple[str, Callable[[], Check]]]) -> list[Check]:
    results = []
    for name, check in checks:
        try:
            results.append(check())
        except Exception as e:  # a broken component is a finding, not a crash of the doctor
            logging.getLogger(__name__).debug("check %s raised", name, exc_info=True)
            results.append(Check(name, "FAIL", redact_text(f"{type(e).__name__}: {e}")))
    return results


def _camera(camera: str, uri: str, timeout_s: float) -> Check:
    from detectors.video import open_capture

    name = f"camera {camera}"
    capture = open_capture(uri, open_timeout_s=timeout_s, read_timeout_s=timeout_s)
    try:
        ok, image = capture.read()
    finally:
        capture.close()
    if not ok or image is None:
        return Check(name, "FAIL", redact_text(f"{uri}: opened, but no frame could be read"))
    fps = f", {capture.fps:g} fps" if capture.fps else ""
    return Check(name, "ok", redact_text(f"{uri}: {image.shape[1]}x{image.shape[0]}{fps}"))


def _model(name: str, load: Callable[[], str]) -> Check:
    return Check(name, "ok", load())


def _python() -> Check:
    return Check("python", "ok", f"{platform.python_version()} ({platform.machine()})")


def _torch(device: str) -> Check:
    import torch

    cuda = torch.cuda.is_available()
    resolved = ("cuda" if cuda else "cpu") if device == "auto" else device
    x = torch.arange(6, dtype=torch.float32, device=resolved).reshape(2, 3)
    # [[0, 1, 2], [3, 4, 5]] times its transpose is [[5, 14], [14, 50]]: 83 in all.
    if float((x @ x.T).sum()) != 83.0:
        return Check("torch", "FAIL", f"wrong result of a matrix product on {resolved}")
    where = (
        torch.cuda.get_device_name(torch.device(resolved)) if resolved.startswith("cuda") else "CPU"
    )
    status: Status = "ok" if cuda or device == "cpu" else "warn"
    note = "" if cuda else "; no CUDA device: models run on the CPU"
    return Check("torch", status, f"{torch.__version__}, device {resolved} ({where}){note}")


def _opencv() -> Check:
    import cv2
    import numpy as np

    installed = [d for d in _OPENCV_DISTRIBUTIONS if _installed(d)]
    if len(installed) > 1:
        return Check(
            "opencv",
            "FAIL",
            f"several OpenCV distributions installed ({', '.join(installed)}): they overwrite each "
            f"other's cv2; uninstall all but opencv-python-headless",
        )
    if not cv2.__version__.startswith("4."):
        return Check(
            "opencv", "FAIL", f"cv2 {cv2.__version__}: need 4.x (5 drops the HOG detector)"
        )
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    hog.detectMultiScale(np.zeros((128, 64, 3), np.uint8))
    return Check(
        "opencv", "ok", f"cv2 {cv2.__version__} from {installed[0]}; HOG people detector runs"
    )


def _ultralytics() -> Check:
    import ultralytics

    import detectors  # noqa: F401  # sets YOLO_OFFLINE before ultralytics is imported

    return Check("ultralytics", "ok", f"{ultralytics.__version__} (offline: never downloads)")


def _onnxruntime() -> Check:
    import onnx
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    return Check(
        "onnxruntime",
        "ok",
        f"{onnxruntime.__version__} (onnx {onnx.__version__}); providers: {', '.join(providers)}",
    )


def _tensorrt() -> Check:
    found = [f"{m} {_module_version(m)}" for m in ("tensorrt", "torch_tensorrt") if _importable(m)]
    if found:
        return Check("tensorrt", "ok", ", ".join(found))
    return Check(
        "tensorrt",
        "warn",
        "not installed (optional, GPU only): pip install 'reidstream[tensorrt]' on a machine with "
        "CUDA, or use an NVIDIA PyTorch container, which ships TensorRT",
    )


def _version_only(module: str, distribution: str) -> Check:
    importlib.import_module(module)
    return Check(distribution, "ok", importlib.metadata.version(distribution))


def _kafka(options: Mapping[str, Any], required: bool) -> Check:
    import kafka
    from kafka import KafkaConsumer
    from kafka.errors import KafkaTimeoutError

    servers = ",".join(options["bootstrap_servers"])
    # The client logs every refused connection; the check reports the outcome in one line instead.
    with _silenced("kafka"):
        try:
            consumer = KafkaConsumer(**options, bootstrap_timeout_ms=_KAFKA_BOOTSTRAP_TIMEOUT_MS)
        except KafkaTimeoutError:
            need = (
                "the configuration publishes to it (output.sinks); check kafka.bootstrap_servers "
                "and the TLS/SASL keys"
                if required
                else "needed only to publish to Kafka; set kafka.bootstrap_servers"
            )
            return Check(
                "kafka",
                "FAIL" if required else "warn",
                f"kafka-python {kafka.__version__}; no broker reachable at {servers} ({need})",
            )
        try:
            topics = consumer.topics()
        finally:
            consumer.close()
    return Check(
        "kafka",
        "ok",
        f"kafka-python {kafka.__version__}; broker at {servers}, {len(topics)} topics",
    )


@contextlib.contextmanager
def _silenced(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _module_version(module: str) -> str:
    return str(getattr(importlib.import_module(module), "__version__", "?"))

"""A file cache of built inference engines (TensorRT plans), keyed by everything a plan depends on.

A TensorRT plan is only valid for the exact network, TensorRT version and GPU it was built on, and
it encodes the precision and the optimisation profile (the batch range) chosen at build time.
Building takes minutes, so plans are cached:

    EngineKey(model_sha256, backend_version, gpu_name, compute_capability, precision,
              input_profile (min, opt, max shapes), calibration digest)
        └─ digest() ─▶ ROOT/<model sha[:12]>-<precision>-<digest[:16]>.engine   the plan bytes
                       ROOT/<model sha[:12]>-<precision>-<digest[:16]>.json     key + sha256 of plan

The JSON record is written after the plan and is the commit marker: a plan without its record, a
record whose key differs, or a plan whose size or sha256 differs from the record is a corrupt
entry; `load` logs a warning, removes it and reports a miss, so the caller rebuilds. Both files
are written atomically (a temporary file in the same folder, fsync, `os.replace`), so a reader
never sees half a plan and two processes building the same key at once both leave a valid entry.
A plan the runtime still refuses to deserialise (a driver update, say) is dropped with `discard`.

Pure Python on purpose: nothing here imports TensorRT, so the keying and the file handling are
tested on any machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["CacheResult", "EngineCache", "EngineKey", "sha256_file"]

logger = logging.getLogger(__name__)

#: Version of the record layout; a record of another version is treated as corrupt.
_RECORD_SCHEMA = "reidstream.engine_cache/1"

Shape = tuple[int, ...]


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (the model hash of a key is that of the ONNX file)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything a built engine depends on; two keys are equal iff a plan is interchangeable.

    Attributes:
        model_sha256: sha256 of the ONNX file's bytes the plan was built from.
        backend_version: The builder's version (``tensorrt.__version__``); plans do not load
            across versions.
        gpu_name: ``torch.cuda.get_device_name``; tactics are timed on this GPU.
        compute_capability: ``"major.minor"``; plans do not load across architectures.
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8``.
        input_profile: (min, opt, max) input shapes of the optimisation profile, each
            (B, C, T, H, W).
        calibration: Digest of the int8 calibration data and table; empty for other precisions.
    """

    model_sha256: str
    backend_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    input_profile: tuple[Shape, Shape, Shape]
    calibration: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", self.model_sha256):
            raise ValueError(
                f"model_sha256 must be 64 lowercase hex digits, got {self.model_sha256!r}"
            )
        shapes = self.input_profile
        if len(shapes) != 3 or any(len(s) != len(shapes[0]) for s in shapes):
            raise ValueError(f"input_profile must be (min, opt, max) shapes, got {shapes}")
        if not all(lo <= mid <= hi for lo, mid, hi in zip(*shapes, strict=True)):
            raise ValueError(f"input_profile must satisfy min <= opt <= max per axis, got {shapes}")

    def to_dict(self) -> dict[str, object]:
        """The key as JSON-ready data (tuples become lists)."""
        data = asdict(self)
        data["input_profile"] = [list(s) for s in self.input_profile]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> EngineKey:
        profile = tuple(tuple(int(v) for v in shape) for shape in data["input_profile"])  # type: ignore[union-attr]
        return cls(**{**data, "input_profile": profile})  # type: ignore[arg-type]

    def digest(self) -> str:
        """Hex sha256 of the key's canonical JSON."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def stem(self) -> str:
        """File name stem: readable prefix (model, precision) + the key digest."""
        return f"{self.model_sha256[:12]}-{self.precision}-{self.digest()[:16]}"


@dataclass(frozen=True)
class CacheResult:
    """What `EngineCache.get_or_build` returns."""

    payload: bytes
    path: Path
    hit: bool


class EngineCache:
    """Built engines on disk under `root`, one `.engine` + `.json` pair per `EngineKey`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, key: EngineKey) -> Path:
        return self.root / f"{key.stem}.engine"

    def _record_path(self, key: EngineKey) -> Path:
        return self.root / f"{key.stem}.json"

    def load(self, key: EngineKey) -> bytes | None:
        """The cached plan of `key`, or None on a miss; a corrupt entry is removed, warning."""
        path, record_path = self.path_for(key), self._record_path(key)
        if not path.exists() and not record_path.exists():
            return None
        problem = self._check(key, path, record_path)
        if problem is not None:
            self.discard(key, reason=problem)
            return None
        return path.read_bytes()

    def _check(self, key: EngineKey, path: Path, record_path: Path) -> str | None:
        """Why the entry of `key` is unusable, or None if the plan matches its record."""
        if not path.exists():
            return "the record has no plan file"
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return "the plan has no record (an interrupted write)"
        except (OSError, ValueError) as e:
            return f"unreadable record: {e}"
        if not isinstance(record, dict) or record.get("schema") != _RECORD_SCHEMA:
            return f"record schema is not {_RECORD_SCHEMA}"
        if record.get("key") != key.to_dict():
            return "the record belongs to another key"
        payload = path.read_bytes()
        if len(payload) != record.get("size"):
            return f"plan has {len(payload)} bytes, the record says {record.get('size')}"
        if hashlib.sha256(payload).hexdigest() != record.get("sha256"):
            return "plan bytes do not match the record's sha256"
        return None

    def store(self, key: EngineKey, payload: bytes) -> Path:
        """Writes the plan, then its record, each atomically; returns the plan's path."""
        if not payload:
            raise ValueError(f"refusing to cache an empty plan for key {key.stem}")
        self.root.mkdir(parents=True, exist_ok=True)
        record = {
            "schema": _RECORD_SCHEMA,
            "key": key.to_dict(),
            "size": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
        }
        path = self.path_for(key)
        _atomic_write(path, payload)
        _atomic_write(self._record_path(key), json.dumps(record, indent=2).encode())
        return path

    def discard(self, key: EngineKey, *, reason: str) -> None:
        """Removes the entry of `key` (if any), logging `reason` as a warning."""
        logger.warning("engine cache entry %s is unusable (%s); rebuilding", key.stem, reason)
        for path in (self._record_path(key), self.path_for(key)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def get_or_build(self, key: EngineKey, build: Callable[[], bytes]) -> CacheResult:
        """The cached plan of `key`, or `build()`'s, stored for next time."""
        payload = self.load(key)
        if payload is not None:
            logger.info("engine cache hit: %s", self.path_for(key))
            return CacheResult(payload=payload, path=self.path_for(key), hit=True)
        logger.info("engine cache miss: building %s", key.stem)
        payload = build()
        return CacheResult(payload=payload, path=self.store(key, payload), hit=False)


def _atomic_write(path: Path, data: bytes) -> None:
    """Writes `data` to `path` so that readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise

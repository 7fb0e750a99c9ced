"""Registries of detectors and trackers: a decorator next to each class, one factory each.

    @register_detector("onnx-yolo")
    class OnnxYoloDetector(Detector): ...

    create_detector("onnx-yolo", weights="yolov5n.onnx", confidence=0.1)  -> Detector
    create_tracker("bytetrack", track_buffer=60)                          -> Tracker

As in timm's `_registry.py`: an unknown name raises with the list of valid names, and an unknown
keyword argument raises with the keywords the class takes. The backends register themselves when
`detectors` is imported.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "Registry",
    "create_detector",
    "create_tracker",
    "list_detectors",
    "list_trackers",
    "register_detector",
    "register_tracker",
]

C = TypeVar("C", bound=Callable[..., Any])


class Registry:
    """Names mapped to factories (classes), with checked creation.

    Args:
        kind: What is registered ("detector", "tracker"), for error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[C], C]:
        """Class decorator registering the class under `name`."""

        def decorate(factory: C) -> C:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = factory
            return factory

        return decorate

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered as `name`.

        Raises:
            ValueError: `name` is not registered; the message lists the registered names.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names())}"
            ) from None

    def create(self, name: str, **kwargs: Any) -> Any:
        """Builds the `name` entry with keyword arguments checked against its signature."""
        factory = self.get(name)
        parameters = inspect.signature(factory).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        unknown = sorted(set(kwargs) - set(parameters))
        if unknown and not takes_any:
            valid = [n for n, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
            raise TypeError(
                f"{self.kind} {name!r} got unknown argument(s) {', '.join(unknown)}; "
                f"it takes: {', '.join(valid)}"
            )
        return factory(**kwargs)


_DETECTORS = Registry("detector")
_TRACKERS = Registry("tracker")

register_detector = _DETECTORS.register
register_tracker = _TRACKERS.register


def create_detector(name: str, **kwargs: Any) -> Any:
    """Builds the detector registered as `name` (see `list_detectors()`) with `kwargs`."""
    return _DETECTORS.create(name, **kwargs)


def list_detectors() -> list[str]:
    """Names of the registered detectors, sorted."""
    return _DETECTORS.names()


def create_tracker(name: str, **kwargs: Any) -> Any:
    """Builds the tracker registered as `name` (see `list_trackers()`) with `kwargs`."""
    return _TRACKERS.create(name, **kwargs)


def list_trackers() -> list[str]:
    """Names of the registered trackers, sorted."""
    return _TRACKERS.names()

"""`Closing`: the context-manager protocol for objects that own a resource and `close()` it."""

from __future__ import annotations

from typing import Self

__all__ = ["Closing"]


class Closing:
    """``with obj: ...`` calls ``obj.close()`` on the way out; subclasses override `close`."""

    def close(self) -> None:
        """Releases what the object holds; it must not be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

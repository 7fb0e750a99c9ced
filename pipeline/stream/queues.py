"""Bounded queues between the stages, with end of stream and batched reads.

    sources ──put──▶ FrameBuffer (one bounded deque per camera) ──take_batch──▶ detect
                      live camera full: its oldest frame is dropped (returned, counted)
                      file camera full: put waits (backpressure)
    stage ──put──▶ StageQueue (bounded FIFO) ──take_batch──▶ next stage
                      full: put waits, so a slow stage slows the ones before it
                      close(): end of stream; readers get what is left, then None

`FrameBuffer.pause` holds the frames back from the detector (while the sinks' disk refuses
writes): live cameras then drop their oldest frames, counted, and file cameras wait.

A batch closes when it has `max_items` or when `max_wait_s` has passed since its first item,
whichever comes first. The frame buffer takes at most one frame per camera per round, oldest
first, starting each batch with the camera after the one that started the last: a camera with a
backlog cannot crowd out the others, and each camera's frames stay in order.

Hand-written: `queue.Queue` has no drop-oldest policy, batched reads with a deadline or an end of
stream; these classes are those three things on a `threading.Condition`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from pipeline.stream.types import Frame

__all__ = ["FrameBuffer", "QueueClosed", "StageQueue"]

T = TypeVar("T")


class QueueClosed(RuntimeError):
    """`put` on a queue that was closed (the pipeline is shutting down)."""


class StageQueue(Generic[T]):
    """A bounded FIFO between two stages.

    Args:
        name: The stage that reads it (for messages and metrics).
        capacity: Most items held; `put` waits while it is full.
        on_depth: Called with the depth after each change (e.g. a gauge's `set`).
    """

    def __init__(
        self, name: str, capacity: int, *, on_depth: Callable[[int], None] | None = None
    ) -> None:
        if capacity < 1:
            raise ValueError(f"queue {name!r}: capacity must be >= 1, got {capacity}")
        self.name, self.capacity = name, capacity
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._on_depth = on_depth or (lambda depth: None)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T, *, timeout: float | None = None) -> bool:
        """Appends `item`, waiting while the queue is full.

        Returns:
            False if `timeout` passed with the queue still full.

        Raises:
            QueueClosed: The queue is closed.
        """
        with self._cond:
            ok = self._cond.wait_for(
                lambda: len(self._items) < self.capacity or self._closed, timeout
            )
            if self._closed:
                raise QueueClosed(f"queue {self.name!r} is closed")
            if not ok:
                return False
            self._items.append(item)
            self._on_depth(len(self._items))
            self._cond.notify_all()
            return True

    def put_many(self, items: Sequence[T]) -> None:
        """Appends `items` in order, as many at a time as there is room for, waiting while the
        queue is full: one lock round and one wake-up per run of room, not per item.

        Raises:
            QueueClosed: The queue is closed.
        """
        start = 0
        while start < len(items):
            with self._cond:
                self._cond.wait_for(lambda: len(self._items) < self.capacity or self._closed)
                if self._closed:
                    raise QueueClosed(f"queue {self.name!r} is closed")
                room = self.capacity - len(self._items)
                self._items.extend(items[start : start + room])
                start += room
                self._on_depth(len(self._items))
                self._cond.notify_all()

    def close(self) -> None:
        """Ends the stream: readers get the items left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take_batch(self, max_items: int, max_wait_s: float) -> list[T] | None:
        """Waits for an item, then up to `max_wait_s` for up to `max_items`.

        Returns:
            The batch (oldest first), or None once the queue is closed and empty.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._items or self._closed)
            if not self._items:
                return None
            deadline = time.monotonic() + max_wait_s
            while len(self._items) < max_items and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    break
            batch = [self._items.popleft() for _ in range(min(max_items, len(self._items)))]
            self._on_depth(len(self._items))
            self._cond.notify_all()
            return batch


class FrameBuffer:
    """The frames waiting for the detector, one bounded deque per camera.

    Args:
        capacity: Most frames waiting per camera.
        on_depth: Called with the total number of frames waiting after each change.
    """

    def __init__(self, capacity: int, *, on_depth: Callable[[int], None] | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"frame buffer: capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._frames: dict[str, deque[Frame]] = {}
        self._ended: set[str] = set()
        self._cond = threading.Condition()
        self._closed = False
        self._paused = False
        self._start = 0
        self._on_depth = on_depth or (lambda depth: None)

    def __len__(self) -> int:
        return sum(len(q) for q in self._frames.values())

    def pause(self, paused: bool) -> None:
        """Holds frames back from `take_batch` (True) or lets them go again (False); at the end
        of the stream the frames waiting go through regardless."""
        with self._cond:
            self._paused = paused
            self._cond.notify_all()

    def add_camera(self, camera_id: str) -> None:
        """Registers a camera; the buffer ends when every registered camera has ended."""
        with self._cond:
            self._frames.setdefault(camera_id, deque())

    def put(self, frame: Frame, *, live: bool) -> Frame | None:
        """Adds a camera's next frame.

        Args:
            frame: The frame; its camera must have been added.
            live: Drop the camera's oldest waiting frame when full, instead of waiting.

        Returns:
            The frame dropped to make room, if any.

        Raises:
            QueueClosed: The buffer is closed (shutting down).
        """
        with self._cond:
            queue = self._frames[frame.camera_id]
            dropped = None
            if live:
                if len(queue) >= self.capacity:
                    dropped = queue.popleft()
            else:
                self._cond.wait_for(lambda: len(queue) < self.capacity or self._closed)
            if self._closed:
                raise QueueClosed("frame buffer is closed")
            queue.append(frame)
            self._changed()
            return dropped

    def end_camera(self, camera_id: str) -> None:
        """A camera's stream is over; its waiting frames are still delivered."""
        with self._cond:
            self._ended.add(camera_id)
            self._cond.notify_all()

    def close(self) -> None:
        """Ends every camera at once (shutdown); waiting frames are still delivered."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _done(self) -> bool:
        return self._closed or self._ended >= self._frames.keys()

    def take_batch(self, max_items: int, max_wait_s: float) -> list[Frame] | None:
        """Up to `max_items` frames, round-robin over cameras (see the module docstring).

        Returns:
            The batch, or None once every camera has ended and no frame is waiting.
        """
        with self._cond:
            self._cond.wait_for(lambda: (len(self) > 0 and not self._paused) or self._done())
            if len(self) == 0:
                return None
            deadline = time.monotonic() + max_wait_s
            while len(self) < max_items and not self._done():
                left = deadline - time.monotonic()
                if left <= 0 or not self._cond.wait(left):
                    break
            batch = self._round_robin(max_items)
            self._changed()
            return batch

    def _round_robin(self, max_items: int) -> list[Frame]:
        cameras = list(self._frames)
        order = cameras[self._start :] + cameras[: self._start]
        self._start = (self._start + 1) % max(len(cameras), 1)
        batch: list[Frame] = []
        while len(batch) < max_items and any(self._frames[c] for c in order):
            for camera in order:
                if self._frames[camera] and len(batch) < max_items:
                    batch.append(self._frames[camera].popleft())
        return batch

    def _changed(self) -> None:
        self._on_depth(len(self))
        self._cond.notify_all()

"""Bounded queues: backpressure, drop-oldest for live cameras, fair batches, end of stream."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from pipeline.stream.queues import FrameBuffer, QueueClosed, StageQueue
from pipeline.stream.types import Frame

IMAGE = np.zeros((4, 4, 3), np.uint8)


def frame(camera: str, index: int) -> Frame:
    return Frame(camera, index, float(index), IMAGE)


def test_stage_queue_batches_by_size_then_by_time_and_ends():
    depths = []
    q: StageQueue[int] = StageQueue("x", 10, on_depth=depths.append)
    for i in range(5):
        q.put(i)
    assert q.take_batch(3, 0.0) == [0, 1, 2]
    start = time.monotonic()
    assert q.take_batch(10, 0.05) == [3, 4]  # waited for more, then took what there was
    assert time.monotonic() - start >= 0.04
    q.put(5)
    q.close()
    assert q.take_batch(10, 1.0) == [5]  # what was left is still delivered
    assert q.take_batch(10, 1.0) is None
    assert depths[:5] == [1, 2, 3, 4, 5] and depths[-1] == 0
    with pytest.raises(QueueClosed):
        q.put(6)


def test_stage_queue_put_waits_while_full():
    q: StageQueue[int] = StageQueue("x", 2)
    q.put(1)
    q.put(2)
    assert q.put(3, timeout=0.05) is False
    threading.Timer(0.05, lambda: q.take_batch(1, 0)).start()
    assert q.put(3, timeout=2.0) is True
    assert q.take_batch(5, 0) == [2, 3]


def test_put_many_fills_what_fits_and_waits_for_the_rest_in_order():
    q: StageQueue[int] = StageQueue("x", 3)
    taken: list[int] = []

    def reader() -> None:
        while (batch := q.take_batch(2, 0.0)) is not None:
            taken.extend(batch)
            time.sleep(0.01)

    thread = threading.Thread(target=reader)
    thread.start()
    q.put_many(list(range(10)))  # more than the capacity: waits for the reader three times
    q.put_many([])
    q.close()
    thread.join(5.0)
    assert taken == list(range(10))
    with pytest.raises(QueueClosed):
        q.put_many([1])


def test_live_camera_drops_its_oldest_frame_others_untouched():
    buffer = FrameBuffer(2)
    for camera in ("a", "b"):
        buffer.add_camera(camera)
    assert buffer.put(frame("a", 0), live=True) is None
    buffer.put(frame("a", 1), live=True)
    buffer.put(frame("b", 0), live=True)
    dropped = buffer.put(frame("a", 2), live=True)
    assert dropped.index == 0
    batch = buffer.take_batch(10, 0)
    assert [(f.camera_id, f.index) for f in batch] == [("a", 1), ("b", 0), ("a", 2)]


def test_file_camera_waits_for_room_instead_of_dropping():
    buffer = FrameBuffer(1)
    buffer.add_camera("a")
    buffer.put(frame("a", 0), live=False)
    done = threading.Event()

    def put() -> None:
        buffer.put(frame("a", 1), live=False)
        done.set()

    threading.Thread(target=put, daemon=True).start()
    assert not done.wait(0.1)  # blocked: the buffer is full
    assert [f.index for f in buffer.take_batch(1, 0)] == [0]
    assert done.wait(2.0)
    assert [f.index for f in buffer.take_batch(1, 0)] == [1]


def test_batches_are_round_robin_and_rotate_the_first_camera():
    buffer = FrameBuffer(10)
    for camera in ("a", "b", "c"):
        buffer.add_camera(camera)
    for i in range(4):
        buffer.put(frame("a", i), live=True)  # a has a backlog
    buffer.put(frame("b", 0), live=True)
    buffer.put(frame("c", 0), live=True)
    first = buffer.take_batch(3, 0)
    assert [f.camera_id for f in first] == ["a", "b", "c"]  # the backlog does not crowd out b, c
    buffer.put(frame("b", 1), live=True)
    second = buffer.take_batch(2, 0)
    assert [f.camera_id for f in second] == ["b", "a"]  # the next batch starts with b


def test_buffer_ends_when_every_camera_has_ended_or_on_close():
    buffer = FrameBuffer(4)
    buffer.add_camera("a")
    buffer.add_camera("b")
    buffer.put(frame("a", 0), live=False)
    buffer.end_camera("a")
    assert [f.index for f in buffer.take_batch(4, 0)] == [0]
    result = []
    reader = threading.Thread(target=lambda: result.append(buffer.take_batch(4, 0)))
    reader.start()
    reader.join(0.1)
    assert reader.is_alive()  # b has not ended: the reader waits
    buffer.end_camera("b")
    reader.join(2.0)
    assert result == [None]
    closed = FrameBuffer(4)
    closed.add_camera("a")
    closed.close()
    assert closed.take_batch(4, 0) is None
    with pytest.raises(QueueClosed):
        closed.put(frame("a", 0), live=True)

"""The spool: messages written to disk before they are sent, removed once the broker has them.

    publish ──append──▶ spool.sqlite (ordered by id) ──peek──▶ sender ──▶ Kafka
                               ▲                                  │ acknowledged
                               └───────────────ack(ids)◀──────────┘

Every message goes through the spool, so a message is never only in memory: while the broker is
unreachable they pile up here (bounded by `max_bytes`; when full, `append` waits, so the
pipeline behind it slows down rather than lose one), and a process that dies leaves them for the
next start in the same folder to send. Order is the order of `append`.

SQLite (the standard library's `sqlite3`) does the durable, ordered, crash-safe part: one table,
WAL journal, one transaction per batch. One process owns a spool folder.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from pipeline.messages.encoding import Message

__all__ = ["Spool", "SpoolFull"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    event_id TEXT NOT NULL,
    camera_id TEXT NOT NULL,
    frame_time REAL NOT NULL
)
"""


class SpoolFull(TimeoutError):
    """`append` waited its whole timeout for room in a full spool."""


class Spool:
    """An ordered, bounded, on-disk queue of messages awaiting acknowledgement.

    Args:
        folder: Where ``spool.sqlite`` lives (created); what a previous run left is kept.
        max_bytes: Bound on the stored message bodies; `append` waits while it is exceeded.
    """

    FILE = "spool.sqlite"

    def __init__(self, folder: str | Path, *, max_bytes: int) -> None:
        self.path = Path(folder) / self.FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
            count, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM messages"
            ).fetchone()
        except sqlite3.DatabaseError as e:
            raise OSError(f"spool {self.path} cannot be used: {e}") from e
        self._count, self._bytes = int(count), int(size)
        self._closed = False

    def __len__(self) -> int:
        return self._count

    @property
    def size_bytes(self) -> int:
        """Bytes of message bodies stored."""
        return self._bytes

    def append(self, messages: Sequence[Message], *, timeout: float | None = None) -> None:
        """Stores `messages` after the others; waits while the spool is over its bound.

        A batch is accepted into an empty spool whatever its size, so it never waits forever.

        Raises:
            SpoolFull: `timeout` passed with the spool still full.
        """
        if not messages:
            return
        rows = [(m.kind, m.key, m.value, m.event_id, m.camera_id, m.frame_time) for m in messages]
        with self._room:
            if not self._room.wait_for(
                lambda: self._count == 0 or self._bytes < self.max_bytes or self._closed, timeout
            ):
                raise SpoolFull(
                    f"spool {self.path} stayed full ({self._bytes} of {self.max_bytes} bytes) "
                    f"for {timeout} s"
                )
            self._check_open()
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO messages (kind, key, value, event_id, camera_id, frame_time) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            self._count += len(rows)
            self._bytes += sum(len(r[2]) for r in rows)

    def peek(self, limit: int) -> list[tuple[int, Message]]:
        """The oldest `limit` messages with their spool ids, oldest first."""
        with self._lock:
            self._check_open()
            rows = self._db.execute(
                "SELECT id, kind, key, value, event_id, camera_id, frame_time FROM messages "
                "ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [(row[0], Message(row[1], row[2], bytes(row[3]), *row[4:])) for row in rows]

    def ack(self, ids: Sequence[int]) -> None:
        """Removes delivered messages."""
        if not ids:
            return
        with self._room:
            self._check_open()
            count = size = 0
            with self._db:
                self._db.execute("BEGIN")
                for start in range(0, len(ids), 500):  # below SQLite's bound on parameters
                    chunk = list(ids[start : start + 500])
                    marks = ",".join("?" * len(chunk))
                    n, b = self._db.execute(
                        f"SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM messages "
                        f"WHERE id IN ({marks})",
                        chunk,
                    ).fetchone()
                    self._db.execute(f"DELETE FROM messages WHERE id IN ({marks})", chunk)
                    count, size = count + n, size + b
            self._count -= count
            self._bytes -= size
            self._room.notify_all()

    def close(self) -> None:
        """Closes the file; what is stored stays for the next run."""
        with self._room:
            if not self._closed:
                self._closed = True
                self._db.close()
            self._room.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise OSError(f"spool {self.path} is closed")

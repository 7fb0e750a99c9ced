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

A write the disk refuses (full: ENOSPC, or over a file-size limit: EFBIG; an I/O error; SQLite's
"database or disk is full") rolls its transaction back whole and raises `SpoolWriteError`: the
batch is either stored or not at all, so the caller can retry it without duplicates
(`pipeline.messages.sinks.Publisher` does, pausing intake meanwhile). Before raising, the spool
tries to give back the space its write-ahead log holds (a truncating checkpoint), which is often
what fills a small volume.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from pipeline.messages.encoding import Message

__all__ = ["Spool", "SpoolFull", "SpoolWriteError"]

log = logging.getLogger(__name__)
T = TypeVar("T")

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


class SpoolWriteError(OSError):
    """The disk refused a write (full, over a size limit, I/O error); nothing of it was kept."""


#: SQLite's primary result codes of a write the disk refused: SQLITE_IOERR, SQLITE_FULL.
_DISK_ERRORS = {10, 13}


def _is_disk_error(error: sqlite3.Error) -> bool:
    """Whether `error` is the disk refusing a write, not a bug in a statement."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _DISK_ERRORS
    return "disk" in str(error)  # "database or disk is full", "disk I/O error"


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
            SpoolWriteError: The disk refused the write; nothing of the batch was stored.
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
            self._transaction(
                lambda db: db.executemany(
                    "INSERT INTO messages (kind, key, value, event_id, camera_id, frame_time) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
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
        """Removes delivered messages.

        Raises:
            SpoolWriteError: The disk refused the deletion (a WAL journal grows with it too);
                the messages are still stored.
        """
        if not ids:
            return
        with self._room:
            self._check_open()
            count, size = self._transaction(lambda db: _delete(db, ids))
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

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Runs `body` in one transaction; a write the disk refuses is rolled back whole."""
        try:
            with self._db:
                self._db.execute("BEGIN")
                return body(self._db)
        except sqlite3.Error as e:
            if not _is_disk_error(e):
                raise
            self._release_journal()
            raise SpoolWriteError(f"spool {self.path}: {e}") from e

    def _release_journal(self) -> None:
        """Copies the WAL journal into the database and truncates it, giving its space back."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as e:  # the disk is still full: the caller retries later
            log.debug("spool %s: checkpoint after a failed write: %r", self.path, e)

    def _check_open(self) -> None:
        if self._closed:
            raise OSError(f"spool {self.path} is closed")


def _delete(db: sqlite3.Connection, ids: Sequence[int]) -> tuple[int, int]:
    """Deletes `ids`; returns how many messages and bytes of bodies that removed."""
    count = size = 0
    for start in range(0, len(ids), 500):  # below SQLite's bound on parameters
        chunk = list(ids[start : start + 500])
        marks = ",".join("?" * len(chunk))
        n, b = db.execute(
            f"SELECT COUNT(*), COALESCE(SUM(LENGTH(value)), 0) FROM messages WHERE id IN ({marks})",
            chunk,
        ).fetchone()
        db.execute(f"DELETE FROM messages WHERE id IN ({marks})", chunk)
        count, size = count + n, size + b
    return count, size

"""The fault-injection suite's harness: real processes against a real broker, and the accounting.

    Site          one site's topics and configuration file (the synthetic scene: known people)
                  against a broker; starts `reidstream run|worker|matcher` as child processes,
                  each with its own log
    Tally         links made (the process's links.jsonl), the links topic read back from its
                  start -> delivered, duplicated, lost, global ids before the fault and after
    ROWS, table   the row each case records and the table `conftest.py` prints at the end

A link is *made* when the job or matcher publishes it (its JSONL sink writes every one),
*delivered* when its event id is on the links topic, *duplicated* for each record whose event id
came before, *lost* when made and never delivered. Global ids are counted on the links made
before the fault began and on all of them, against the people in the scene or an uninterrupted
run of the same input.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.pipeline.matching.test_service import committed_offsets, read_back

__all__ = ["PEOPLE", "ROWS", "SCENE", "Row", "Site", "Tally", "kill", "table", "wait_for"]

ROOT = Path(__file__).resolve().parents[2]

PEOPLE = 6
#: The synthetic scene of the job's cases, at its native pace like live cameras: 40 s.
SCENE = (
    f"synthetic: {{people: {PEOPLE}, duration_s: 40, fps: 5, size: [180, 320], "
    "replay: native, seed: 1}"
)


@dataclass(frozen=True)
class Row:
    """One fault and what came of it; counts are None where they mean nothing (`n/a`)."""

    fault: str
    made: int | None
    delivered: int | None
    duplicated: int | None
    lost: int | None
    ids_before: int | str | None
    ids_after: int | None
    reference: str


#: The rows of the cases run, in order; printed by `conftest.pytest_terminal_summary`.
ROWS: list[Row] = []

_HEADER = ("fault", "made", "delivered", "duplicated", "lost", "ids before", "ids after", "against")


def table(rows: Iterable[Row]) -> str:
    """The rows as a Markdown table."""

    def cell(value: object) -> str:
        return "n/a" if value is None else str(value)

    lines = ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for r in rows:
        values = (r.fault, r.made, r.delivered, r.duplicated, r.lost)
        values += (r.ids_before, r.ids_after, r.reference)
        lines.append("| " + " | ".join(cell(v) for v in values) + " |")
    return "\n".join(lines)


def wait_for(condition: Callable[[], object], timeout: float, what: str, poll: float = 0.2):
    """Waits until `condition()` is true (and returns it); fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(poll)
    return result


def jsonl_documents(path: Path) -> list[dict]:
    """The documents of a links.jsonl (none if the file is absent)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Tally:
    """What a faulted run made and what reached the links topic.

    Args:
        made: The documents of the links made (their event ids may repeat: counted once).
        topic: The documents on the links topic, in the order read.
        fault_at: Wall time the fault began; links produced before it give `ids_before`.
    """

    made: list[dict]
    topic: list[dict]
    fault_at: float | None = None

    @property
    def made_ids(self) -> set[str]:
        return {d["event_id"] for d in self.made}

    @property
    def delivered_ids(self) -> set[str]:
        return {d["event_id"] for d in self.topic}

    @property
    def lost(self) -> set[str]:
        return self.made_ids - self.delivered_ids

    @property
    def duplicated(self) -> int:
        return len(self.topic) - len(self.delivered_ids)

    def global_ids(self, *, before: float | None = None) -> set[str]:
        return {d["global_id"] for d in self.topic if before is None or d["produced_at"] < before}

    def row(self, fault: str, reference: str) -> Row:
        """The table row of this run."""
        before = None if self.fault_at is None else len(self.global_ids(before=self.fault_at))
        return Row(
            fault,
            len(self.made_ids),
            len(self.delivered_ids),
            self.duplicated,
            len(self.lost),
            before,
            len(self.global_ids()),
            reference,
        )


class Site:
    """One site against a broker: its topics, group and configuration, and its processes.

    Args:
        servers: The broker's bootstrap address.
        folder: Where the configuration, the logs and every process's `run.out_dir` go.
        config: YAML text added to the site's configuration (scene, matcher settings).
        embeddings_topic: An embeddings topic to read (default: a new one).
    """

    def __init__(
        self, servers: str, folder: Path, config: str = "", embeddings_topic: str | None = None
    ) -> None:
        run_id = uuid.uuid4().hex[:8]
        self.servers, self.folder = servers, folder
        self.links_topic = f"links-{run_id}"
        self.embeddings_topic = embeddings_topic or f"embeddings-{run_id}"
        self.group = f"matcher-{run_id}"
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / f"site-{run_id}.yaml"
        self.config.write_text(
            f"""
kafka:
  bootstrap_servers: ["{servers}"]
  links_topic: {self.links_topic}
  embeddings_topic: {self.embeddings_topic}
  group_id: {self.group}
  max_poll_interval_ms: 2000
  request_timeout_ms: 4000
metrics: {{address: ""}}
run: {{shutdown_timeout_s: 20}}
{config}
"""
        )

    def start(self, command: str, name: str, *overrides: str, **popen) -> subprocess.Popen:
        """`reidstream COMMAND --config site.yaml run.out_dir=FOLDER/NAME OVERRIDES...`, its
        output appended to FOLDER/NAME.log (a restart under the same name continues both)."""
        args = [sys.executable, "-m", "pipeline", command, "--config", str(self.config)]
        args += [f"run.out_dir={self.out(name)}", *overrides]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log(name).open("ab") as log:  # the child keeps its own handle
            return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, **popen)

    def out(self, name: str) -> Path:
        return self.folder / name

    def log(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def tail(self, name: str) -> str:
        path = self.log(name)
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def made(self, name: str) -> list[dict]:
        """The links the process NAME made (its JSONL sink)."""
        return jsonl_documents(self.out(name) / "links.jsonl")

    def delivered(self) -> list[dict]:
        """Every link document on the links topic, from its start."""
        return [json.loads(r.value) for r in read_back(self.servers, self.links_topic)]

    def committed(self) -> int:
        """The matcher group's committed offsets on the embeddings topic, summed."""
        return sum(committed_offsets(self.servers, self.group, self.embeddings_topic).values())

    def wait_committed(self, process: subprocess.Popen, name: str, at_least: int) -> int:
        """Waits until the matcher NAME has committed `at_least` records; the count."""

        def done() -> int:
            assert process.poll() is None, f"{name} exited:\n{self.tail(name)}"
            return (n := self.committed()) >= at_least and n

        return wait_for(done, 180, f"{name} to commit {at_least} records", poll=0.05)

    def finish(self, process: subprocess.Popen, name: str, timeout: float = 120) -> int:
        """Waits for a process that ends by itself; its exit status."""
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"{name} did not end in {timeout} s:\n{self.tail(name)}") from None

    def stop_when_idle(self, process: subprocess.Popen, name: str, quiet_s: float = 6) -> int:
        """SIGTERM to a process that never ends by itself (the matcher), once its links.jsonl
        has stopped growing for `quiet_s`; its exit status."""
        path, last, since = self.out(name) / "links.jsonl", -1, time.monotonic()
        deadline = since + 120
        while time.monotonic() - since < quiet_s and time.monotonic() < deadline:
            assert process.poll() is None, f"{name} exited:\n{self.tail(name)}"
            size = path.stat().st_size if path.exists() else 0
            if size != last:
                last, since = size, time.monotonic()
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        return self.finish(process, name, 60)


def kill(*processes: subprocess.Popen) -> None:
    """Kills whatever of `processes` still runs (a failed case leaves none behind)."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait(10)

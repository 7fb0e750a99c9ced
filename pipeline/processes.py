"""`reidstream run` over several processes (run.workers = N > 1): one job, N camera workers.

    reidstream run run.workers=N
      broker   kafka.bootstrap_servers when output.sinks has kafka, else a local Tansu broker
      workers  N child processes `reidstream worker` (cameras -> tracklet embeddings), the
               cameras dealt round-robin (run.only_cameras); worker I writes OUT/worker-I/
               and OUT/worker-I.log and serves /metrics on metrics.address's port + 1 + I
      matcher  in this process: `MatcherService` on the workers' embeddings, the links to
               output.sinks, /metrics and /readyz on metrics.address
    stop: SIGINT/SIGTERM, run.max_duration_s (each worker applies it too) or every worker ended
      -> the workers get SIGTERM and drain as `reidstream worker` does (run.shutdown_timeout_s)
      -> the matcher matches what is on the topic, up to its end, and stops
      -> OUT/summary.json: the workers' summaries combined, the matcher's counts

`run` then exits 1 when a worker failed or lost anything, when no camera produced a frame, or
when the matcher could not read everything the workers published (all in the summary's `lost`).

Each worker is started with this process's own arguments (--config FILE and the KEY=VALUE
overrides; the environment is inherited) followed by its own few overrides, so it resolves the
same configuration, secrets included, without them appearing on a command line. Python runs
one stage at a time per process (its interpreter lock); processes are how one host's cores
all work. A worker gets OMP_NUM_THREADS = cores / N unless the environment sets it, and as many
threads for its detector and ReID sessions unless the configuration sets them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.assemble import build_matcher_service, build_publisher, camera_ids, model_label
from pipeline.config import ConfigError, redact_values
from pipeline.demo.broker import TansuBroker
from pipeline.matching.service import MatcherService
from pipeline.monitoring.metrics import METRICS
from pipeline.monitoring.server import serve_metrics
from pipeline.settings import ReidstreamConfig
from pipeline.stream.job import RunSummary

__all__ = ["ProcessJob", "deal", "local_config", "worker_overrides"]

log = logging.getLogger(__name__)


def deal(cameras: Sequence[str], workers: int) -> list[tuple[str, ...]]:
    """The cameras dealt round-robin over at most `workers` processes (none empty)."""
    n = min(workers, len(cameras))
    return [tuple(cameras[i::n]) for i in range(n)]


def worker_overrides(
    cfg: ReidstreamConfig,
    index: int,
    cameras: Sequence[str],
    bootstrap: str | None,
    threads: int = 1,
) -> list[str]:
    """The KEY=VALUE overrides that make worker `index` of `cfg` (after the job's own).

    `threads` (cores / workers) becomes the detector's and the ReID engine's session threads
    where the configuration leaves them at 0 (one per core): N workers each with a thread per
    core would oversubscribe the CPU.
    """
    out = [
        "run.workers=1",
        f"run.only_cameras={json.dumps(list(cameras))}",
        f"run.out_dir={cfg.run.out_dir / f'worker-{index}'}",
        f"metrics.address={_worker_address(cfg.metrics.address, index)}",
    ]
    if bootstrap is not None:  # the local broker: embeddings there, nothing else to Kafka
        out += ["output.sinks=[kafka]", f"kafka.bootstrap_servers={bootstrap}"]
    if cfg.detector.intra_op_threads == 0:
        out.append(f"detector.intra_op_threads={threads}")
    if cfg.reid.intra_op_threads == 0:
        out.append(f"reid.intra_op_threads={threads}")
    return out


def local_config(cfg: ReidstreamConfig, bootstrap: str) -> ReidstreamConfig:
    """The matcher's configuration against the local broker: its address, a short rebalance
    timeout (Tansu completes a group join only when the rebalance timeout, the consumer's
    max_poll_interval_ms, expires, so the matcher would wait that long for its first
    embedding) and no changelog (the gallery lives as long as the job, as in one process)."""
    kafka = dataclasses.replace(
        cfg.kafka,
        bootstrap_servers=(bootstrap,),
        max_poll_interval_ms=min(cfg.kafka.max_poll_interval_ms, 3000),
    )
    matcher = dataclasses.replace(cfg.matcher, changelog=False)
    return dataclasses.replace(cfg, kafka=kafka, matcher=matcher)


def _worker_address(address: str, index: int) -> str:
    if not address:
        return ""
    host, port = address.rsplit(":", 1)
    return f"{host}:{int(port) + 1 + index}" if int(port) else address


def _create_topic(client_options: dict[str, Any], topic: str) -> None:
    """Creates the embeddings topic on the local broker before the matcher subscribes: a
    consumer subscribed to a topic that does not exist yet learns of it only at its next
    metadata refresh (kafka-python: every 5 minutes), and would read nothing until then."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(**client_options)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


class ProcessJob:
    """The job of `run.workers` processes (see the module docstring).

    Args:
        cfg: The resolved configuration of the `run` command.
        argv: The command's configuration arguments (--config FILE and KEY=VALUE overrides),
            given to every worker before its own.
    """

    def __init__(self, cfg: ReidstreamConfig, argv: Sequence[str]) -> None:
        ids = camera_ids(cfg)
        if not ids:
            raise ConfigError("run.workers: no camera to deal out")
        self.cfg, self.argv = cfg, list(argv)
        self.groups = deal(ids, cfg.run.workers)
        self.local = "kafka" not in cfg.output.sinks
        self._stop = threading.Event()
        self._procs: list[subprocess.Popen[bytes]] = []

    def request_stop(self) -> None:
        """Stops the workers (they drain, then exit); the matcher then reads what they sent."""
        if not self._stop.is_set():
            log.info("stopping: the workers drain, then the matcher")
        self._stop.set()

    def run(self) -> RunSummary:
        out_dir = self.cfg.run.out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        broker = self._start_broker(out_dir) if self.local else None
        try:
            cfg = self.cfg if broker is None else local_config(self.cfg, broker.bootstrap_servers)
            return self._run(cfg, broker, start)
        finally:
            for proc in self._procs:
                if proc.poll() is None:
                    proc.kill()
            if broker is not None:
                broker.stop()

    def _start_broker(self, out_dir: Path) -> TansuBroker:
        try:
            broker = TansuBroker(out_dir / "broker.log")
        except FileNotFoundError as e:
            raise ConfigError(
                f"run.workers = {self.cfg.run.workers}: the workers pass their embeddings to the "
                f"matcher through Kafka. Add kafka to output.sinks (with kafka.bootstrap_servers), "
                f"or install the local broker: {e}"
            ) from e
        broker.start()
        log.info("local broker (Tansu) on %s", broker.bootstrap_servers)
        return broker

    def _run(self, cfg: ReidstreamConfig, broker: TansuBroker | None, start: float) -> RunSummary:
        if broker is not None:
            _create_topic(cfg.kafka.client_options(), cfg.kafka.embeddings_topic)
        publisher = build_publisher(cfg, METRICS)
        publisher.start()
        service = build_matcher_service(cfg, publisher)
        server = None
        if cfg.metrics.address:
            server = serve_metrics(cfg.metrics.address, METRICS, service.health)
            server.start()
        matching = threading.Thread(target=service.run, name="matcher", daemon=True)
        matching.start()
        try:
            self._start_workers(broker)
            stopped_by = self._wait_workers()
            self._drain(service, matching)
        finally:
            publisher.close(cfg.run.shutdown_timeout_s)
            service.close()
            if server is not None:
                server.close()
        return self._summary(service, publisher, time.monotonic() - start, stopped_by)

    # ------------------------------------------------------------------------------ workers

    def _start_workers(self, broker: TansuBroker | None) -> None:
        bootstrap = broker.bootstrap_servers if broker is not None else None
        env = dict(os.environ)
        threads = max(1, (os.cpu_count() or 1) // len(self.groups))
        env.setdefault("OMP_NUM_THREADS", str(threads))
        for i, cameras in enumerate(self.groups):
            command = [sys.executable, "-m", "pipeline", "worker", *self.argv]
            command += worker_overrides(self.cfg, i, cameras, bootstrap, threads)
            log_path = self.cfg.run.out_dir / f"worker-{i}.log"
            with log_path.open("ab") as log_file:
                proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
            self._procs.append(proc)
            log.info("worker %d (pid %d): cameras %s, log %s", i, proc.pid, cameras, log_path)

    def _wait_workers(self) -> str:
        """Waits until every worker has ended, stopping them on `request_stop`."""
        stopped_by = "end of the sources"
        while any(p.poll() is None for p in self._procs):
            if self._stop.wait(0.2):
                stopped_by = "stop requested"
                break
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.cfg.run.shutdown_timeout_s + 30.0
        for i, proc in enumerate(self._procs):
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.error("worker %d did not exit after it was stopped; killed", i)
                proc.kill()
                proc.wait()
        if stopped_by != "stop requested" and self.cfg.run.max_duration_s is not None:
            summaries = [self._worker_summary(i) for i in range(len(self._procs))]
            if any(s and s.get("stopped_by") == "max_duration_s" for s in summaries):
                stopped_by = "max_duration_s"
        return stopped_by

    def _drain(self, service: MatcherService, matching: threading.Thread) -> None:
        """Lets the matcher read the topic up to its end, within the shutdown timeout."""
        service.request_drain()
        matching.join(self.cfg.run.shutdown_timeout_s)
        if matching.is_alive():
            log.error(
                "the matcher did not read every embedding within %.0f s "
                "(run.shutdown_timeout_s); stopping it",
                self.cfg.run.shutdown_timeout_s,
            )
            service.request_stop()
            matching.join()

    def _worker_summary(self, index: int) -> dict[str, Any] | None:
        path = self.cfg.run.out_dir / f"worker-{index}" / "summary.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    # ------------------------------------------------------------------------------ summary

    def _summary(
        self, service: MatcherService, publisher: Any, duration: float, stopped_by: str
    ) -> RunSummary:
        summary = RunSummary(
            role=f"all ({len(self._procs)} worker processes)",
            duration_s=round(duration, 3),
            stopped_by=stopped_by,
            cameras={},
            stages={},
            sinks={"matcher": publisher.state()},
            identities=service.matcher.identities,
            model=model_label(self.cfg),
        )
        summary.stages["match"] = service.embeddings
        for i, proc in enumerate(self._procs):
            self._add_worker(summary, i, proc.returncode)
        self._add_matcher_losses(summary, service, publisher)
        path = self.cfg.run.out_dir / "summary.json"
        report = redact_values(json.loads(json.dumps(summary.as_dict(), default=str)))
        path.write_text(json.dumps(report, indent=1) + "\n")
        summary.outputs["summary"] = str(path)
        return summary

    def _add_worker(self, summary: RunSummary, index: int, returncode: int) -> None:
        worker = self._worker_summary(index)
        name = f"worker-{index}"
        log_path = self.cfg.run.out_dir / f"{name}.log"
        if returncode:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            log.error("%s exited with status %d; the end of %s:\n%s", name, returncode,
                      log_path, "\n".join(tail))  # fmt: skip
        if worker is None:
            summary.lost.setdefault("workers", {})[name] = (
                f"exited with status {returncode} without a summary; see {log_path}"
            )
            return
        summary.cameras |= worker["cameras"]
        for stage, n in worker["stages"].items():
            summary.stages[stage] = summary.stages.get(stage, 0) + n
        summary.sinks |= {f"{name} {sink}": state for sink, state in worker["sinks"].items()}
        summary.clip_len, summary.stride = worker["clip_len"], worker["stride"]
        for kind, lost in worker.get("lost", {}).items():
            summary.lost.setdefault(kind, {})[name] = lost

    @staticmethod
    def _add_matcher_losses(summary: RunSummary, service: MatcherService, publisher: Any) -> None:
        if publisher.lost:
            summary.lost.setdefault("messages", {})["matcher"] = dict(publisher.lost)
        delivered = sum(
            s.get("delivered", 0) for name, s in summary.sinks.items() if name != "matcher"
        )
        if service.unread or (service.unread is None and delivered):
            summary.lost["unread"] = {
                "embeddings topic": "unknown" if service.unread is None else service.unread
            }

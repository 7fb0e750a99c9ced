"""Benchmarks that print measured figures (`reidstream bench <target>`), never assertions:
the profiler, the throughput sweep of the job, the naive per-camera baseline it is measured
against, the null detector and ReID engine, and the matcher at gallery scale."""

from __future__ import annotations

"""Benchmarks that print measured figures (`reidstream bench <target>`), never assertions.

    loader.py      training data loader: decode rate, clips/s in one process and with workers
    engine.py      ReID engines: clips/s, latency, GFLOP/s per model, engine, precision, batch
    detector.py    detector + tracker: frames/s per backend on videos, beside model.track()
    temporal.py    does temporal modelling pay off? C2D against temporal ResNet-18s, trained
    models.py      parameters and MACs of the registered models beside the papers' figures
    matcher.py     cross-camera matching at gallery scale: ms per batch, memory, recall
    report.py      the job on N live cameras (`bench pipeline`): tables and JSON, from
    plots.py         its PNG plots,
    variants.py      configurations of the job side by side in repeated rounds, summarised,
    throughput.py    the job's runs and sweep, measured by
    profiling.py     the per-stage profiler, against
    baseline.py      the naive per-camera loop, with
    nulls.py         the null detector and ReID engine

Each target's module has `run(**explicit arguments)`, which measures, prints the figures and
returns them; its command-line arguments are in `pipeline.cli.bench`, nowhere here.
"""

from __future__ import annotations

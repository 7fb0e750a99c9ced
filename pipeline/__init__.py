"""The streaming pipeline and everything around it, divided by job:

    stream/      frames to clip embeddings: sources, queues, stages, tracklets, the job
    matching/    clip embeddings to identity links: matcher, gallery, the matcher service
    messages/    what leaves the process: message types, JSON Schemas, sinks, spool, consumer
    monitoring/  Prometheus metrics, the /metrics + /healthz server, `reidstream doctor`
    demo/        the synthetic scene source, recording and scoring, the local Kafka broker
    bench/       benchmarks: profiler, throughput, the naive baseline, null models
    cli/         the `reidstream` command line
    config.py    the generic configuration loader; settings.py the root schema
    assemble.py  builds the job and the matcher service from the configuration

The only package that knows threads, queues, Kafka and Prometheus; it may import every other one.
Nothing is imported here, so `pipeline.messages` can be used without torch or OpenCV.
"""

from __future__ import annotations

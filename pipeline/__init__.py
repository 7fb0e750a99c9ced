"""The streaming pipeline: sources, stages, tracklets, matcher, publisher, metrics, config and CLI.

The only package that knows threads, queues, Kafka and Prometheus; it may import every other one.
"""

from __future__ import annotations

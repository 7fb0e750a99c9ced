"""Frames to clip embeddings: camera sources, bounded queues, the stages, tracklets, the job.

    sources ─Frame─▶ detect ─▶ track ─▶ tracklets ─Clip─▶ embed ─▶ [match] ─▶ publish

Nothing here reads the configuration tree (`pipeline.assemble` builds a `Job` from it) or
imports `trainers`.
"""

from __future__ import annotations

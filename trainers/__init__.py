"""Datasets, samplers, losses, the training engine and the evaluation protocols of the papers.

May import `reid_models`; knows nothing of detectors, deployment or the pipeline.
"""

from __future__ import annotations

"""Export, compilation and runtime engines for the ReID models; container and cluster manifests.

May import `reid_models`; knows nothing of detectors, training or the pipeline.
"""

from __future__ import annotations

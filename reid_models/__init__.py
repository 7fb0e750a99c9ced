"""Video person re-identification networks: the five papers' 3D/temporal models and C2D.

Depends on torch only; knows nothing of detectors, deployment, training or the pipeline.
"""

from __future__ import annotations

"""The embedded default and its scoring: the synthetic multi-camera scene as a camera source,
the recording of a run (tracks, mosaic) with its IDF1 against the scene's ground truth, and the
local Kafka-protocol broker `reidstream demo` and the tests start."""

from __future__ import annotations

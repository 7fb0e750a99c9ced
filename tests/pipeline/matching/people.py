"""A deterministic stream of tracklet embeddings: people walking from camera to camera.

Each person has a direction in embedding space; each visit to a camera is one tracklet whose
clips (one a second) are that direction plus noise, normalised, followed by the tracklet's end.
People come back to cameras they were seen on, so a gallery that forgets them hands out new
global ids.
"""

from __future__ import annotations

import numpy as np

from pipeline.messages.types import ClipEmbedding, TrackletClosed

MODEL = "people-stream"


def people_stream(
    *,
    seed: int = 0,
    people: int = 12,
    cameras: int = 3,
    visits: int = 6,
    dim: int = 32,
    noise: float = 0.25,
) -> list[ClipEmbedding | TrackletClosed]:
    """Every person's visits, as embeddings and tracklet ends in the order they happen."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((people, dim))
    events: list[tuple[float, int, ClipEmbedding | TrackletClosed]] = []
    next_track = dict.fromkeys(range(cameras), 0)
    for person in range(people):
        t = float(rng.uniform(0, 20))
        for _ in range(visits):
            camera = int(rng.integers(cameras))
            next_track[camera] += 1
            track, clips = next_track[camera], int(rng.integers(2, 6))
            tracklet = f"cam{camera}.{track}"
            for c in range(clips):
                vector = directions[person] + noise * rng.standard_normal(dim)
                vector /= np.linalg.norm(vector)  # unit length, as workers send them
                clip = ClipEmbedding(
                    camera_id=f"cam{camera}",
                    track_id=track,
                    tracklet_id=tracklet,
                    start_frame=int((t + c) * 10),
                    end_frame=int((t + c + 1) * 10) - 1,
                    start_time=t + c,
                    end_time=t + c + 1,
                    embedding=vector.astype(np.float32),
                    model=MODEL,
                    tracklet_start=t,
                )
                events.append((t + c + 1, len(events), clip))
            end = t + clips
            events.append(
                (end + 0.5, len(events), TrackletClosed(f"cam{camera}", track, tracklet, end))
            )
            t = end + float(rng.uniform(2, 15))
    return [item for _, _, item in sorted(events, key=lambda e: e[:2])]

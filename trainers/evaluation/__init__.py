"""Evaluation of video ReID: distances, CMC/mAP/mINP under the protocol of the code each paper
scored with (the MARS MATLAB kit, AP3D's, torchreid's), k-reciprocal re-ranking, means over
splits and CMC plots.

::

    features ─pairwise_distance─▶ (Q, G) ─[re_ranking]─▶ evaluate_rank ─▶ RankResult
                                                          mean_over_splits (iLIDS-VID, PRID2011)
                                                          plot_cmc ─▶ PNG
"""

from __future__ import annotations

from trainers.evaluation.distance import METRICS, pairwise_distance
from trainers.evaluation.plot import plot_cmc
from trainers.evaluation.rank import (
    PROTOCOL_RULES,
    PROTOCOLS,
    Protocol,
    ProtocolName,
    RankResult,
    evaluate_rank,
    mean_over_splits,
    query_average_precision,
)
from trainers.evaluation.rerank import re_ranking

__all__ = [
    "METRICS",
    "PROTOCOLS",
    "PROTOCOL_RULES",
    "Protocol",
    "ProtocolName",
    "RankResult",
    "evaluate_rank",
    "mean_over_splits",
    "pairwise_distance",
    "plot_cmc",
    "query_average_precision",
    "re_ranking",
]

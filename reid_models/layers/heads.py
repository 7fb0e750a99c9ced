"""The three identity heads of the papers, each mapping a pooled feature (B, C) to:

* ``embedding(x)`` (B, D): the retrieval feature the paper evaluates with;
* ``train_output(x)``: `TrainOutput(features, logits)` for the paper's losses.

    BNNeckHead      x -> BN -> f  ──▶ embedding, triplet;   f -> FC -> logits      (AP3D)
    BottleneckHead  x -> FC -> BN -> LeakyReLU(0.1) -> f ──▶ embedding, triplet;
                    f -> Dropout(0.5) -> FC -> logits                            (I3D-NL)
    EmbeddingHead   x -> [FC] -> f ──▶ embedding;  f -> BN -> ReLU -> Dropout(0.5) -> FC
                    -> logits                                                    (M3D, GLTR)

With ``num_classes=0`` there is no classifier and ``logits`` is empty.
"""

from __future__ import annotations

import torch
from torch import nn

from reid_models.base import TrainOutput
from reid_models.layers.init import keep_init

__all__ = ["BNNeckHead", "BottleneckHead", "EmbeddingHead"]


def _classifier(in_dim: int, num_classes: int) -> nn.Linear | None:
    if num_classes == 0:
        return None
    fc = nn.Linear(in_dim, num_classes)
    nn.init.normal_(fc.weight, std=0.001)
    nn.init.zeros_(fc.bias)
    return fc


def _bn1d(dim: int) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(dim)
    nn.init.normal_(bn.weight, 1.0, 0.02)
    nn.init.zeros_(bn.bias)
    return bn


def _logits(classifier: nn.Linear | None, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return () if classifier is None else (classifier(x),)


class BNNeckHead(nn.Module):
    """BatchNorm neck; the post-BN feature is embedding, triplet feature and classifier input.

    As the official AP3D code (github.com/guxinqian/AP3D, ``models/ResNet.py``; the paper's §4.1
    says only that a BatchNorm normalises the feature): BN weight ~ N(1, 0.02), bias 0 and
    trainable; classifier with bias, weight ~ N(0, 0.001).
    """

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.bn = _bn1d(in_dim)
        self.classifier = _classifier(in_dim, num_classes)
        keep_init(self)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x)

    def train_output(self, x: torch.Tensor) -> TrainOutput:
        f = self.bn(x)
        return TrainOutput(f, _logits(self.classifier, f))


class BottleneckHead(nn.Module):
    """FC -> BN -> LeakyReLU(0.1) bottleneck, dropout before the classifier.

    Liao et al. (ACCV 2018, §4.2): "fully connected layer, batch norm, leaky ReLU with alpha = 0.1
    and dropout with 0.5 drop ratio"; they give neither its width nor its init. 512 wide, and the
    init of layumi's ``ClassBlock``, which is this block: He init for the FC, BN weight
    ~ N(1, 0.02), classifier ~ N(0, 0.001).
    """

    def __init__(self, in_dim: int, num_classes: int, *, dim: int = 512) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, dim)
        nn.init.kaiming_normal_(self.fc.weight, mode="fan_out")
        nn.init.zeros_(self.fc.bias)
        self.bn = _bn1d(dim)
        self.act = nn.LeakyReLU(0.1)
        self.dropout = nn.Dropout(0.5)
        self.classifier = _classifier(dim, num_classes)
        keep_init(self)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.fc(x)))

    def train_output(self, x: torch.Tensor) -> TrainOutput:
        f = self.embedding(x)
        return TrainOutput(f, _logits(self.classifier, self.dropout(f)))


class EmbeddingHead(nn.Module):
    """Optional FC to the embedding; BN -> ReLU -> Dropout(0.5) -> classifier for training only.

    As the official M3D and GLTR code (github.com/ljn114514/M3D ``ResNet50-M3D/model/M3D.py``,
    github.com/ljn114514/GLTR ``resnet.py``; neither paper describes its head): the test feature
    is taken before the BN; FC He init (fan_out), classifier ~ N(0, 0.001).

    Args:
        in_dim: Pooled feature size.
        num_classes: Training identities (0: no classifier).
        dim: Embedding size; None keeps `in_dim` without an FC (GLTR's pooled feature).
    """

    def __init__(self, in_dim: int, num_classes: int, *, dim: int | None = None) -> None:
        super().__init__()
        self.fc = None
        if dim is not None:
            self.fc = nn.Linear(in_dim, dim)
            nn.init.kaiming_normal_(self.fc.weight, mode="fan_out")
            nn.init.zeros_(self.fc.bias)
        out = in_dim if dim is None else dim
        self.bn = nn.BatchNorm1d(out)
        self.act = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(0.5)
        self.classifier = _classifier(out, num_classes)
        keep_init(self)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.fc is None else self.fc(x)

    def train_output(self, x: torch.Tensor) -> TrainOutput:
        f = self.embedding(x)
        if self.classifier is None:
            return TrainOutput(f, ())
        return TrainOutput(f, (self.classifier(self.dropout(self.act(self.bn(f)))),))

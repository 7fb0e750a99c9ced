"""`ReIDModel`: the one interface every video ReID network here implements.

    x (B, C, T, H, W) float, normalised as `pretrained_cfg` says
      └─ forward_features(x) ─▶ model-specific features (documented per model)
           └─ forward_head(f, pre_logits=True)  ─▶ embedding (B, D), what the paper retrieves with
           └─ forward_head(f, pre_logits=False) ─▶ TrainOutput(features, logits)

`forward(x)` is `forward_head(forward_features(x), pre_logits=not self.training)`: in eval mode
the retrieval embedding, in train mode what the paper's losses need. Losses live in `trainers`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from reid_models.pretrained import PretrainedCfg

__all__ = ["ReIDModel", "TrainOutput"]


class TrainOutput(NamedTuple):
    """What the training losses consume.

    Attributes:
        features: (B, D') the feature the metric loss (triplet, OIM) acts on.
        logits: One (B, num_classes) tensor per identity classifier; each gets its own
            cross-entropy. Empty when the model has no classifier (``num_classes=0``, or
            PersonVLAD, whose OIM loss works on `features`).
    """

    features: torch.Tensor
    logits: tuple[torch.Tensor, ...]


class ReIDModel(nn.Module):
    """Base class: holds `pretrained_cfg` and `num_classes`, validates input, dispatches forward.

    Subclasses implement `forward_features` and `forward_head` and set the class attributes
    below where they differ (the registry-wide tests read them).
    """

    #: Parameters no loss can move: detached by the paper's design, or kept for parity with the
    #: official code although the math cancels their gradient (`NonLocalBlock.gradient_free`).
    detached_parameters: tuple[str, ...] = ()
    #: Whether the embedding depends on frame order (False only for frame-pooling models).
    order_sensitive: bool = True
    #: Shortest clip the architecture accepts (C3D's temporal pooling needs 16 frames).
    min_clip_len: int = 1

    def __init__(self, *, pretrained_cfg: PretrainedCfg, num_classes: int) -> None:
        super().__init__()
        self.pretrained_cfg = pretrained_cfg
        self.num_classes = num_classes
        # Registry name and builder overrides `create_model` built this model with (None and
        # empty for a model constructed by hand); `reid_models.spec.model_spec` records them in
        # checkpoints, so that the weights file alone rebuilds the model.
        self.model_name: str | None = None
        self.model_overrides: dict[str, Any] = {}

    @property
    def embedding_dim(self) -> int:
        return self.pretrained_cfg.embedding_dim

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(
        self, x: torch.Tensor, *, pre_logits: bool = False
    ) -> torch.Tensor | TrainOutput:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor | TrainOutput:
        self.check_input(x)
        return self.forward_head(self.forward_features(x), pre_logits=not self.training)

    def check_input(self, x: torch.Tensor) -> None:
        """Raises `ValueError` unless `x` is a float (B, C, T, H, W) clip batch with C channels."""
        if torch.jit.is_tracing():  # sizes are symbolic while exporting; checked before that
            return
        channels = self.pretrained_cfg.input_size[0]
        if x.dim() != 5 or x.shape[1] != channels or not x.is_floating_point():
            raise ValueError(
                f"{type(self).__name__} expects a float tensor (B, {channels}, T, H, W), "
                f"got {x.dtype} {tuple(x.shape)}"
            )

"""What every official-checkpoint converter shares: reading the file, the key-by-key check against
the model, and the self-describing checkpoint it becomes.

    official file ─ torch.load(weights_only=True) ─ `official_state` ─▶ OfficialState
        (unwraps {"state_dict": ...}, strips DataParallel's "module.", both reported)
    converter: official key ─▶ (our key, tensor)  + folds, checks   ─▶ mapped tensors
    `finish`: create_model(name, num_classes=<classifier rows>, **overrides), then every model
        key must be given, every official key used, every shape equal; otherwise a
        `ConversionError` listing all three ─▶ `Conversion` ─▶ `Conversion.checkpoint()`
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from reid_models._registry import create_model
from reid_models.base import ReIDModel
from reid_models.spec import SPEC_KEY, model_spec
from reid_models.weights import WeightsError, read_weights_file

__all__ = [
    "CHECKPOINT_FORMAT",
    "Conversion",
    "ConversionError",
    "ConversionReport",
    "OfficialState",
    "finish",
    "official_state",
    "read_official",
    "rename_all",
    "rename_trunk",
]

#: The ``format`` of the checkpoint a conversion writes: reidstream's model-only weights file
#: (``best.pt`` of `reidstream train`), which `reidstream run`, ``export`` and ``compile`` read.
CHECKPOINT_FORMAT = "reidstream.weights/1"
#: How many key names an error message lists per kind before "... and N more".
_LISTED = 12


class ConversionError(WeightsError):
    """An official checkpoint does not fit the layout it was converted as: keys missing,
    unexpected or of another shape (all listed), or weights the model cannot represent."""


@dataclass
class ConversionReport:
    """What a conversion did, for the user to check.

    Attributes:
        layout: The official layout converted (`reid_models.convert.list_official`).
        sources: Per file: its path, the wrapper unwrapped and the ``module.`` prefixes stripped.
        renamed: Official tensors copied under our name (reshaped where the layouts differ).
        classifier_identities: Rows of the official identity classifier, kept in the checkpoint
            (serving skips it; fine-tuning on the same identities can use it); 0 when absent.
        folded: Official tensors our model has no place for, and where their effect went (GLTR's
            biases into a BatchNorm's running mean), or why they have none (M3D's dead branches).
        filled: Model tensors the file lacks that take a neutral value (``num_batches_tracked``
            of checkpoints from PyTorch < 0.4.1).
    """

    layout: str
    sources: list[str] = field(default_factory=list)
    renamed: int = 0
    classifier_identities: int = 0
    folded: list[str] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report as text lines (the ``reidstream convert`` output)."""
        out = [f"layout {self.layout}", *(f"read {s}" for s in self.sources)]
        out.append(f"copied {self.renamed} tensors")
        if self.classifier_identities:
            out.append(
                f"kept the identity classifier ({self.classifier_identities} training identities;"
                f" serving skips it)"
            )
        out += [f"folded {note}" for note in self.folded]
        if self.filled:
            out.append(f"filled {len(self.filled)} tensors the file lacks: {_listed(self.filled)}")
        return out


class OfficialState:
    """One official state dict under conversion: tensors are taken by name, and whatever is
    never taken is reported as unexpected by `finish`."""

    def __init__(self, tensors: Mapping[str, torch.Tensor], name: str) -> None:
        self.tensors = dict(tensors)
        self.name = name
        self.taken: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key in self.tensors

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def take(self, key: str) -> torch.Tensor:
        """The tensor under `key`, marked as used. Raises `ConversionError` if absent."""
        if key not in self.tensors:
            raise ConversionError(
                f"{self.name}: the official layout has {key!r}; this file lacks it"
            )
        self.taken.add(key)
        return self.tensors[key]

    def untaken(self) -> list[str]:
        return [k for k in self.tensors if k not in self.taken]


def read_official(path: str | Path, report: ConversionReport) -> OfficialState:
    """The official state dict in the file at `path` (``torch.load(weights_only=True)``).

    Raises:
        reid_models.WeightsError: A missing or unreadable file (pickled code included).
        ConversionError: A file that holds no state dict.
    """
    return official_state(read_weights_file(path), str(path), report)


def official_state(obj: Any, name: str, report: ConversionReport) -> OfficialState:
    """The state dict in `obj`, what the file `name` holds: unwraps ``{"state_dict": ...}`` (the
    AP3D code's ``save_checkpoint``) and strips ``module.`` (a model saved inside
    ``nn.DataParallel``), noting both in `report`.

    Raises:
        ConversionError: Not a mapping of names to tensors.
    """
    note = name
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        others = sorted(str(k) for k in obj if k != "state_dict")
        note += " (unwrapped {'state_dict': ...}" + (f"; also held {others})" if others else ")")
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise ConversionError(f"{name} holds a {type(obj).__name__}, not a dict of name -> tensor")
    prefixed = sum(k.startswith("module.") for k in obj)
    if prefixed:
        note += f" (stripped 'module.' from {prefixed} keys)"
    report.sources.append(note)
    return OfficialState({k.removeprefix("module."): v for k, v in obj.items()}, name)


#: (official key, tensor) per model key, what a converter produces.
Mapped = dict[str, tuple[str, torch.Tensor]]


@dataclass
class Conversion:
    """A converted official checkpoint: our model's name, overrides and state dict.

    Attributes:
        model_name: Registry name of the model the weights fit.
        overrides: Its builder overrides (e.g. GLTR's released configuration).
        num_classes: Rows of the kept identity classifier (0: none).
        state_dict: Our model's complete state dict.
        report: What was done (`ConversionReport`).
    """

    model_name: str
    overrides: dict[str, Any]
    num_classes: int
    state_dict: dict[str, torch.Tensor]
    report: ConversionReport

    def build_model(self) -> ReIDModel:
        """The model with the converted weights loaded, in eval mode."""
        model = create_model(self.model_name, num_classes=self.num_classes, **self.overrides)
        model.load_state_dict(self.state_dict, strict=True)
        return model.eval()

    def checkpoint(self) -> dict[str, Any]:
        """A self-describing reidstream checkpoint: the model spec (`reid_models.spec`: name,
        overrides and `PretrainedCfg`, so the file alone rebuilds the model at its input size
        and clip length), the state dict, and where the weights came from."""
        model = create_model(self.model_name, num_classes=0, **self.overrides)
        return {
            "format": CHECKPOINT_FORMAT,
            SPEC_KEY: model_spec(model),
            "state_dict": self.state_dict,
            "converted_from": {
                "layout": self.report.layout,
                "sources": list(self.report.sources),
                "folded": list(self.report.folded),
            },
        }


def finish(
    layout: str,
    name: str,
    overrides: dict[str, Any],
    mapped: Mapped,
    sources: list[OfficialState],
    report: ConversionReport,
    classifier_key: str,
) -> Conversion:
    """Builds the model and checks `mapped` against its state dict (see the module docstring).

    Raises:
        ConversionError: Listing every missing model key, unexpected official key and shape
            mismatch at once.
    """
    num_classes = mapped[classifier_key][1].shape[0] if classifier_key in mapped else 0
    model = create_model(name, num_classes=num_classes, **overrides)
    own = model.state_dict()
    for key in own:
        if key not in mapped and key.endswith("num_batches_tracked"):
            mapped[key] = ("(none)", torch.zeros((), dtype=torch.long))
            report.filled.append(key)
    missing = [k for k in own if k not in mapped]
    unexpected = [f"{s.name}: {k}" for s in sources for k in s.untaken()]
    unexpected += [f"{src} (as {k})" for k, (src, _) in mapped.items() if k not in own]
    for key, (src, tensor) in list(mapped.items()):
        if key in own and _same_but_singletons(tensor.shape, own[key].shape):
            mapped[key] = (src, tensor.reshape(own[key].shape))
    shapes = [
        f"{src} {tuple(t.shape)} -> {k} {tuple(own[k].shape)}"
        for k, (src, t) in mapped.items()
        if k in own and t.shape != own[k].shape
    ]
    _raise_if_any(layout, missing, unexpected, shapes)
    report.renamed = sum(src != "(none)" for src, _ in mapped.values())
    report.classifier_identities = num_classes
    state = {k: mapped[k][1].to(own[k].dtype).clone() for k in own}
    return Conversion(name, overrides, num_classes, state, report)


def _same_but_singletons(a: torch.Size, b: torch.Size) -> bool:
    """Whether two shapes differ only by size-1 axes: a Conv2d kernel (O, I, k, k) and a Conv3d
    kernel (O, I, 1, k, k), or a 1x1x1 Conv3d and a 1x1 Conv2d, hold the same operator."""
    return a != b and [n for n in a if n != 1] == [n for n in b if n != 1]


def _raise_if_any(layout: str, missing: list[str], unexpected: list[str], shapes: list[str]):
    problems = [
        f"{what} ({len(keys)}): {_listed(keys)}"
        for what, keys in (
            ("model keys the file does not give", missing),
            ("official keys with no place in the model", unexpected),
            ("shapes that differ", shapes),
        )
        if keys
    ]
    if problems:
        raise ConversionError(f"not an official {layout} checkpoint: " + "; ".join(problems))


def _listed(keys: list[str]) -> str:
    more = len(keys) - _LISTED
    return ", ".join(keys[:_LISTED]) + (f", ... and {more} more" if more > 0 else "")


def rename_all(
    state: OfficialState, rename: Callable[[str], str | None], mapped: Mapped, prefix: str = ""
) -> None:
    """Takes every remaining key of `state` that `rename` maps (None: leave it for the caller or
    for the unexpected list) into `mapped` under ``prefix + rename(key)``."""
    for key in state.untaken():
        ours = rename(key)
        if ours is not None:
            mapped[prefix + ours] = (key, state.take(key))


def rename_trunk(key: str, head: Mapping[str, str]) -> str | None:
    """Our name of a key of the official 2D ResNet-50 programs (GLTR, M3D): the trunk's keys
    (``conv1``, ``bn1``, ``layer1-4``; torchvision's names) under ``backbone.``, and the head's by
    the prefixes in `head`; None for any other key."""
    if key.startswith(("conv1.", "bn1.", "layer")):
        return f"backbone.{key}"
    return next(
        (new + key.removeprefix(old) for old, new in head.items() if key.startswith(old)), None
    )

"""`reidstream convert`: a checkpoint trained with a paper's official code -> a reidstream
checkpoint that ``run``, ``export`` and ``compile`` serve as they are.

    reidstream convert LAYOUT FILE [FILE] --out CHECKPOINT
      ap3dres50 | ap3dnlres50   AP3D's checkpoint_ep*.pth.tar
      gltr                      GLTR's weight/resnet50_mars_*.pth
      m3d                       M3D's ResNet50-2d.pth and/or weight/resnet50_m3d_*.pth

    reidstream run reid.engine=torch reid.checkpoint=CHECKPOINT     (no reid.model needed)

The work is `reid_models.convert`; this prints its report. A file that does not fit the layout
exits with status 2 and a message listing the keys that do not (`pipeline.cli`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pipeline.cli.common import setup_logging

#: `reid_models.convert.list_official()`, written out so that --help needs no torch (a test
#: holds them equal).
OFFICIAL_LAYOUTS = ("ap3dnlres50", "ap3dres50", "gltr", "m3d")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Convert a checkpoint trained with the official code of AP3D, GLTR or M3D into a "
        "self-describing reidstream checkpoint, and print what was renamed, folded and kept."
    )
    parser.add_argument("layout", choices=OFFICIAL_LAYOUTS, help="the official architecture")
    parser.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="the official checkpoint (m3d: the 2D stream's, the temporal stream's, or both)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="CHECKPOINT")
    parser.add_argument("--log-level", default="WARNING", help="logging level")


def run(args: argparse.Namespace) -> int:
    import torch

    from reid_models.convert import convert_official_files

    setup_logging(args.log_level)
    conversion = convert_official_files(args.layout, args.files)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(f".{args.out.name}.partial")
    torch.save(conversion.checkpoint(), partial)
    os.replace(partial, args.out)  # a killed run leaves no half-written checkpoint
    for line in conversion.report.lines():
        print(line)
    print(f"wrote {args.out} ({conversion.model_name}, {conversion.overrides or 'no overrides'})")
    return 0

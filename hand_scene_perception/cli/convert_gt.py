"""`hand-scene convert-gt`: a public hand dataset to the layout `eval real` reads."""

from __future__ import annotations

import argparse
from pathlib import Path


def run_convert_gt(args: argparse.Namespace) -> int:
    """Convert a public dataset's files into the ground-truth layout that ``eval real`` reads."""
    from ..datasets.converters import convert_fphab, convert_ge2019, convert_interhand

    if args.dataset == "fphab":
        if args.skeleton is None:
            raise ValueError("fphab needs --skeleton PATH (the sequence's skeleton.txt)")
        path = convert_fphab(args.source, args.skeleton, args.out, with_depth=not args.no_depth)
    elif args.dataset == "ge2019":
        path = convert_ge2019(args.source, args.out, crops=args.crops)
    else:
        path = convert_interhand(args.source, args.out)
    print(f"convert-gt: wrote {path} and {args.out / 'frames'}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register the command and its arguments."""
    convert = commands.add_parser("convert-gt", help="convert a public hand dataset to the layout `eval real` reads")
    convert.add_argument("dataset", choices=("fphab", "ge2019", "interhand"),
                         help="fphab: one FPHAB sequence folder (color/, depth/) + --skeleton; ge2019: the real-world "
                              "test set of Ge et al. 2019 (images/, params.mat, pose_gt.mat); interhand: "
                              "InterHand2.6M-format json files beside their images")
    convert.add_argument("source", type=Path, help="the dataset folder")
    convert.add_argument("out", type=Path, help="output folder (frames/, depth/, ground_truth.npz)")
    convert.add_argument("--skeleton", type=Path, default=None, help="fphab: the sequence's skeleton.txt")
    convert.add_argument("--no-depth", action="store_true", help="fphab: colour frames only")
    convert.add_argument("--crops", action="store_true",
                         help="ge2019: keep the 256x256 crops with per-frame intrinsics (default: paste them back "
                              "into 1280x720 frames with the video's intrinsics)")
    convert.set_defaults(handler=run_convert_gt)


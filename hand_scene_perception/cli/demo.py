"""`hand-scene demo`: the main job on the embedded default (README's first command)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def run_demo(args: argparse.Namespace) -> int:
    """The main job: the ego node (its own process) on a synthetic RGB-D bag over DDS, outputs recorded, summary and
    picture; a node that fails exits 1 with its error and the end of its log."""
    from ..ros.demo import format_summary
    from ..ros.demo import run_demo as run_ego_demo
    from ..ros.node_process import NodeProcessError

    try:
        summary = run_ego_demo(args.out, frames=args.frames, seed=args.seed, rate=args.rate, out=sys.stdout)
    except NodeProcessError as error:
        print(f"hand-scene demo: error: {error}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register the command and its arguments."""
    demo = commands.add_parser(
        "demo", help="the main job: ego node on a synthetic RGB-D bag over DDS (localhost); writes outputs/demo.*"
    )
    demo.add_argument("--out", type=Path, default=Path("outputs"), help="output folder (default: outputs)")
    demo.add_argument("--frames", type=int, default=150, help="frames to generate (default 150, 5 s at 30 Hz)")
    demo.add_argument("--seed", type=int, default=0, help="synthetic sequence seed (default 0)")
    demo.add_argument("--rate", type=float, default=1.0,
                      help="replay speed factor (default 1: the recorded 30 Hz, as a camera delivers it)")
    demo.set_defaults(handler=run_demo)


"""`hand-scene record`: the ego or multiview node's outputs to a bag."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import (
    BAG_OUT_HELP,
)


def run_record(args: argparse.Namespace) -> int:
    """Record the ego or multiview node's outputs (or --topics) to a bag until --duration or Ctrl-C."""
    from ..ros.bags.transport import EGO_OUTPUT_TOPICS, multiview_output_topics, record_bag

    outputs = EGO_OUTPUT_TOPICS if args.system == "ego" else multiview_output_topics(args.cameras)
    counts = record_bag(
        args.out, topics=args.topics or outputs, duration_s=args.duration, storage=args.storage,
        use_sim_time=args.use_sim_time, ros_args=args.ros_args,
        on_ready=lambda: print("hand-scene record: recording (Ctrl-C to stop)", file=sys.stderr, flush=True),
    )  # fmt: skip
    recorded = ", ".join(f"{topic} {count}" for topic, count in counts.items()) or "no topics seen"
    print(f"hand-scene record: wrote {args.out}: {recorded}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register the command and its arguments."""
    record = commands.add_parser("record", help="record the ego or multiview node's outputs to a bag until Ctrl-C")
    record.add_argument("--out", type=Path, required=True, help=BAG_OUT_HELP)
    record.add_argument("--topics", nargs="+", default=None,
                        help="topics to record (default: the --system node's outputs, /tf, /tf_static, /diagnostics)")
    record.add_argument("--system", choices=("ego", "multiview"), default="ego",
                        help="whose outputs to record by default (default ego)")
    record.add_argument("--cameras", nargs="+", default=["cam0", "cam1"], metavar="NAME",
                        help="multiview: the node's camera names, for <name>/camera_info_estimated (default cam0 cam1)")
    record.add_argument("--duration", type=float, default=None, help="stop after S seconds (default: Ctrl-C)")
    record.add_argument("--storage", choices=("mcap", "sqlite3"), default=None,
                        help="storage of a directory bag (default mcap; .mcap/.db3 names decide it)")
    record.add_argument("--use-sim-time", action="store_true", help="log times from /clock instead of the wall")
    record.add_argument("--ros-args", nargs=argparse.REMAINDER, default=[], help="ROS arguments for the node (last)")
    record.set_defaults(handler=run_record)


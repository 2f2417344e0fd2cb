"""`hand-scene replay`: a bag's topics over DDS with /clock."""

from __future__ import annotations

import argparse
from pathlib import Path


def run_replay(args: argparse.Namespace) -> int:
    """Publish a bag's topics over DDS with /clock (use_sim_time for the nodes listening)."""
    from ..ros.bags.transport import parse_remaps, replay_bag

    stats = replay_bag(
        args.bag, rate=args.rate, loop=args.loop, topics=args.topics, remaps=parse_remaps(args.remap),
        wait_for_subscribers_s=args.wait_for_subscribers, ros_args=args.ros_args,
    )  # fmt: skip
    published = ", ".join(f"{topic} {count}" for topic, count in stats.published.items())
    print(
        f"hand-scene replay: {stats.passes} pass(es), {stats.bag_s:.2f} s of bag in {stats.wall_s:.2f} s; "
        f"published {published}; /clock {stats.clock_messages}"
    )
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register the command and its arguments."""
    replay = commands.add_parser("replay", help="publish a bag's topics over DDS with /clock")
    replay.add_argument("bag", type=Path, help="rosbag2 directory or .mcap/.db3 file")
    replay.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1)")
    replay.add_argument("--loop", action="store_true",
                        help="play again and again until Ctrl-C (the clock restarts at the bag's start each pass)")
    replay.add_argument("--topics", nargs="+", default=None, help="only these topics (default: all)")
    replay.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="publish a topic under another name")
    replay.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="S",
                        help="first wait up to S seconds until every topic has a subscriber (default: no wait)")
    replay.add_argument("--ros-args", nargs=argparse.REMAINDER, default=[], help="ROS arguments for the node (last)")
    replay.set_defaults(handler=run_replay)


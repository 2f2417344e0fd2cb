"""`hand-scene launch`: a node's launch plan in this process (like ros2 launch)."""

from __future__ import annotations

import argparse
from pathlib import Path


def run_launch(args: argparse.Namespace) -> int:
    """Run a system's launch plan in this process (the wiring of launch/<system>.launch.py; no `ros2 launch`)."""
    from ..ros.launch.runner import launch_values, run_launch

    values = launch_values(args.arguments, None if args.params is None else str(args.params))
    return run_launch(args.system, values, args.ros_args, allow_network_discovery=args.allow_network_discovery,
                      print_plan=args.print_plan)  # fmt: skip


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register the command and its arguments."""
    launch = commands.add_parser(
        "launch",
        help="run a node's launch plan in this process (like ros2 launch)",
        usage="hand-scene launch {ego,multiview,gaussian} [NAME:=VALUE ...] [--params FILE] [--print-plan] "
        "[--allow-network-discovery] [--ros-args ...]",
    )
    launch.add_argument("system", choices=("ego", "multiview", "gaussian"),
                        help="which launch file's plan (launch/<system>.launch.py)")
    launch.add_argument("arguments", nargs="*", metavar="NAME:=VALUE", help="launch arguments (see launch/README.md)")
    launch.add_argument("--params", type=Path, default=None, help="parameter YAML (default: config/<system>.yaml)")
    launch.add_argument("--print-plan", action="store_true", help="print the nodes, parameters and remappings; exit")
    launch.add_argument(
        "--allow-network-discovery",
        action="store_true",
        help="accept ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET/SYSTEM_DEFAULT (default: refuse; unset means LOCALHOST)",
    )
    launch.add_argument("--ros-args", nargs=argparse.REMAINDER, default=[], help="ROS arguments for the node (last)")
    launch.set_defaults(handler=run_launch)

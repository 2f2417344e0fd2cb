"""`hand-scene bench`: speed of a pipeline against its reference, in one run."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import (
    print_report,
)


def run_bench(args: argparse.Namespace) -> int:
    """Benchmark a pipeline against its reference in the same run (or the synthetic generator) and print it."""
    if args.system == "synth":
        from ..eval.synth import benchmark_synth

        return print_report(benchmark_synth(num_frames=args.frames, seed=args.seed), args.json)
    if args.system == "ros-ego" and args.video is not None:
        from ..eval.ros_ego import benchmark_ros_ego_video

        report = benchmark_ros_ego_video(args.video, args.depth_dir, duration_s=args.duration, rate_hz=args.rate,
                                         max_hands=args.max_hands, subscribe_all=not args.hands_only,
                                         node_parameters=args.node_param)  # fmt: skip
        return print_report(report, args.json)
    if args.system == "ros-ego":
        from ..eval.ros_ego import benchmark_ros_ego

        return print_report(benchmark_ros_ego(duration_s=args.duration, rate_hz=args.rate), args.json)
    if args.system == "ros-soak":
        from ..eval.ros_ego import benchmark_ros_soak

        return print_report(benchmark_ros_soak(duration_s=args.duration), args.json)
    if args.system == "gaussian":
        from ..eval.gaussian import benchmark_gaussian

        return print_report(benchmark_gaussian(num_frames=args.frames, seed=args.seed), args.json)
    if args.system == "multiview":
        from ..eval.multiview import benchmark_multiview

        return print_report(benchmark_multiview(num_frames=args.frames, seed=args.seed), args.json)
    from ..eval.ego import benchmark_ego

    return print_report(benchmark_ego(num_frames=args.frames, seed=args.seed), args.json)


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register the command and its arguments."""
    bench = commands.add_parser("bench", help="speed of a pipeline against its reference, in one run")
    bench.add_argument("system", choices=("ego", "multiview", "synth", "ros-ego", "ros-soak", "gaussian"),
                       help="which pipeline (synth: the benchmark generator; ros-ego: the ego node through DDS; "
                            "ros-soak: its memory over a long RGB-D run, e.g. --duration 600; gaussian: posing and "
                            "rasterising two Gaussian hands on the CPU, e.g. --frames 10)")
    bench.add_argument("--duration", type=float, default=10.0,
                       help="ros-ego: seconds timed per phase; ros-soak: seconds of the run (default 10)")
    bench.add_argument("--frames", type=int, default=90, help="frames to time (default 90)")
    bench.add_argument("--seed", type=int, default=0, help="synthetic sequence seed (default 0)")
    bench.add_argument("--rate", type=float, default=30.0, help="ros-ego: camera frames per second (default 30)")
    bench.add_argument("--video", type=Path, default=None,
                       help="ros-ego: publish this real video's frames (node in its own process, every output "
                            "subscribed, against the hand expert alone on the same frames)")
    bench.add_argument("--depth-dir", type=Path, default=None,
                       help="ros-ego --video: aligned depth per frame (16-bit PNG mm or .npy m): RGB-D with mapping")
    bench.add_argument("--max-hands", type=int, default=1, help="ros-ego --video: hands the node tracks (default 1)")
    bench.add_argument("--hands-only", action="store_true",
                       help="ros-ego --video: subscribe to hands only (default: every output, as RViz and a recorder)")
    bench.add_argument("--node-param", action="append", default=[], metavar="NAME:=VALUE",
                       help="ros-ego --video: a node parameter (repeatable), e.g. visualization_rate_hz:=0")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(handler=run_bench)


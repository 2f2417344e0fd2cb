"""`hand-scene process`: the ego pipeline over a bag (no DDS) into an output bag."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .common import (
    BAG_OUT_HELP,
    Progress,
    add_backend_argument,
    add_hand_model_arguments,
)


def run_process(args: argparse.Namespace) -> int:
    """Run the ego pipeline over a bag as fast as it goes (no DDS) and write the node's outputs to a bag."""
    from ..ros.bags.io import open_bag

    reader = open_bag(args.bag)  # a bad bag is reported before the pipeline's imports
    images = sum(c.msgcount for c in reader.connections if c.topic == (args.image_topic or "/camera/image_raw"))
    reader.close()
    from ..backends.mediapipe_hands import MediaPipeUnavailableError
    from ..pipelines.ego import EgoConfig
    from ..ros.bags.process import process_bag

    config = EgoConfig(backend=args.backend, max_hands=args.max_hands, hand_model=args.hand_model,
                       mano_dir=None if args.mano_dir is None else str(args.mano_dir),
                       camera_pose_source=args.camera_pose_source)  # fmt: skip
    progress = Progress(images or None, command="process")
    start = time.perf_counter()
    try:
        stats = process_bag(
            args.bag, args.out, config, image_topic=args.image_topic, info_topic=args.info_topic,
            depth_topic=args.depth_topic, use_depth=not args.no_depth, storage=args.storage,
            world_frame=args.world_frame, map_period_s=args.map_period,
            on_frame=lambda s: progress.update(s.frames, s.hand_samples),
            on_warning=lambda text: print(f"hand-scene process: warning: {text}", file=sys.stderr),
        )  # fmt: skip
    except MediaPipeUnavailableError as error:
        raise ValueError(str(error)) from None
    wall_s = time.perf_counter() - start
    progress.update(stats.frames, stats.hand_samples, final=True)
    unpaired = f", unpaired {stats.unpaired}" if stats.unpaired else ""
    print(
        f"hand-scene process: {stats.outcome}: {stats.frames} frames, {stats.hand_samples} hand samples, "
        f"{stats.rejected} rejected{unpaired}, {stats.frames / max(wall_s, 1e-9):.1f} FPS; wrote {args.out}"
    )
    return 130 if stats.outcome == "interrupted" else 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register the command and its arguments."""
    process = commands.add_parser("process", help="run the ego pipeline over a bag (no DDS) into an output bag")
    process.add_argument("bag", type=Path, help="input rosbag2 directory or .mcap/.db3 file")
    process.add_argument("--out", type=Path, required=True, help=BAG_OUT_HELP)
    process.add_argument("--image-topic", default=None, help="colour image topic (default /camera/image_raw)")
    process.add_argument("--info-topic", default=None, help="CameraInfo topic (default /camera/camera_info)")
    process.add_argument("--depth-topic", default=None,
                         help="registered depth topic (default /camera/depth/image_raw, when the bag has it)")
    process.add_argument("--no-depth", action="store_true", help="RGB only: ignore depth (no metric map)")
    process.add_argument("--world-frame", default="map",
                         help="world frame of the outputs; with --camera-pose-source tf the TF frame the camera pose "
                              "is looked up in (default: map)")
    process.add_argument("--camera-pose-source", choices=("odometry", "tf", "static"), default="odometry",
                         help="odometry (default); tf: the image frame's pose in --world-frame from the bag's /tf and "
                              "/tf_static; static: a fixed camera, no odometry")
    process.add_argument("--map-period", type=float, default=1.0,
                         help="write the scene map every S seconds of bag time, and at the end (default 1)")
    process.add_argument("--storage", choices=("mcap", "sqlite3"), default=None,
                         help="storage of a directory bag (default mcap; .mcap/.db3 names decide it)")
    add_backend_argument(process)
    process.add_argument("--max-hands", type=int, default=2, help="most hands to track (default 2)")
    add_hand_model_arguments(process)
    process.set_defaults(handler=run_process)


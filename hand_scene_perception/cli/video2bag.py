"""`hand-scene video2bag`: a camera bag from a video or image folder."""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from pathlib import Path

from ..io.frames import (
    load_depth_m,
    matched_depth_files,
    open_frames,
)
from .common import (
    BAG_OUT_HELP,
    Progress,
    add_intrinsics_arguments,
    run_camera,
)


def run_video2bag(args: argparse.Namespace) -> int:
    """Turn a video or image folder (optionally with aligned depth) into a rosbag2 camera bag."""
    from ..ros.bags.transport import CameraFrame, camera_topics, write_camera_bag

    source = open_frames(args.input, args.fps, args.max_frames)
    try:
        depth_files = matched_depth_files(args.depth_dir, source) if args.depth_dir is not None else None
        camera, _ = run_camera(args, source.height, source.width)
        if not (math.isfinite(args.start_time) and args.start_time > 0):
            raise ValueError(f"--start-time must be a positive number of seconds, got {args.start_time}")
        start_ns = round(args.start_time * 1e9)

        def frames() -> Iterator:
            for index, stamp_ns, image in source.frames:
                depth = None
                if depth_files is not None:
                    if index >= len(depth_files):
                        raise ValueError(f"{len(depth_files)} depth files in {args.depth_dir} but more frames")
                    depth = load_depth_m(depth_files[index], source.height, source.width).astype("float32")
                yield CameraFrame(start_ns + stamp_ns, image, depth)

        progress = Progress(source.total, command="video2bag")
        counts = write_camera_bag(
            args.out, frames(), camera, frame_id=args.frame_id, topic_prefix=args.topic_prefix,
            storage=args.storage, on_frame=lambda done: progress.update(done, None),
        )  # fmt: skip
    finally:
        source.close()
    topics = camera_topics(args.topic_prefix)
    progress.update(counts[topics["image"]], None, final=True)
    print(f"hand-scene video2bag: wrote {args.out}: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register the command and its arguments."""
    video2bag = commands.add_parser("video2bag", help="turn a video or image folder into a rosbag2 camera bag")
    video2bag.add_argument("input", type=Path, help="video file (any format OpenCV reads) or folder of *.png/*.jpg")
    video2bag.add_argument("--out", type=Path, required=True, help=BAG_OUT_HELP)
    video2bag.add_argument("--depth-dir", type=Path, default=None,
                           help="aligned depth per frame (as for `run`), stored as 32FC1 metres")
    video2bag.add_argument("--intrinsics", type=Path, default=None, help="camera calibration YAML (camera_info format)")
    add_intrinsics_arguments(video2bag)
    video2bag.add_argument("--fps", type=float, default=None,
                           help="frame rate for the stamps (default: the video's own; 30 for image folders)")
    video2bag.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    video2bag.add_argument("--start-time", type=float, default=1.0,
                           help="stamp of the first frame, seconds (default 1; 0 means 'no time' in ROS)")
    video2bag.add_argument("--frame-id", default="camera_optical_frame", help="header frame (default: %(default)s)")
    video2bag.add_argument("--storage", choices=("mcap", "sqlite3"), default=None,
                           help="storage of a directory bag (default mcap; .mcap/.db3 names decide it)")
    video2bag.add_argument("--topic-prefix", default="/camera",
                           help="topics PREFIX/image_raw, PREFIX/camera_info, PREFIX/depth/image_raw (default /camera)")
    video2bag.set_defaults(handler=run_video2bag)


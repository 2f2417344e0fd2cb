"""`hand-scene run`: the ego pipeline over a video or image folder, outputs to a folder."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..io.frames import (
    load_depth_m,
    matched_depth_files,
    open_frames,
)
from ..io.video_out import check_video_path
from .common import (
    Progress,
    add_backend_argument,
    add_hand_model_arguments,
    add_intrinsics_arguments,
    run_camera,
)


def run_run(args: argparse.Namespace) -> int:
    """Run the ego pipeline offline over a video or image folder and write hands, trajectory, map and overview
    (and with ``--overlay`` a video of the hands drawn over each frame).

    Outputs are written when the run ends, also after Ctrl-C (exit 130) or an error part-way (which then
    exits as usual), so the frames processed so far are never lost."""
    source = open_frames(args.input, args.fps, args.max_frames)
    video = None
    try:
        depth_files = matched_depth_files(args.depth_dir, source) if args.depth_dir is not None else None
        camera, intrinsics = run_camera(args, source.height, source.width)
        if args.overlay is not None:
            check_video_path(args.overlay)
        # Imported only now, so bad arguments are reported without waiting for the pipeline's imports.
        from ..backends.mediapipe_hands import MediaPipeUnavailableError
        from ..core.hand_model.side import HandSide
        from ..io.video_out import Mp4Writer
        from ..pipelines.ego import EgoConfig, EgoFrame, EgoPipeline
        from ..pipelines.ego_outputs import EgoRecorder
        from ..pipelines.overlay import draw_overlay

        config = EgoConfig(
            backend=args.backend,
            max_hands=args.max_hands,
            hand_model=args.hand_model,
            mano_dir=None if args.mano_dir is None else str(args.mano_dir),
            camera_pose_source=args.camera_pose_source,
        )
        if args.out.exists() and not args.out.is_dir():
            raise ValueError(f"--out {args.out} exists and is not a folder")
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"cannot create the output folder {args.out}: {error}") from None
        try:
            pipeline = EgoPipeline(config)
        except MediaPipeUnavailableError as error:
            raise ValueError(str(error)) from None
        with pipeline:
            recorder = EgoRecorder(pipeline.model.name, pipeline.model.num_shape_params)
            faces = {side: pipeline.model.faces(side) for side in HandSide}
            if args.overlay is not None:
                video = Mp4Writer(args.overlay, source.fps, source.width, source.height)
            progress = Progress(source.total)
            outcome = "complete"
            start = time.perf_counter()
            try:
                for index, stamp_ns, image in source.frames:
                    depth = None
                    if depth_files is not None:
                        if index >= len(depth_files):
                            raise ValueError(
                                f"{len(depth_files)} depth files in {args.depth_dir} but the video has more frames"
                            )
                        depth = load_depth_m(depth_files[index], source.height, source.width)
                    result = pipeline.process(EgoFrame(image, camera, stamp_ns, depth))
                    recorder.add(index, result)
                    if video is not None:
                        video.write(draw_overlay(image, camera, [hand.camera for hand in result.hands], faces))
                    progress.update(recorder.frames, recorder.hand_samples)
            except KeyboardInterrupt:
                outcome = "interrupted"
            except BaseException as error:
                outcome = f"stopped by an error: {error}"
                raise
            finally:
                wall_s = time.perf_counter() - start
                progress.update(recorder.frames, recorder.hand_samples, final=True)
                extra = {
                    "outcome": outcome,
                    "input": str(args.input),
                    "depth_dir": None if args.depth_dir is None else str(args.depth_dir),
                    "width": source.width,
                    "height": source.height,
                    "input_fps": source.fps,
                    "fps": round(recorder.frames / wall_s, 2) if wall_s > 0 else None,
                    "wall_s": round(wall_s, 3),
                    "intrinsics": intrinsics,
                    "overlay": None if args.overlay is None else str(args.overlay),
                }
                written = recorder.write(args.out, pipeline.map.points(), pipeline.map.colors(), extra)
    finally:
        source.close()
        if video is not None:
            video.close()
    summary = recorder.summary()
    print(
        f"hand-scene run: {outcome}: {recorder.frames} frames, {summary['hand_samples']} hand samples in "
        f"{len(summary['tracks'])} track(s), {extra['fps']} FPS; wrote {', '.join(written)} to {args.out}"
        + ("" if args.overlay is None else f" and the overlay video {args.overlay}")
    )
    return 130 if outcome == "interrupted" else 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register the command and its arguments."""
    run = commands.add_parser("run", help="run the ego pipeline over a video or image folder and write its outputs")
    run.add_argument("input", type=Path, help="video file (any format OpenCV reads) or folder of *.png/*.jpg frames")
    run.add_argument("--out", type=Path, required=True, help="output folder (created; files in it are replaced)")
    run.add_argument(
        "--depth-dir",
        type=Path,
        default=None,
        help="aligned depth per frame: 16-bit PNG millimetres or .npy metres, matched by file stem or by sorted order",
    )
    run.add_argument(
        "--intrinsics",
        type=Path,
        default=None,
        help="camera calibration YAML in the ROS camera_info format (camera_calibration's output)",
    )
    add_intrinsics_arguments(run)
    run.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frame rate for the stamps (default: the video's own; 30 for image folders)",
    )
    run.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    add_backend_argument(run)
    run.add_argument("--max-hands", type=int, default=2, help="most hands to track (default 2)")
    run.add_argument("--camera-pose-source", choices=("odometry", "static"), default="odometry",
                     help="odometry: visual odometry tracks the camera (default); static: a fixed camera, no odometry")
    run.add_argument("--overlay", type=Path, default=None, metavar="OUT.mp4",
                     help="also write the hands (meshes, skeletons) drawn over each frame as an MP4 video")
    add_hand_model_arguments(run)
    run.set_defaults(handler=run_run)


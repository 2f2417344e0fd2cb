"""`hand-scene detect`: hands in one image, placed in the camera frame."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..io.frames import (
    load_depth_m,
    load_rgb,
)
from .common import (
    add_backend_argument,
    add_intrinsics_arguments,
    camera_from_args,
)


def run_detect(args: argparse.Namespace) -> int:
    """Detect hands in one image and estimate each in the camera frame (the ego pipeline's per-frame estimate)."""
    import numpy as np

    from ..backends.mediapipe_hands import MediaPipeUnavailableError
    from ..backends.registry import create_hand_expert
    from ..pipelines.ego import EgoConfig, hand_estimator

    image = load_rgb(args.image)
    height, width = image.shape[:2]
    camera, intrinsics = camera_from_args(args, height, width)
    depth = load_depth_m(args.depth, height, width) if args.depth is not None else None
    try:
        config = EgoConfig(backend=args.backend, max_hands=args.max_hands)
        detector = create_hand_expert(config.backend, max_hands=config.max_hands, mode="image")
        try:
            detections = detector.detect(image)
            estimator = hand_estimator(config, detector)
        finally:
            detector.close()
    except MediaPipeUnavailableError as error:
        print(f"hand-scene detect: error: {error}", file=sys.stderr)
        return 2
    hands = []
    for detection in detections:
        try:
            fit = estimator.estimate(detection, camera, depth)
        except ValueError:  # landmarks that cannot be placed (an inconsistent detection): not reported
            continue
        hands.append(
            {
                "side": detection.side.value,
                "score": round(detection.score, 4),
                "landmarks_px": np.round(detection.landmarks_px, 2).tolist(),
                "joints_cam_m": np.round(fit.joints_cam, 5).tolist(),
                "wrist_m": np.round(fit.joints_cam[0], 5).tolist(),
                "wrist_pose": np.round(fit.wrist_pose, 6).tolist(),
                "model_pose": np.round(fit.pose, 6).tolist(),
                "reprojection_error_px": round(float(fit.reprojection_error_px or 0.0), 3),
            }
        )
    report = {
        "hands": hands,
        "image": {"path": str(args.image), "width": width, "height": height, "depth": args.depth is not None},
        "intrinsics": intrinsics,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{args.image}: {width}x{height}, fx={intrinsics['fx']:.1f} fy={intrinsics['fy']:.1f} "
        f"cx={intrinsics['cx']:.1f} cy={intrinsics['cy']:.1f}{' (assumed)' if intrinsics['assumed'] else ''}, "
        f"{len(hands)} hand(s)"
    )
    for index, hand in enumerate(hands, 1):
        x, y, z = hand["wrist_m"]
        print(
            f"  hand {index}: {hand['side']} (score {hand['score']:.2f}), wrist at ({x:.3f}, {y:.3f}, {z:.3f}) m, "
            f"reprojection {hand['reprojection_error_px']:.1f} px"
        )
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register the command and its arguments."""
    detect = commands.add_parser("detect", help="detect hands in one image and place them in the camera frame")
    detect.add_argument("image", type=Path, help="colour image (any format Pillow reads)")
    add_intrinsics_arguments(detect)
    detect.add_argument(
        "--depth",
        type=Path,
        default=None,
        help="aligned depth: 16-bit PNG in millimetres or .npy in metres (resampled to the image, 0 = none)",
    )
    add_backend_argument(detect)
    detect.add_argument("--max-hands", type=int, default=2, help="most hands to report (default 2)")
    detect.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    detect.set_defaults(handler=run_detect)


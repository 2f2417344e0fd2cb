"""The `hand-scene` command: one entry point for demos, offline runs, evaluation and benchmarks.

Sub-commands import their heavy dependencies lazily so `hand-scene --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__

# Default focal length as a multiple of the image's larger side: a 2·atan(1/2) ≈ 53° field of view across it,
# typical of webcams and phone main cameras; real intrinsics (--fx ...) are always better.
DEFAULT_FOCAL_PER_SIDE = 1.0


def run_demo(args: argparse.Namespace) -> int:
    """Render the configured hand model in a few poses, both sides, to a PNG."""
    from .core.hand_model import create_hand_model
    from .synth.hand_model_figure import render_hand_model_figure

    model = create_hand_model(args.hand_model, mano_dir=args.mano_dir)
    path = render_hand_model_figure(args.out / "hand_model.png", model=model)
    print(f"demo: wrote {path} ({model.name}: open palm, fist and pinch, right and left hands)")
    return 0


def _load_rgb(path: Path):
    """RGB uint8 array of an image file (alpha dropped, gray expanded), or ValueError naming the file."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read {path} as an image: {error}") from None


def _load_depth_m(path: Path, height: int, width: int):
    """Depth in metres at the colour size (0 = no depth): a .npy of metres or a 16-bit PNG of millimetres."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from .core.depth import aligned_depth_metres

    if not path.is_file():
        raise FileNotFoundError(f"no such depth file: {path}")
    try:
        if path.suffix.lower() == ".npy":
            raw = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as image:
                raw = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ValueError(f"cannot read {path} as depth: {error}") from None
    if raw.dtype == np.int32 and raw.size and raw.min() >= 0 and raw.max() <= np.iinfo(np.uint16).max:
        raw = raw.astype(np.uint16)  # Pillow opens some 16-bit PNGs as 32-bit integers
    return aligned_depth_metres(raw, height, width)


def _detect_intrinsics(args: argparse.Namespace, height: int, width: int) -> dict[str, float | bool]:
    """The user's intrinsics, each missing one filled with the documented default (53° FOV, centred)."""
    focal = DEFAULT_FOCAL_PER_SIDE * max(width, height)
    fx = args.fx if args.fx is not None else (args.fy if args.fy is not None else focal)
    fy = args.fy if args.fy is not None else fx
    cx = args.cx if args.cx is not None else (width - 1) / 2.0
    cy = args.cy if args.cy is not None else (height - 1) / 2.0
    assumed = any(getattr(args, name) is None for name in ("fx", "fy", "cx", "cy"))
    return {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "assumed": assumed}


def run_detect(args: argparse.Namespace) -> int:
    """Detect hands in one image and place them metrically in the camera frame."""
    import numpy as np

    from .backends.mediapipe_hands import MediaPipeHandDetector, MediaPipeUnavailableError
    from .core.camera import PinholeCamera
    from .core.placement import place_hand

    image = _load_rgb(args.image)
    height, width = image.shape[:2]
    intrinsics = _detect_intrinsics(args, height, width)
    camera = PinholeCamera.from_intrinsics(
        intrinsics["fx"], intrinsics["fy"], intrinsics["cx"], intrinsics["cy"], width, height
    )
    depth = _load_depth_m(args.depth, height, width) if args.depth is not None else None
    if intrinsics["assumed"]:
        fov = math.degrees(2.0 * math.atan(max(width, height) / (2.0 * intrinsics["fx"])))
        print(
            f"hand-scene detect: warning: intrinsics not all given; assuming a {fov:.0f}° field of view "
            "and the principal point at the centre",
            file=sys.stderr,
        )
    try:
        with MediaPipeHandDetector(max_hands=args.max_hands, mode="image") as detector:
            detections = detector.detect(image)
    except MediaPipeUnavailableError as error:
        print(f"hand-scene detect: error: {error}", file=sys.stderr)
        return 2
    hands = []
    for detection in detections:
        placement = place_hand(
            camera, detection.landmarks_px, detection.world_landmarks_m, detection.side, depth_m=depth
        )
        hands.append(
            {
                "side": detection.side.value,
                "score": round(detection.score, 4),
                "landmarks_px": np.round(detection.landmarks_px, 2).tolist(),
                "joints_cam_m": np.round(placement.joints_cam_m, 5).tolist(),
                "wrist_m": np.round(placement.joints_cam_m[0], 5).tolist(),
                "wrist_pose": np.round(placement.wrist_pose, 6).tolist(),
                "reprojection_error_px": round(placement.reprojection_error_px, 3),
                "depth_scale": round(placement.scale, 4),
                "depth_inliers": placement.depth_inliers,
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


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate a pipeline on generated sequences with ground truth and print the metrics."""
    from .pipelines.ego_eval import evaluate_ego

    summary = evaluate_ego(
        seeds=tuple(args.seeds), num_frames=args.frames, num_hands=tuple(args.hands),
        oracle=args.oracle, noise_px=args.noise_px, use_depth=not args.no_depth,
    )  # fmt: skip
    return _print_report(summary, args.json)


def run_bench(args: argparse.Namespace) -> int:
    """Benchmark a pipeline against its reference in the same run and print the figures."""
    from .pipelines.ego_eval import benchmark_ego

    return _print_report(benchmark_ego(num_frames=args.frames, seed=args.seed), args.json)


def _print_report(report: dict, as_json: bool) -> int:
    """One JSON object, or one `key: value` line per entry for people."""
    if as_json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {round(value, 4) if isinstance(value, float) else value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with one sub-command per job."""
    parser = argparse.ArgumentParser(prog="hand-scene", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the main job on the embedded default and write outputs/")
    demo.add_argument("--out", type=Path, default=Path("outputs"), help="output folder (default: outputs)")
    demo.add_argument(
        "--hand-model",
        choices=("open", "mano"),
        default="open",
        help="hand model: the package's open model (default) or MANO (needs --mano-dir)",
    )
    demo.add_argument("--mano-dir", type=Path, default=None, help="folder holding MANO_RIGHT/LEFT .pkl or .npz")
    demo.set_defaults(handler=run_demo)

    detect = commands.add_parser("detect", help="detect hands in one image and place them in the camera frame")
    detect.add_argument("image", type=Path, help="colour image (any format Pillow reads)")
    for name, what in (
        ("fx", "focal length x"),
        ("fy", "focal length y"),
        ("cx", "principal point x"),
        ("cy", "principal point y"),
    ):
        detect.add_argument(
            f"--{name}",
            type=float,
            default=None,
            help=f"{what} in pixels (default: fx = fy = the larger image side, a 53° field of "
            "view; principal point at the image centre)",
        )
    detect.add_argument(
        "--depth",
        type=Path,
        default=None,
        help="aligned depth: 16-bit PNG in millimetres or .npy in metres (resampled to the image, 0 = none)",
    )
    detect.add_argument("--max-hands", type=int, default=2, help="most hands to report (default 2)")
    detect.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    detect.set_defaults(handler=run_detect)

    evaluate = commands.add_parser("eval", help="measure a pipeline on synthetic sequences with ground truth")
    evaluate.add_argument("system", choices=("ego",), help="which pipeline")
    evaluate.add_argument("--oracle", action="store_true", help="ground-truth landmarks + pixel noise, no detector")
    evaluate.add_argument("--noise-px", type=float, default=2.0, help="oracle landmark noise, pixels (default 2)")
    evaluate.add_argument("--no-depth", action="store_true", help="RGB only: monocular odometry, no map")
    evaluate.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="sequence seeds (default: 0 1)")
    evaluate.add_argument("--hands", type=int, nargs="+", default=[1, 2], choices=(1, 2),
                          help="hand counts to generate (default: 1 2)")
    evaluate.add_argument("--frames", type=int, default=100, help="frames per sequence (default 100)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(handler=run_eval)

    bench = commands.add_parser("bench", help="speed of a pipeline against its reference, in one run")
    bench.add_argument("system", choices=("ego",), help="which pipeline")
    bench.add_argument("--frames", type=int, default=90, help="frames to time (default 90)")
    bench.add_argument("--seed", type=int, default=0, help="synthetic sequence seed (default 0)")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(handler=run_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen sub-command; user errors exit 2 with a message, not a traceback."""
    args = build_parser().parse_args(argv)
    # The per-frame maths is many tiny matrices: BLAS and torch thread pools only add overhead there, and
    # the pipeline already runs MediaPipe and odometry side by side on the cores. Must precede numpy's import.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        return args.handler(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"hand-scene {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

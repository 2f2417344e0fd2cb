"""What several commands share: camera intrinsics from arguments, the progress display, the report printer and
the argument groups."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Default focal length as a multiple of the image's larger side: a 2·atan(1/2) ≈ 53° field of view across it,
# typical of webcams and phone main cameras; real intrinsics (--fx ...) are always better.
DEFAULT_FOCAL_PER_SIDE = 1.0


def camera_from_args(args: argparse.Namespace, height: int, width: int):
    """Camera from --fx/--fy/--cx/--cy, each missing one filled with the documented default (53° FOV, centred;
    a warning on stderr says so), and those intrinsics as a dict with ``assumed``."""
    from ..core.camera import PinholeCamera

    focal = DEFAULT_FOCAL_PER_SIDE * max(width, height)
    fx = args.fx if args.fx is not None else (args.fy if args.fy is not None else focal)
    fy = args.fy if args.fy is not None else fx
    cx = args.cx if args.cx is not None else (width - 1) / 2.0
    cy = args.cy if args.cy is not None else (height - 1) / 2.0
    camera = PinholeCamera.from_intrinsics(fx, fy, cx, cy, width, height)
    assumed = any(getattr(args, name) is None for name in ("fx", "fy", "cx", "cy"))
    if assumed:
        fov = math.degrees(2.0 * math.atan(max(width, height) / (2.0 * fx)))
        print(
            f"hand-scene {args.command}: warning: intrinsics not all given; assuming a {fov:.0f}° field of view "
            "and the principal point at the centre",
            file=sys.stderr,
        )
    return camera, {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "assumed": assumed}


def run_camera(args: argparse.Namespace, height: int, width: int):
    """Camera from --intrinsics (a camera_info YAML, rescaled to the frames when only the resolution differs)
    or from --fx/--fy/--cx/--cy with the documented defaults; and a JSON-ready description of it."""
    from ..core.camera import load_camera_info_yaml

    if args.intrinsics is None:
        return camera_from_args(args, height, width)
    if any(getattr(args, name) is not None for name in ("fx", "fy", "cx", "cy")):
        raise ValueError("give either --intrinsics or --fx/--fy/--cx/--cy, not both")
    camera = load_camera_info_yaml(args.intrinsics)
    if (camera.width, camera.height) != (width, height):
        sx, sy = width / camera.width, height / camera.height
        if abs(sx - sy) > 0.01 * max(sx, sy):
            raise ValueError(
                f"{args.intrinsics} is for {camera.width}x{camera.height} images, but the frames are "
                f"{width}x{height} (another aspect ratio: not the same camera mode)"
            )
        print(
            f"hand-scene {args.command}: warning: scaling {args.intrinsics} from {camera.width}x{camera.height} to the "
            f"frames' {width}x{height}",
            file=sys.stderr,
        )
        camera = camera.scaled(sx, sy)
    description = {
        "fx": camera.fx,
        "fy": camera.fy,
        "cx": camera.cx,
        "cy": camera.cy,
        "assumed": False,
        "distortion_model": camera.distortion_model,
        "d": list(camera.d),
        "file": str(args.intrinsics),
    }
    return camera, description


class Progress:
    """Frames done, rate and hands on stderr: one line redrawn in place on a terminal; on a pipe or log file a
    plain line every few seconds instead (no carriage-return clutter)."""

    def __init__(self, total: int | None, clock: Callable[[], float] = time.monotonic, command: str = "run",
                 unit: str = "frames") -> None:  # fmt: skip
        """``unit``: what is counted ("frames": the rate reads FPS; anything else: UNIT/s)."""
        self.total = total
        self.command = command
        self.unit = unit
        self._clock = clock
        self._start = self._last = clock()
        try:
            self._tty = sys.stderr is not None and sys.stderr.isatty()
        except (AttributeError, ValueError):  # replaced or closed stderr
            self._tty = False

    def update(self, done: int, hands: int | None, final: bool = False) -> None:
        """Show progress after ``done`` frames (``hands`` detected so far, None: not counted), throttled to a few
        updates a second."""
        now = self._clock()
        if not final and now - self._last < (0.2 if self._tty else 5.0):
            return
        self._last = now
        rate = done / max(now - self._start, 1e-9)
        of = f"/{self.total}" if self.total else ""
        per_second = "FPS" if self.unit == "frames" else f"{self.unit}/s"
        line = f"hand-scene {self.command}: {done}{of} {self.unit}, {rate:.1f} {per_second}"
        line += "" if hands is None else f", {hands} hand samples"
        try:
            if self._tty:
                sys.stderr.write("\r" + line + ("\n" if final else ""))
            else:
                sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):  # no usable stderr: progress is optional
            pass


def print_report(report: dict, as_json: bool) -> int:
    """One JSON object, or one `key: value` line per entry for people."""
    if as_json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {round(value, 4) if isinstance(value, float) else value}")
    return 0


def add_intrinsics_arguments(parser: argparse.ArgumentParser) -> None:
    """--fx/--fy/--cx/--cy, shared by the commands that take one camera's intrinsics on the command line."""
    for name, what in (
        ("fx", "focal length x"),
        ("fy", "focal length y"),
        ("cx", "principal point x"),
        ("cy", "principal point y"),
    ):
        parser.add_argument(
            f"--{name}",
            type=float,
            default=None,
            help=f"{what} in pixels (default: fx = fy = the larger image side, a 53° field of "
            "view; principal point at the image centre)",
        )


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """--backend: the hand expert (backends/registry.py), shared by the commands that detect hands."""
    from ..backends.registry import BACKEND_NAMES

    parser.add_argument("--backend", choices=BACKEND_NAMES, default=BACKEND_NAMES[0],
                        help=f"hand expert (default {BACKEND_NAMES[0]}: MediaPipe's bundled models on the CPU)")


def add_hand_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--hand-model and --mano-dir, shared by the commands that pose a hand model."""
    from ..core.hand_model.factory import HAND_MODEL_NAMES

    parser.add_argument(
        "--hand-model",
        choices=HAND_MODEL_NAMES,
        default="open",
        help="hand model: the package's open model (default) or MANO (needs --mano-dir)",
    )
    parser.add_argument("--mano-dir", type=Path, default=None, help="folder holding MANO_RIGHT/LEFT .pkl or .npz")


BAG_OUT_HELP = "output bag: NAME.mcap or NAME.db3 is one file (replaced), another name a new rosbag2 directory"

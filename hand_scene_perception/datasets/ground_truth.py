"""The real-data ground-truth layout that ``hand-scene eval real`` reads and ``hand-scene convert-gt`` writes.

A folder::

    frames/              the colour images, in time order by name (PNG or JPEG, any size)
    depth/               optional: depth aligned to the colour images, same stems, uint16 millimetre PNG
    ground_truth.npz     K (N, 3, 3) per frame; joints_cam (N, H, 21, 3) metres in the camera's optical frame,
                         21 joints in the product's order (wrist, thumb CMC..tip, index..pinky MCP..tip);
                         valid (N, H) bool; sides (H,) 'left' / 'right'; fps (scalar: the frames' rate, 0 for
                         unrelated single images, whose temporal metrics are then not computed)

One slot per hand (H): slot h is always the same physical hand. The layout is plain numpy so that any dataset
converts to it with a few lines (see :mod:`.converters`), and it never needs a pickle to read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.hand_model import NUM_JOINTS, HandSide

GROUND_TRUTH_FILE = "ground_truth.npz"
FRAMES_DIR = "frames"
DEPTH_DIR = "depth"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def natural_key(path: Path) -> list:
    """Sort key that orders frame_2 before frame_10 (zero-padded names as plain sorting does; case ignored)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


@dataclass(frozen=True)
class RealSequence:
    """A real sequence (or image set) with 3D hand ground truth in the camera frame."""

    frames: list[Path]
    K: np.ndarray
    joints_cam: np.ndarray
    valid: np.ndarray
    sides: tuple[HandSide, ...]
    fps: float
    depth: list[Path] | None = None

    def __post_init__(self) -> None:
        """Reject inconsistent arrays with the reason: a benchmark on a broken layout would mislead silently."""
        n, hands = len(self.frames), len(self.sides)
        checks = (
            ("K", self.K.shape, (n, 3, 3)),
            ("joints_cam", self.joints_cam.shape, (n, hands, NUM_JOINTS, 3)),
            ("valid", self.valid.shape, (n, hands)),
        )
        for name, shape, expected in checks:
            if shape != expected:
                raise ValueError(f"{name} has shape {shape}, expected {expected} for {n} frames and {hands} hands")
        if n == 0 or hands == 0:
            raise ValueError("the ground truth holds no frames or no hands")
        if not np.all(np.isfinite(self.joints_cam[self.valid])):
            raise ValueError("joints_cam has non-finite values in frames marked valid")
        if not np.all(self.joints_cam[self.valid][..., 2] > 0):
            raise ValueError("joints_cam has joints at or behind the camera in frames marked valid")
        if not (np.all(np.isfinite(self.K)) and np.all(self.K[:, 0, 0] > 0) and np.all(self.K[:, 1, 1] > 0)):
            raise ValueError("K must be finite with positive focal lengths")
        if not (np.isfinite(self.fps) and self.fps >= 0):
            raise ValueError(f"fps must be >= 0 (0: single images), got {self.fps}")
        if self.depth is not None and len(self.depth) != n:
            raise ValueError(f"{len(self.depth)} depth images for {n} frames")

    @property
    def is_video(self) -> bool:
        """Consecutive frames (temporal metrics apply) rather than unrelated images."""
        return self.fps > 0


def load_real_sequence(folder: str | Path, with_depth: bool = False) -> RealSequence:
    """Read the layout above; a missing file or an inconsistent array raises ValueError naming it."""
    folder = Path(folder)
    gt_path = folder / GROUND_TRUTH_FILE
    if not gt_path.is_file():
        raise ValueError(f"{gt_path} not found: the folder needs frames/ and {GROUND_TRUTH_FILE} "
                         "(see `hand-scene convert-gt --help` for converting a public dataset)")
    frames = sorted((p for p in (folder / FRAMES_DIR).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES),
                    key=natural_key)
    with np.load(gt_path, allow_pickle=False) as data:
        missing = {"K", "joints_cam", "valid", "sides"} - set(data.files)
        if missing:
            raise ValueError(f"{gt_path} lacks {sorted(missing)}")
        arrays = {name: data[name] for name in data.files}
    depth = None
    if with_depth:
        by_stem = {p.stem: p for p in (folder / DEPTH_DIR).glob("*.png")}
        absent = [f.name for f in frames if f.stem not in by_stem]
        if absent:
            raise ValueError(f"--depth: {len(absent)} frames have no depth image in {folder / DEPTH_DIR} "
                             f"(first: {absent[0]})")
        depth = [by_stem[f.stem] for f in frames]
    return RealSequence(
        frames=frames,
        K=np.asarray(arrays["K"], np.float64),
        joints_cam=np.asarray(arrays["joints_cam"], np.float64),
        valid=np.asarray(arrays["valid"], bool),
        sides=tuple(HandSide.parse(str(side)) for side in arrays["sides"]),
        fps=float(arrays.get("fps", 0.0)),
        depth=depth,
    )


def save_ground_truth(folder: str | Path, K: np.ndarray, joints_cam: np.ndarray, valid: np.ndarray,
                      sides: list[str], fps: float) -> Path:
    """Write ground_truth.npz atomically (a half-written file never replaces a good one)."""
    path = Path(folder) / GROUND_TRUTH_FILE
    partial = path.with_suffix(".partial.npz")
    np.savez_compressed(partial, K=np.asarray(K, np.float64), joints_cam=np.asarray(joints_cam, np.float64),
                        valid=np.asarray(valid, bool), sides=np.asarray(sides, dtype="U5"), fps=float(fps))
    partial.replace(path)
    return path

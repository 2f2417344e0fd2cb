"""What goes into the ego pipeline (EgoFrame) and what comes out of it per frame (EgoResult, EgoHand)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...core.camera import PinholeCamera
from ...core.contacts import Contact
from ...core.hand_model import HandSide
from ...core.hand_state import HandState
from ...core.odometry import OdometryResult
from ...core.transforms import check_rigid_matrices


@dataclass(frozen=True)
class EgoFrame:
    """One input: the colour image, its camera, the image stamp, optional aligned depth.

    image_rgb: (H, W, 3) uint8 RGB; grey, RGBA and uint16 colour are converted (core/images.py as_rgb8).

    depth: uint16 millimetres or float metres, any resolution (resampled to the colour image), 0/NaN = none.

    T_world_camera: the camera's known pose at the stamp (4x4 rigid), for ``camera_pose_source`` tf only.
    """

    image_rgb: np.ndarray
    camera: PinholeCamera
    stamp_ns: int
    depth: np.ndarray | None = None
    T_world_camera: np.ndarray | None = None

    def __post_init__(self) -> None:
        """A given pose must be one rigid transform: a bad one would put every hand and map point elsewhere."""
        if self.T_world_camera is not None:
            pose = check_rigid_matrices(self.T_world_camera, "T_world_camera")
            if pose.shape != (4, 4):
                raise ValueError(f"T_world_camera must be one 4x4 transform, got shape {pose.shape}")
            object.__setattr__(self, "T_world_camera", pose.copy())


@dataclass(frozen=True)
class EgoHand:
    """One tracked hand: the same state in the camera frame and in the world frame."""

    track_id: int
    side: HandSide
    side_confidence: float
    camera: HandState
    world: HandState
    reprojection_error_px: float | None


@dataclass(frozen=True)
class EgoResult:
    """Everything one frame produced; timings in milliseconds per stage."""

    stamp_ns: int
    hands: list[EgoHand]
    T_world_camera: np.ndarray
    odometry: OdometryResult
    map_points_added: int
    contacts: list[Contact]
    timings_ms: dict[str, float]
    session_reset: str | None = None
    detections: int = 0

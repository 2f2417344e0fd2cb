"""The ego pipeline's settings (the ego node exposes the same names as ROS parameters)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...core.camera import CAMERA_POSE_SOURCES
from ...core.tracking import TrackerConfig
from ..hand_estimate import HandStageConfig


@dataclass
class EgoConfig(HandStageConfig):
    """Pipeline settings (the ego node exposes the same names as ROS parameters)."""

    voxel_size_m: float = 0.01
    max_voxels: int = 500_000
    map_stride: int = 2
    # Frames fused into the map per second of image time (0: every frame). Fusing is the pipeline's largest
    # cost after the detector (~15 ms a frame of mostly interpreter-bound numpy at 640x480, stride 2, beside
    # fitting); a 30 Hz camera moves millimetres between frames, so every third frame should keep the map (and
    # the contacts measured against it) as complete, and odometry still tracks every frame. Measured only on the
    # synthetic RGB-D eval (map chamfer 6.5 -> 6.25 mm, hand and camera errors unchanged): no real RGB-D sequence
    # with ground truth was at hand.
    map_fusion_rate_hz: float = 10.0
    contact_threshold_m: float = 0.01
    hand_mask_margin_px: int = 20
    max_fit_match_m: float = 0.12
    # Expected change of a finger joint's angles between frames (core/fitting.py temporal_sigma_rad): on the RGB-D
    # benchmark 0.3 -> 0.07 rad took Acc Err 3.9 -> 2.6 mm/frame² and C-MPJPE 14.2 -> 13.2 mm (a grasp moves a
    # finger joint ~0.03 rad per frame at 30 Hz, so this holds no real motion back); on real video (RGB) no prior ->
    # 0.07 took Acc Err 16.7 -> 16.4 mm/frame² at the same C-MPJPE.
    fit_temporal_sigma_rad: float = 0.07
    # With depth: move the wrist, knuckles and PIPs onto the depth image before fitting (core/placement.py), unless the
    # detector's metric output is exact (detector_size_sigma 0: its own joints are better than the depth's).
    lift_joints_to_depth: bool = True
    initial_pose: np.ndarray | None = None
    # Where the camera pose comes from (CAMERA_POSE_SOURCES): odometry (visual odometry, the world is the first
    # pose); tf (every frame brings its pose, EgoFrame.T_world_camera: the node looks it up in TF); static (no
    # odometry, the camera stays at initial_pose: a fixed rig, where odometry would only add drift).
    camera_pose_source: str = "odometry"
    tracker: TrackerConfig = field(
        default_factory=lambda: TrackerConfig(
            filters={
                # No One-Euro filter on the angles: on real video with 3D ground truth it lagged the hand (C-MPJPE
                # 28.4 -> 31.7 mm, RR 19.0 -> 23.5) for little smoothing (Acc Err 16.4 -> 17.6 mm/frame²); the
                # fitter's temporal prior already keeps the angles steady. The wrist keeps the default position
                # filter (real video: Acc Err 19.2 -> 16.4 mm/frame² for +0.8 mm C-MPJPE).
                "rotation": None,
                "articulation": None,
                # The fitter already keeps a running average of the shape (core/fitting.py shape_rate), and
                # the articulation is fitted with that shape: a second, slower filter here held the first
                # frames' noisy shape and posed the filtered angles on other bones (+5 mm C-MPJPE).
                "shape": None,
            }
        )
    )

    def __post_init__(self) -> None:
        """Reject values that would make the pipeline misbehave silently."""
        super().__post_init__()
        for name in ("voxel_size_m", "contact_threshold_m", "max_fit_match_m", "fit_temporal_sigma_rad"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.map_fusion_rate_hz >= 0:
            raise ValueError(f"map_fusion_rate_hz must be >= 0 (0: every frame), got {self.map_fusion_rate_hz}")
        if self.max_voxels < 1 or self.map_stride < 1 or self.hand_mask_margin_px < 0:
            raise ValueError("max_voxels and map_stride must be >= 1 and hand_mask_margin_px >= 0")
        if self.camera_pose_source not in CAMERA_POSE_SOURCES:
            raise ValueError(f"camera_pose_source must be one of {', '.join(CAMERA_POSE_SOURCES)}, "
                             f"got {self.camera_pose_source!r}")

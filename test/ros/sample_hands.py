"""Deterministic hand states shared by the ROS tests and their publisher subprocess."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.hand_state import HandState

WORLD_FRAME = "map"
CAMERA_FRAME = "camera_color_optical_frame"


def sample_hand(track_id: int, side: str, seed: int) -> HandState:
    """A well-formed HandState with values derived from seed (the receiver rebuilds it to compare)."""
    rng = np.random.default_rng(seed)
    wrist = np.eye(4)
    wrist[:3, :3] = Rotation.from_rotvec(rng.normal(scale=0.5, size=3)).as_matrix()
    wrist[:3, 3] = rng.uniform(-0.5, 0.5, size=3)
    return HandState(
        track_id=track_id,
        side=side,
        confidence=float(rng.uniform(0.5, 1.0)),
        joints=wrist[:3, 3] + rng.normal(scale=0.05, size=(21, 3)),
        wrist_pose=wrist,
        model_name="open_hand_v1",
        model_pose=rng.normal(scale=0.2, size=(16, 3)),
        model_shape=rng.normal(scale=0.1, size=10),
        model_translation=wrist[:3, 3],
        vertices=rng.normal(scale=0.05, size=(778, 3)),
        landmarks_px=rng.uniform(0, 480, size=(21, 2)),
        image_frame_id=CAMERA_FRAME,
    )


def sample_camera_pose(seed: int) -> np.ndarray:
    """T_world_camera for the TF exchange test."""
    rng = np.random.default_rng(seed + 1000)
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_rotvec(rng.normal(scale=0.3, size=3)).as_matrix()
    pose[:3, 3] = rng.normal(size=3)
    return pose

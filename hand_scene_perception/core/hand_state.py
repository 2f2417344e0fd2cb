"""The per-hand result every pipeline produces and the ROS layer converts (ARCHITECTURE.md, Layers).

Plain numpy data, no ROS and no torch, so pipelines, benchmarks and file writers share it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from .hand_model.joint_order import NUM_JOINTS
from .hand_model.side import HandSide


@dataclass
class HandState:
    """One hand at one instant, all 3D data in one frame (metres).

    joints: (21, 3) in the product order (ARCHITECTURE.md, Conventions).
    wrist_pose: (4, 4) pose of the wrist frame (x toward the middle MCP, z out of the back
        of the hand, y = z x x) in the data frame.
    model_pose: (16, 3) axis-angle in MANO joint order, row 0 global; model_shape: (S,);
        model_translation: (3,); vertices = model(pose, shape) + translation, (V, 3) or None.
    landmarks_px: (21, 2) pixels in the image named by image_frame_id, or None.
    """

    track_id: int
    side: HandSide
    confidence: float
    joints: np.ndarray
    wrist_pose: np.ndarray
    model_name: str
    model_pose: np.ndarray
    model_shape: np.ndarray
    model_translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    vertices: np.ndarray | None = None
    landmarks_px: np.ndarray | None = None
    image_frame_id: str = ""

    def __post_init__(self) -> None:
        """Validate shapes once, here, so writers and converters can trust them."""
        self.side = HandSide.parse(self.side)
        self.joints = _checked(self.joints, (NUM_JOINTS, 3), "joints")
        self.wrist_pose = _checked(self.wrist_pose, (4, 4), "wrist_pose")
        self.model_pose = _checked(np.asarray(self.model_pose).reshape(-1, 3), (16, 3), "model_pose")
        self.model_shape = np.asarray(self.model_shape, dtype=np.float64).reshape(-1)
        self.model_translation = _checked(self.model_translation, (3,), "model_translation")
        if self.vertices is not None:
            self.vertices = np.asarray(self.vertices, dtype=np.float64)
            if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
                raise ValueError(f"vertices must be (V, 3), got {self.vertices.shape}")
        if self.landmarks_px is not None:
            self.landmarks_px = _checked(self.landmarks_px, (NUM_JOINTS, 2), "landmarks_px")
        if not 0.0 <= float(self.confidence) <= 1.0:
            raise ValueError(f"confidence must be in [0, 1], got {self.confidence}")


def _checked(value: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Return value as float64 with the given shape, or raise a ValueError naming the field."""
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def transformed_model_params(model_pose: np.ndarray, model_translation: np.ndarray, root: np.ndarray,
                             transform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The hand model's (16, 3) pose and (3,) translation for the same hand expressed through ``transform`` (4, 4):
    the global rotation turned, the translation moved so that ``root`` (the posed root joint, the model's rotation
    centre) lands where the transform takes it."""
    rotation, offset = transform[:3, :3], transform[:3, 3]
    model_pose = np.array(model_pose, np.float64)
    model_pose[0] = (Rotation.from_matrix(rotation) * Rotation.from_rotvec(model_pose[0])).as_rotvec()
    # The root stays the rotation centre: its rest position is root - translation.
    return model_pose, rotation @ root + offset - (root - model_translation)


def transformed_state(state: HandState, transform: np.ndarray) -> HandState:
    """The same hand expressed in another frame (transform maps the state's frame into the new one)."""
    rotation, offset = transform[:3, :3], transform[:3, 3]
    model_pose, model_translation = transformed_model_params(state.model_pose, state.model_translation,
                                                             state.joints[0], transform)  # fmt: skip
    return HandState(
        track_id=state.track_id,
        side=state.side,
        confidence=state.confidence,
        joints=state.joints @ rotation.T + offset,
        wrist_pose=transform @ state.wrist_pose,
        model_name=state.model_name,
        model_pose=model_pose,
        model_shape=state.model_shape,
        model_translation=model_translation,
        vertices=None if state.vertices is None else state.vertices @ rotation.T + offset,
        landmarks_px=state.landmarks_px,
        image_frame_id=state.image_frame_id,
    )

"""The wrist frame (ARCHITECTURE.md, Conventions) computed from 21 joints, for any hand model or detector.

Origin at the wrist, x toward the middle-finger MCP, z out of the back of the hand, y = z × x:
y points toward the thumb for a right hand and toward the little finger for a left hand
(the left frame is the mirror image of the right one and stays right-handed).
"""

from __future__ import annotations

import numpy as np

from .side import HandSide

WRIST, INDEX_MCP, MIDDLE_MCP, PINKY_MCP = 0, 5, 9, 17


def wrist_frame_from_joints(joints: np.ndarray, side: HandSide | str) -> np.ndarray:
    """(..., 4, 4) pose of the wrist frame in the joints' frame, from (..., 21, 3) joints (product order).

    The back of the hand is found from the palm plane spanned by the index and little-finger
    MCPs: for a right hand (pinky - wrist) × (index - wrist) points dorsally; the mirrored
    left hand needs the opposite order.
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape[-2:] != (21, 3):
        raise ValueError(f"joints must be (..., 21, 3), got {joints.shape}")
    side = HandSide.parse(side)
    wrist = joints[..., WRIST, :]
    x_axis = _unit(joints[..., MIDDLE_MCP, :] - wrist, "wrist and middle MCP coincide")
    to_index = joints[..., INDEX_MCP, :] - wrist
    to_pinky = joints[..., PINKY_MCP, :] - wrist
    dorsal = np.cross(to_pinky, to_index) if side is HandSide.RIGHT else np.cross(to_index, to_pinky)
    # Remove the x component so the frame is orthonormal with x exactly toward the middle MCP.
    z_axis = _unit(dorsal - np.sum(dorsal * x_axis, axis=-1, keepdims=True) * x_axis, "palm joints are collinear")
    y_axis = np.cross(z_axis, x_axis)
    frame = np.zeros((*joints.shape[:-2], 4, 4))
    frame[..., :3, 0], frame[..., :3, 1], frame[..., :3, 2] = x_axis, y_axis, z_axis
    frame[..., :3, 3] = wrist
    frame[..., 3, 3] = 1.0
    return frame


def _unit(vectors: np.ndarray, degenerate: str) -> np.ndarray:
    """Normalise along the last axis, raising ValueError(degenerate) for (near-)zero vectors."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    if np.any(norms < 1e-9):
        raise ValueError(f"cannot build a wrist frame: {degenerate}")
    return vectors / norms

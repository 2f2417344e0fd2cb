"""Joint orders and the explicit conversions between them.

The product speaks one 21-joint order everywhere (ARCHITECTURE.md, Conventions), the one MediaPipe
and OpenPose use: 0 wrist; thumb 1-4 (CMC, MCP, IP, tip); index 5-8; middle 9-12;
ring 13-16; pinky 17-20 (MCP, PIP, DIP, tip).

Articulated hand models (MANO and the open model) are posed in MANO's 16-joint
kinematic order: 0 wrist; index 1-3; middle 4-6; pinky 7-9; ring 10-12; thumb 13-15.
Appending the five fingertips (thumb, index, middle, ring, pinky) gives a 21-row
"model order" that :data:`MODEL_TO_MEDIAPIPE` rearranges into the product order.
"""

from __future__ import annotations

import numpy as np

NUM_JOINTS = 21
NUM_POSE_JOINTS = 16

MEDIAPIPE_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)  # fmt: skip

MANO_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)  # fmt: skip

# Parent of each of the 16 pose joints in MANO's kinematic tree (-1: root).
MANO_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)

# Fingertips appended after the 16 pose joints, in this finger order.
TIP_FINGER_ORDER: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")

# Row i of the product order is row MODEL_TO_MEDIAPIPE[i] of the 21-row model order.
MODEL_TO_MEDIAPIPE: tuple[int, ...] = (
    0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20,
)  # fmt: skip

# Inverse permutation: row j of the model order is row MEDIAPIPE_TO_MODEL[j] of the product order.
MEDIAPIPE_TO_MODEL: tuple[int, ...] = tuple(int(i) for i in np.argsort(MODEL_TO_MEDIAPIPE))

# Parent of each of the 21 product-order joints (-1: root); fingers chain from the wrist.
MEDIAPIPE_PARENTS: tuple[int, ...] = (
    -1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19,
)  # fmt: skip

# Fingertip rows of the product order, thumb to pinky.
MEDIAPIPE_TIPS: tuple[int, ...] = (4, 8, 12, 16, 20)


def model_to_mediapipe(joints_model_order):
    """Reorder (..., 21, D) joints from model order to the product (MediaPipe) order.

    Works for numpy arrays and torch tensors alike (plain fancy indexing).
    """
    return joints_model_order[..., list(MODEL_TO_MEDIAPIPE), :]


def mediapipe_to_model(joints_mediapipe_order):
    """Reorder (..., 21, D) joints from the product (MediaPipe) order to model order."""
    return joints_mediapipe_order[..., list(MEDIAPIPE_TO_MODEL), :]

"""Hand models (MANO with user-supplied files, or the open model) behind one interface.

Importing this package loads no model implementation; :func:`create_hand_model` does that on demand.
"""

from __future__ import annotations

from .base import HandModel, HandModelOutput, HandSide
from .factory import HAND_MODEL_NAMES, create_hand_model
from .joint_order import (
    MANO_JOINT_NAMES,
    MANO_PARENTS,
    MEDIAPIPE_JOINT_NAMES,
    MEDIAPIPE_PARENTS,
    MEDIAPIPE_TIPS,
    MEDIAPIPE_TO_MODEL,
    MODEL_TO_MEDIAPIPE,
    NUM_JOINTS,
    NUM_POSE_JOINTS,
    TIP_FINGER_ORDER,
    mediapipe_to_model,
    model_to_mediapipe,
)

__all__ = [
    "HAND_MODEL_NAMES",
    "MANO_JOINT_NAMES",
    "MANO_PARENTS",
    "MEDIAPIPE_JOINT_NAMES",
    "MEDIAPIPE_PARENTS",
    "MEDIAPIPE_TIPS",
    "MEDIAPIPE_TO_MODEL",
    "MODEL_TO_MEDIAPIPE",
    "NUM_JOINTS",
    "NUM_POSE_JOINTS",
    "TIP_FINGER_ORDER",
    "HandModel",
    "HandModelOutput",
    "HandSide",
    "create_hand_model",
    "mediapipe_to_model",
    "model_to_mediapipe",
]

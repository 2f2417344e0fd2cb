"""Hand models (MANO with user-supplied files, or the open model) behind one interface.

Importing this package loads neither torch nor a model implementation: the torch-based names
(the protocol, its output type and :func:`create_hand_model`) load on first use, so
tracking, messages and file writers can use sides and joint orders cheaply.
"""

from __future__ import annotations

import importlib
from typing import Any

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
from .side import HandSide

_LAZY = {"HandModel": "base", "HandModelOutput": "base", "HAND_MODEL_NAMES": "factory", "create_hand_model": "factory"}


def __getattr__(name: str) -> Any:
    """Load the torch-based names on first access."""
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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

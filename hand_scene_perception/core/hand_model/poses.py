"""Named hand poses (flat, fist, pinch, point) as 16x3 axis-angle arrays in MANO joint order.

Poses are written once as local joint angles (flexion, abduction, twist; radians; see
:func:`.open_model.local_joint_axes`) and turned into axis-angle with a model's joint axes.
By default those are the open hand model's axes; a MANO wrapper passes the axes computed
by :func:`.open_model.local_joint_axes` from MANO's own rest joints, so the same table gives
the same gestures on both models (the parameterisation, 16x3 axis-angle in MANO order, is shared).
For the left hand the axes are mirrored, so ``named_pose(name, "left")`` is ``mirror_pose`` of
the right-hand array and gives the mirror-image gesture.
"""

from __future__ import annotations

import numpy as np

from .open_model import local_joint_axes
from .side import HandSide

# Rows: MANO joint order (wrist; index, middle, pinky, ring: MCP, PIP, DIP; thumb CMC, MCP, IP).
# Columns: flexion (curl toward the palm), abduction (toward the thumb), twist (about the bone).


def _curl(mcp_abduction: float = 0.0) -> np.ndarray:
    """Finger curled into the palm (MCP, PIP, DIP rows); a little MCP abduction packs the fingers together."""
    return np.array([[1.55, mcp_abduction, 0.0], [1.70, 0.0, 0.0], [0.65, 0.0, 0.0]])


# Thumb folded over the middle phalanges of the curled index and middle fingers. Thumb values
# here and in "pinch" were found once by fitting the thumb (and index) tip to a target on the
# open model (tip over the middle finger's middle phalanx; tip on the index tip), then rounded.
_THUMB_OVER_FINGERS = np.array([[0.64, 0.16, 0.01], [0.45, 0.18, 0.35], [1.40, -0.10, -0.18]])

_LOCAL_ANGLES: dict[str, np.ndarray] = {
    "flat": np.zeros((16, 3)),
    # All four fingers curled into the palm, thumb folded across the middle phalanges.
    "fist": np.concatenate(
        [
            np.zeros((1, 3)),
            _curl(-0.05),
            _curl(),
            _curl(0.12),
            _curl(0.05),
            _THUMB_OVER_FINGERS,
        ]
    ),
    # Thumb tip meets index tip; the other fingers relaxed and slightly curled.
    "pinch": np.concatenate(
        [
            np.zeros((1, 3)),
            [[0.83, 0.0, 0.0], [0.89, 0.0, 0.0], [0.50, 0.0, 0.0]],
            [[0.35, 0.0, 0.0], [0.45, 0.0, 0.0], [0.25, 0.0, 0.0]],
            [[0.45, 0.0, 0.0], [0.55, 0.0, 0.0], [0.30, 0.0, 0.0]],
            [[0.40, 0.0, 0.0], [0.50, 0.0, 0.0], [0.28, 0.0, 0.0]],
            [[0.58, 0.40, 0.21], [0.28, -0.16, -0.17], [0.17, 0.01, -0.13]],
        ]
    ),
    # Index extended, the other fingers curled, thumb over the middle finger.
    "point": np.concatenate(
        [
            np.zeros((1, 3)),
            np.zeros((3, 3)),
            _curl(),
            _curl(0.12),
            _curl(0.05),
            _THUMB_OVER_FINGERS,
        ]
    ),
}

POSE_NAMES: tuple[str, ...] = tuple(_LOCAL_ANGLES)


def named_local_angles(name: str) -> np.ndarray:
    """(16, 3) local (flexion, abduction, twist) angles of a named pose, side-independent."""
    try:
        return _LOCAL_ANGLES[name].copy()
    except KeyError:
        raise ValueError(f"unknown pose {name!r}; known poses: {', '.join(POSE_NAMES)}") from None


def named_pose(name: str, side: HandSide | str = HandSide.RIGHT, axes: np.ndarray | None = None) -> np.ndarray:
    """(16, 3) axis-angle of a named pose for ``side``, ready for ``HandModel.forward``.

    ``axes`` (16, 3, 3) are the model's local joint axes for that side; the default is the open
    hand model's. Raises ValueError naming the known poses for an unknown name.
    """
    local = named_local_angles(name)
    if axes is None:
        axes = local_joint_axes(None, side)
    return np.einsum("jab,jb->ja", axes, local)

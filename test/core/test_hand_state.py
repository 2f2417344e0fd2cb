"""HandState validates what pipelines hand to writers and the ROS layer."""

from __future__ import annotations

import numpy as np
import pytest

from hand_scene_perception.core.hand_model import HandSide
from hand_scene_perception.core.hand_state import HandState


def make_state(**overrides) -> HandState:
    fields = dict(track_id=1, side="right", confidence=0.9, joints=np.zeros((21, 3)), wrist_pose=np.eye(4),
                  model_name="open_hand_v1", model_pose=np.zeros(48), model_shape=np.zeros(10))
    fields.update(overrides)
    return HandState(**fields)


def test_normalises_side_and_pose_layout():
    state = make_state(side="LEFT")
    assert state.side is HandSide.LEFT
    assert state.model_pose.shape == (16, 3)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("joints", np.zeros((20, 3)), "joints"),
        ("joints", np.full((21, 3), np.nan), "NaN"),
        ("wrist_pose", np.eye(3), "wrist_pose"),
        ("model_pose", np.zeros(45), "model_pose"),
        ("confidence", 1.5, "confidence"),
        ("side", "up", "left' or 'right"),
        ("vertices", np.zeros((10, 2)), "vertices"),
        ("landmarks_px", np.zeros((21, 3)), "landmarks_px"),
    ],
)
def test_rejects_malformed_fields(field, value, message):
    with pytest.raises(ValueError, match=message):
        make_state(**{field: value})

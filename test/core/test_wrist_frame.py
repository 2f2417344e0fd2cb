"""Wrist frame from joints: matches the model's canonical frame and follows rigid motion."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.hand_model.open_model import OpenHandModel
from hand_scene_perception.core.hand_model.wrist_frame import wrist_frame_from_joints


@pytest.fixture(scope="module")
def model() -> OpenHandModel:
    return OpenHandModel()


@pytest.mark.parametrize("side", ["right", "left"])
def test_rest_pose_frame_is_the_model_frame(model, side):
    joints = model.forward(np.zeros((16, 3), np.float32), side=side).joints[0]
    frame = wrist_frame_from_joints(joints, side)
    np.testing.assert_allclose(frame[:3, 3], joints[0], atol=1e-6)
    # x toward the middle MCP by construction; z (dorsal) within a few degrees of the model's +z.
    np.testing.assert_allclose(frame[:3, 0], joints[9] / np.linalg.norm(joints[9]), atol=1e-6)
    assert frame[2, 2] > np.cos(np.radians(10))
    assert np.linalg.det(frame[:3, :3]) == pytest.approx(1.0)
    # y toward the thumb for the right hand, toward the little finger for the left.
    thumb_side = np.sign(joints[2] @ frame[:3, 1])
    assert thumb_side == (1 if side == "right" else -1)


@pytest.mark.parametrize("side", ["right", "left"])
def test_frame_follows_global_rotation_and_translation(model, side):
    rest = model.forward(np.zeros((16, 3), np.float32), side=side).joints[0]
    rotation = Rotation.from_rotvec([0.3, -1.1, 0.7])
    moved = rotation.apply(rest) + [0.1, -0.2, 0.5]
    expected = wrist_frame_from_joints(rest, side)
    got = wrist_frame_from_joints(np.stack([moved, moved]), side)
    assert got.shape == (2, 4, 4)
    np.testing.assert_allclose(got[0, :3, :3], rotation.as_matrix() @ expected[:3, :3], atol=1e-6)
    np.testing.assert_allclose(got[1, :3, 3], moved[0], atol=1e-9)


def test_degenerate_joints_are_rejected():
    with pytest.raises(ValueError, match="middle MCP"):
        wrist_frame_from_joints(np.zeros((21, 3)), "right")
    with pytest.raises(ValueError, match="21, 3"):
        wrist_frame_from_joints(np.zeros((20, 3)), "right")

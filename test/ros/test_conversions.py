"""Pure numpy <-> message conversions (no DDS needed)."""

from __future__ import annotations

import numpy as np
import pytest
from sample_hands import CAMERA_FRAME, sample_camera_pose, sample_hand

from hand_scene_msgs.msg import Hand
from hand_scene_perception.ros.conversions import (
    hand_array_msg,
    hand_msg,
    hand_state,
    mesh_topology_msg,
    pose_matrix,
    pose_msg,
    time_msg,
    time_ns,
    transform_matrix,
    transform_msg,
)


def test_time_round_trip_and_split():
    stamp = time_msg(12_345_678_901)
    assert (stamp.sec, stamp.nanosec) == (12, 345_678_901)
    assert time_ns(stamp) == 12_345_678_901
    with pytest.raises(ValueError):
        time_msg(-1)


def test_pose_and_transform_round_trip():
    matrix = sample_camera_pose(3)
    np.testing.assert_allclose(pose_matrix(pose_msg(matrix)), matrix, atol=1e-12)
    transform = transform_msg(matrix, "map", CAMERA_FRAME, 5)
    assert (transform.header.frame_id, transform.child_frame_id) == ("map", CAMERA_FRAME)
    np.testing.assert_allclose(transform_matrix(transform), matrix, atol=1e-12)


def test_hand_round_trip_keeps_every_field():
    state = sample_hand(4, "left", seed=11)
    msg = hand_msg(state, "map", 42)
    assert msg.side == Hand.LEFT and msg.header.frame_id == "map" and time_ns(msg.header.stamp) == 42
    assert len(msg.model_pose) == 48 and len(msg.vertices) == 778 * 3 and len(msg.landmarks_px) == 42
    back = hand_state(msg)
    np.testing.assert_allclose(back.joints, state.joints, atol=1e-12)
    np.testing.assert_allclose(back.vertices, state.vertices, atol=1e-6)
    np.testing.assert_allclose(back.model_shape, state.model_shape, atol=1e-6)
    np.testing.assert_allclose(back.model_translation, state.model_translation, atol=1e-12)
    assert back.confidence == pytest.approx(state.confidence, abs=1e-6)


def test_mesh_can_be_left_out():
    msg = hand_msg(sample_hand(1, "right", seed=2), "map", 0, include_mesh=False)
    assert len(msg.vertices) == 0
    assert hand_state(msg).vertices is None


def test_empty_hand_array_is_still_a_message():
    msg = hand_array_msg([], "map", 7)
    assert msg.hands == [] and msg.header.frame_id == "map"


def test_unknown_side_is_rejected():
    msg = hand_msg(sample_hand(1, "right", seed=2), "map", 0)
    msg.side = 5
    with pytest.raises(ValueError, match="LEFT"):
        hand_state(msg)


def test_mesh_topology_validates_indices():
    faces = np.array([[0, 1, 2], [2, 1, 3]])
    msg = mesh_topology_msg("open_hand_v1", faces, faces[:, ::-1], vertex_count=4)
    assert list(msg.faces_right) == [0, 1, 2, 2, 1, 3] and msg.vertex_count == 4
    with pytest.raises(ValueError, match="vertex_count"):
        mesh_topology_msg("open_hand_v1", faces, faces, vertex_count=3)

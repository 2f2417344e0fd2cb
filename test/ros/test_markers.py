"""RViz hand markers: mesh + skeleton per hand, stable ids, side colours, lifetimes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from sample_hands import sample_hand
from visualization_msgs.msg import Marker, MarkerArray

from hand_scene_perception.core.hand_model.joint_order import MEDIAPIPE_PARENTS
from hand_scene_perception.core.hand_model.side import HandSide
from hand_scene_perception.ros.conversions import time_ns
from hand_scene_perception.ros.markers import SKELETON_EDGES, delete_all_markers, hand_marker_array

FACES = np.random.default_rng(5).integers(0, 778, size=(200, 3))
FACES_BY_SIDE = {HandSide.RIGHT: FACES, HandSide.LEFT: FACES[:, ::-1]}


def xyz(points) -> np.ndarray:
    return np.array([[p.x, p.y, p.z] for p in points])


def received(markers) -> MarkerArray:
    """What a subscriber gets from the published bytes."""
    return deserialize_message(markers.serialized(), MarkerArray)


def test_skeleton_edges_are_the_twenty_bones():
    assert len(SKELETON_EDGES) == 20
    assert all(MEDIAPIPE_PARENTS[child] == parent for child, parent in SKELETON_EDGES)


def test_one_mesh_and_one_skeleton_per_hand_with_stable_ids_and_side_colours():
    left, right = sample_hand(3, "left", seed=1), sample_hand(7, "right", seed=2)
    array = received(hand_marker_array([(3, left), (7, right)], FACES_BY_SIDE, "map", 1_500_000_000, 250_000_000))
    assert [(m.ns, m.id, m.type) for m in array.markers] == [
        ("hands/mesh", 3, Marker.TRIANGLE_LIST), ("hands/skeleton", 3, Marker.LINE_LIST),
        ("hands/mesh", 7, Marker.TRIANGLE_LIST), ("hands/skeleton", 7, Marker.LINE_LIST),
    ]  # fmt: skip
    left_mesh, left_skeleton, right_mesh, _ = array.markers
    np.testing.assert_allclose(xyz(left_mesh.points), left.vertices[FACES[:, ::-1].reshape(-1)])
    np.testing.assert_allclose(xyz(right_mesh.points), right.vertices[FACES.reshape(-1)])
    np.testing.assert_allclose(xyz(left_skeleton.points), left.joints[np.array(SKELETON_EDGES).reshape(-1)])
    for marker in array.markers:
        assert marker.header.frame_id == "map" and time_ns(marker.header.stamp) == 1_500_000_000
        assert (marker.lifetime.sec, marker.lifetime.nanosec) == (0, 250_000_000)
        assert marker.action == Marker.ADD and marker.pose.orientation.w == 1.0
    assert left_mesh.color.b > left_mesh.color.r and right_mesh.color.r > right_mesh.color.b
    assert (left_mesh.scale.x, left_skeleton.scale.x) == (1.0, pytest.approx(0.004))
    again = received(hand_marker_array([(3, sample_hand(3, "left", seed=9))], {"left": FACES}, "map", 2, 0,
                                       namespace="ego"))  # fmt: skip
    assert [(m.ns, m.id) for m in again.markers] == [("ego/mesh", 3), ("ego/skeleton", 3)]
    assert again.markers[0].lifetime.sec == 0 and again.markers[0].lifetime.nanosec == 0


def test_hand_without_mesh_gets_only_a_skeleton_and_big_track_ids_fit_int32():
    state = dataclasses.replace(sample_hand(2**32 - 1, "right", seed=3), vertices=None)
    array = received(hand_marker_array([(state.track_id, state)], {}, "map", 0, 10))
    assert [(m.ns, m.type) for m in array.markers] == [("hands/skeleton", Marker.LINE_LIST)]
    assert 0 <= array.markers[0].id < 2**31
    np.testing.assert_allclose(xyz(array.markers[0].points), state.joints[np.array(SKELETON_EDGES).reshape(-1)])


def test_bad_faces_are_rejected():
    hand = sample_hand(1, "right", seed=4)
    with pytest.raises(ValueError, match="no mesh faces given for the right hand"):
        hand_marker_array([(1, hand)], {HandSide.LEFT: FACES}, "map", 0, 0)
    with pytest.raises(ValueError, match="indices below 778"):
        hand_marker_array([(1, hand)], {HandSide.RIGHT: FACES + 778}, "map", 0, 0)


def test_empty_input_and_delete_all():
    assert received(hand_marker_array([], FACES_BY_SIDE, "map", 0, 0)).markers == []
    (marker,) = received(delete_all_markers("map", 42)).markers
    assert marker.action == Marker.DELETEALL and marker.ns == "" and time_ns(marker.header.stamp) == 42

"""Length-capped nav_msgs/Path."""

from __future__ import annotations

import numpy as np
import pytest
from nav_msgs.msg import Path
from rclpy.serialization import deserialize_message, serialize_message
from sample_hands import sample_camera_pose

from hand_scene_perception.ros.conversions import pose_matrix, time_ns
from hand_scene_perception.ros.paths import CappedPath


def test_cap_drops_the_oldest_and_message_matches_the_poses():
    path = CappedPath(3)
    for k in range(5):
        path.append(100 + k, sample_camera_pose(k))
    assert len(path) == 3
    msg = path.msg("map")
    assert msg.header.frame_id == "map" and time_ns(msg.header.stamp) == 104
    assert [time_ns(p.header.stamp) for p in msg.poses] == [102, 103, 104]
    assert all(p.header.frame_id == "map" for p in msg.poses)
    for k, pose in zip(range(2, 5), msg.poses, strict=True):
        np.testing.assert_allclose(pose_matrix(pose.pose), sample_camera_pose(k), atol=1e-12)
    # poses are reused across messages; a new frame id rebuilds them
    assert path.msg("map").poses[0] is msg.poses[0]
    assert {p.header.frame_id for p in path.msg("odom").poses} == {"odom"}


def test_poses_between_is_inclusive_and_returns_copies():
    path = CappedPath(10)
    for k in range(5):
        path.append(k * 10, sample_camera_pose(k))
    window = path.poses_between(10, 30)
    assert [stamp for stamp, _ in window] == [10, 20, 30]
    window[0][1][:] = 0
    np.testing.assert_allclose(path.poses_between(10, 10)[0][1], sample_camera_pose(1))
    assert path.poses_between(31, 39) == []


def test_repeated_stamp_replaces_and_older_stamp_is_refused_until_clear():
    path = CappedPath(4)
    path.append(5, np.eye(4))
    path.append(5, sample_camera_pose(1))
    assert len(path) == 1
    np.testing.assert_allclose(pose_matrix(path.msg("map").poses[0].pose), sample_camera_pose(1), atol=1e-12)
    with pytest.raises(ValueError, match="clear"):
        path.append(4, np.eye(4))
    path.clear()
    path.append(4, np.eye(4))
    assert len(path) == 1


def test_empty_path_and_bad_input():
    path = CappedPath(2)
    msg = path.msg("map")
    assert msg.poses == [] and time_ns(msg.header.stamp) == 0
    with pytest.raises(ValueError, match="4x4"):
        path.append(0, np.eye(3))
    with pytest.raises(ValueError, match="4x4"):
        path.append(0, np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="max_poses"):
        CappedPath(0)


@pytest.mark.parametrize("frame_id", ["", "m", "map", "odom_", "world_frame_long"])
def test_serialized_path_is_the_path_message(frame_id):
    """The kept per-pose CDR gives the message itself, whatever padding the frame id's length puts before the
    poses, after the cap dropped poses and after a new frame id."""
    path = CappedPath(5)
    for k in range(8):
        path.append(10 * k + 3, sample_camera_pose(k))
        data = path.cdr(frame_id)
        assert len(data) == len(serialize_message(path.msg(frame_id)))
        assert deserialize_message(data, Path) == path.msg(frame_id)
    assert deserialize_message(path.cdr("other"), Path) == path.msg("other")
    path.clear()
    assert deserialize_message(path.cdr(frame_id), Path) == path.msg(frame_id)

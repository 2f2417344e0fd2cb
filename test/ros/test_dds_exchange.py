"""Two OS processes exchange HandArray and /tf over Fast DDS on localhost (real rclpy, real DDS)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from node_checks import helper_process
from sample_hands import CAMERA_FRAME, WORLD_FRAME, sample_camera_pose, sample_hand
from tf2_msgs.msg import TFMessage

from hand_scene_msgs.msg import Hand, HandArray
from hand_scene_perception.ros.conversions import hand_state, transform_matrix

HERE = Path(__file__).resolve().parent


@pytest.fixture
def publisher_process(subprocess_env):
    """Start the publisher in its own process and make sure it is gone afterwards."""
    with helper_process(HERE / "hand_publisher_process.py", ["--duration", "30"], subprocess_env) as process:
        yield process


def test_hand_array_and_tf_cross_process(publisher_process):
    rclpy.init()
    node = rclpy.create_node("dds_exchange_receiver")
    received: dict[str, list] = {"hands": [], "tf": []}
    node.create_subscription(HandArray, "hands", received["hands"].append, 10)
    node.create_subscription(TFMessage, "/tf", received["tf"].append, 10)
    try:
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and (len(received["hands"]) < 3 or len(received["tf"]) < 3):
            rclpy.spin_once(node, timeout_sec=0.1)
            assert publisher_process.poll() is None, publisher_process.stdout.read()
        topic_types = dict(node.get_topic_names_and_types())
    finally:
        node.destroy_node()
        rclpy.shutdown()

    assert len(received["hands"]) >= 3 and len(received["tf"]) >= 3, "no DDS traffic between the processes"
    assert topic_types["/hands"] == ["hand_scene_msgs/msg/HandArray"]
    assert topic_types["/tf"] == ["tf2_msgs/msg/TFMessage"]

    for array_msg in received["hands"]:
        seed = array_msg.header.stamp.nanosec
        assert array_msg.header.frame_id == WORLD_FRAME
        assert [h.side for h in array_msg.hands] == [Hand.LEFT, Hand.RIGHT]
        expected_hands = [sample_hand(7, "left", seed), sample_hand(9, "right", seed + 1)]
        for msg, expected in zip(array_msg.hands, expected_hands, strict=True):
            got = hand_state(msg)
            assert got.track_id == expected.track_id and got.side == expected.side
            assert msg.header.frame_id == WORLD_FRAME and got.image_frame_id == CAMERA_FRAME
            np.testing.assert_allclose(got.joints, expected.joints, atol=1e-9)
            np.testing.assert_allclose(got.wrist_pose, expected.wrist_pose, atol=1e-9)
            np.testing.assert_allclose(got.vertices, expected.vertices, atol=1e-6)
            np.testing.assert_allclose(got.model_pose, expected.model_pose, atol=1e-6)
            np.testing.assert_allclose(got.landmarks_px, expected.landmarks_px, atol=1e-4)

    for tf_msg in received["tf"]:
        (transform,) = tf_msg.transforms
        assert transform.header.frame_id == WORLD_FRAME and transform.child_frame_id == CAMERA_FRAME
        expected = sample_camera_pose(transform.header.stamp.nanosec)
        np.testing.assert_allclose(transform_matrix(transform), expected, atol=1e-9)

"""ros/tf_lookup.py: TFMessages into the buffer (unusable transforms left out, never a crash) and the choice of
tf2_ros where it is importable. Lookups over DDS are covered by test_ego_node_tf.py."""

from __future__ import annotations

import importlib.util

import numpy as np
import rclpy
from tf2_msgs.msg import TFMessage

from hand_scene_perception.core.transform_buffer import TransformBuffer
from hand_scene_perception.ros.conversions import transform_msg
from hand_scene_perception.ros.tf_lookup import (
    SubscribedTransformBuffer,
    Tf2RosLookup,
    add_tf_message,
    transform_lookup,
)


def test_unusable_transforms_are_left_out_and_counted():
    buffer = TransformBuffer()
    pose = np.eye(4)
    pose[:3, 3] = [0.1, 0.2, 0.3]
    good = transform_msg(pose, "/base", "camera", 5)
    nan = transform_msg(pose, "base", "arm", 5)
    nan.transform.translation.x = float("nan")
    bad = [transform_msg(pose, "camera", "camera", 5), nan, transform_msg(pose, "", "hand", 5)]
    assert add_tf_message(buffer, TFMessage(transforms=[*bad, good]), static=False) == 3
    assert buffer.frames() == {"base", "camera"}
    np.testing.assert_allclose(buffer.lookup("base", "camera", 5), pose)


def test_tf2_ros_answers_where_it_is_importable():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("tf_lookup_test", context=context)
    try:
        lookup = transform_lookup(node)
        expected = Tf2RosLookup if importlib.util.find_spec("tf2_ros") else SubscribedTransformBuffer
        assert isinstance(lookup, expected)
        lookup.close()
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)

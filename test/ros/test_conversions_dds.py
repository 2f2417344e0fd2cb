"""Messages built by the conversions travel over real DDS on localhost and decode to the same arrays."""

from __future__ import annotations

import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2

from hand_scene_perception.ros.conversions import (
    depth_image,
    depth_msg,
    image_msg,
    image_rgb,
    point_cloud_arrays,
    point_cloud_msg,
)


def test_large_cloud_and_images_round_trip_over_dds():
    rng = np.random.default_rng(4)
    points = rng.uniform(-3.0, 3.0, size=(500_000, 3)).astype(np.float32)
    colors = rng.integers(0, 256, size=(500_000, 3), dtype=np.uint8)
    rgb = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    depth = rng.integers(300, 4000, size=(480, 640)).astype(np.uint16)
    reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    rclpy.init()
    node = rclpy.create_node("conversions_dds_check")
    received: dict[str, list] = {"cloud": [], "image": [], "depth": []}
    try:
        publishers = {
            "cloud": node.create_publisher(PointCloud2, "conversions_check/cloud", reliable),
            "image": node.create_publisher(Image, "conversions_check/image", reliable),
            "depth": node.create_publisher(Image, "conversions_check/depth", reliable),
        }
        for name, msg_type in (("cloud", PointCloud2), ("image", Image), ("depth", Image)):
            node.create_subscription(msg_type, f"conversions_check/{name}", received[name].append, reliable)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and not all(received.values()):
            publishers["cloud"].publish(point_cloud_msg(points, colors, "map", 7))
            publishers["image"].publish(image_msg(rgb, "cam", 7, "bgra8"))
            publishers["depth"].publish(depth_msg(depth, "cam", 7))
            end = time.monotonic() + 0.5
            while time.monotonic() < end and not all(received.values()):
                rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.shutdown()
    assert all(received.values()), {name: len(msgs) for name, msgs in received.items()}
    cloud_points, cloud_colors = point_cloud_arrays(received["cloud"][0])
    np.testing.assert_array_equal(cloud_points, points)
    np.testing.assert_array_equal(cloud_colors, colors)
    np.testing.assert_array_equal(image_rgb(received["image"][0]), rgb)
    np.testing.assert_array_equal(depth_image(received["depth"][0]), depth)

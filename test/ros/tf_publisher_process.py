"""TF publisher process for test_ego_node_tf: a static parent → base on /tf_static and base → camera on /tf.

Runs as its own OS process so that the node's TF lookups hear a real DDS transport, as they would hear
robot_state_publisher. The poses come from an .npz (``stamps_ns``, ``static`` (4, 4), ``dynamic`` (N, 4, 4)); the
static transform is published once (transient local), the dynamic samples once a /tf subscriber is there and then
again every 0.2 s (late joiners get them too), until --duration seconds have passed.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import rclpy
from process_node import local_node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from hand_scene_perception.ros.conversions import transform_msg


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--poses", required=True)
    parser.add_argument("--world", required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--camera", required=True)
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    poses = np.load(args.poses)
    with local_node("tf_publisher_process") as node:
        static_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.TRANSIENT_LOCAL)  # fmt: skip
        static_pub = node.create_publisher(TFMessage, "/tf_static", static_qos)
        tf_pub = node.create_publisher(TFMessage, "/tf", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        static_pub.publish(TFMessage(transforms=[transform_msg(poses["static"], args.world, args.base, 0)]))
        dynamic = TFMessage(transforms=[transform_msg(pose, args.base, args.camera, int(stamp))
                                        for stamp, pose in zip(poses["stamps_ns"], poses["dynamic"], strict=True)])
        deadline = time.monotonic() + args.duration
        while time.monotonic() < deadline:
            if tf_pub.get_subscription_count() > 0:
                tf_pub.publish(dynamic)
            rclpy.spin_once(node, timeout_sec=0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

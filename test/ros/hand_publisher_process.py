"""Publisher process for test_dds_exchange: HandArray on `hands` and the camera on /tf.

Runs as its own OS process so that the exchange crosses a real DDS transport. It stops by
itself after --duration seconds (bounded traffic, localhost discovery only).
"""

from __future__ import annotations

import argparse
import sys
import time

import rclpy
from process_node import local_node
from sample_hands import CAMERA_FRAME, WORLD_FRAME, sample_camera_pose, sample_hand
from tf2_msgs.msg import TFMessage

from hand_scene_msgs.msg import HandArray
from hand_scene_perception.ros.conversions import hand_array_msg, transform_msg


def main() -> int:
    """Publish at 20 Hz with stamps seed-encoded so the receiver can rebuild the content."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()
    with local_node("hand_publisher_process") as node:
        hands_pub = node.create_publisher(HandArray, "hands", 10)
        tf_pub = node.create_publisher(TFMessage, "/tf", 10)
        deadline = time.monotonic() + args.duration
        seq = 0
        while time.monotonic() < deadline:
            stamp_ns = 1_000_000_000 + seq  # the nanoseconds carry the seed
            hands = [sample_hand(7, "left", seq), sample_hand(9, "right", seq + 1)]
            hands_pub.publish(hand_array_msg(hands, WORLD_FRAME, stamp_ns))
            tf_pub.publish(TFMessage(transforms=[transform_msg(sample_camera_pose(seq), WORLD_FRAME, CAMERA_FRAME,
                                                               stamp_ns)]))
            seq += 1
            rclpy.spin_once(node, timeout_sec=0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main())

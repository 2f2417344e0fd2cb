"""Publisher process for the multiview degenerate-rig test: one image (and its CameraInfo) on every camera's topics
at a fixed rate, as two cameras mounted side by side or one stream wired to two names would.

Its own OS process, so the images cross a real DDS transport; it waits for the node's subscriptions and publishes
--sets sets (the test stops it once it has seen enough).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import rclpy
from PIL import Image as PILImage
from process_node import local_node
from sensor_msgs.msg import CameraInfo, Image

from hand_scene_perception.core.rig_calibration import guessed_camera
from hand_scene_perception.ros.conversions import camera_info_msg, image_msg

CONNECT_TIMEOUT_S = 30.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", required=True)
    parser.add_argument("--cameras", default="cam0,cam1")
    parser.add_argument("--rate", type=float, default=15.0)
    parser.add_argument("--sets", type=int, default=60)
    args = parser.parse_args()
    rgb = np.asarray(PILImage.open(args.image).convert("RGB"))
    camera = guessed_camera(rgb.shape[1], rgb.shape[0], 60.0)
    names = args.cameras.split(",")
    with local_node("multiview_image_publisher") as node:
        images = [node.create_publisher(Image, f"/{name}/image", 10) for name in names]
        infos = [node.create_publisher(CameraInfo, f"/{name}/camera_info", 10) for name in names]
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while any(p.get_subscription_count() == 0 for p in images + infos) and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        start = time.monotonic()
        for index in range(args.sets):
            stamp_ns = time.time_ns()
            for name, image_pub, info_pub in zip(names, images, infos, strict=True):
                info_pub.publish(camera_info_msg(camera, f"{name}_optical_frame", stamp_ns))
                image_pub.publish(image_msg(rgb, f"{name}_optical_frame", stamp_ns))
            while time.monotonic() < start + (index + 1) / args.rate:
                rclpy.spin_once(node, timeout_sec=0.01)
    return 0


if __name__ == "__main__":
    sys.exit(main())

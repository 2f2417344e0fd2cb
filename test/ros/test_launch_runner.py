"""`hand-scene launch ego` in its own process: the planned node starts with the plan's wiring, publishes hands for a
real hand image sent over DDS on localhost, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from conftest import SHARED_DATA
from node_checks import launch_runner
from PIL import Image as PILImage
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from hand_scene_msgs.msg import HandArray
from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.ros.conversions import camera_info_msg, image_msg, time_ns
from hand_scene_perception.ros.launch.plan import default_rviz_config

REPO = Path(__file__).resolve().parents[2]
# MediaPipe's own Android test expects one hand in this image (its PROVENANCE.md beside it).
HAND_IMAGE = SHARED_DATA / "real_hands" / "mediapipe_samples" / "hand_landmarker_test_image.jpg"
NAMESPACE, CAMERA, WORLD = "/launch_test", "/launch_test_cam", "launch_test_world"


@pytest.fixture
def runner(subprocess_env, tmp_path):
    """`hand-scene launch ego` with depth off, its own namespaces and world frame; killed if a test leaves it."""
    log_path = tmp_path / "runner.log"
    arguments = ["ego", f"namespace:={NAMESPACE}", f"camera_namespace:={CAMERA}", "use_depth:=false",
                 f"world_frame:={WORLD}", "rviz:=true"]  # fmt: skip
    with launch_runner(arguments, subprocess_env, log_path) as process:
        yield process, log_path


def test_runner_starts_the_node_which_publishes_and_stops_on_ctrl_c(runner):
    process, log_path = runner
    rgb = np.asarray(PILImage.open(HAND_IMAGE).convert("RGB"))
    height, width = rgb.shape[:2]
    camera = PinholeCamera.from_intrinsics(max(width, height), max(width, height), width / 2, height / 2, width, height)
    frame = "launch_test_camera_optical_frame"

    rclpy.init()
    probe = rclpy.create_node("launch_runner_probe")
    received: list[HandArray] = []
    image_publisher = probe.create_publisher(Image, f"{CAMERA}/image_raw", 10)
    info_publisher = probe.create_publisher(CameraInfo, f"{CAMERA}/camera_info", 10)
    probe.create_subscription(HandArray, f"{NAMESPACE}/hands", received.append, qos_profile_sensor_data)
    sent: set[int] = set()
    try:
        deadline = time.monotonic() + 120.0  # first start loads MediaPipe and the hand model
        next_send = 0.0
        while time.monotonic() < deadline and not any(msg.hands for msg in received):
            assert process.poll() is None, log_path.read_text()
            if time.monotonic() >= next_send:
                stamp_ns = time.time_ns()
                image_publisher.publish(image_msg(rgb, frame, stamp_ns))
                info_publisher.publish(camera_info_msg(camera, frame, stamp_ns))
                sent.add(stamp_ns)
                next_send = time.monotonic() + 0.1
            rclpy.spin_once(probe, timeout_sec=0.02)
        subscriptions = {
            topic for topic, _ in probe.get_subscriber_names_and_types_by_node("ego_reconstruction", NAMESPACE)
        }
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=30)
        time.sleep(0.5)
        rclpy.spin_once(probe, timeout_sec=0.1)
        nodes_after = probe.get_node_names_and_namespaces()
    finally:
        probe.destroy_node()
        rclpy.shutdown()

    log = log_path.read_text()
    with_hands = [msg for msg in received if msg.hands]
    assert with_hands, f"no HandArray with a hand on {NAMESPACE}/hands within 120 s:\n{log}"
    for msg in with_hands:
        assert msg.header.frame_id == WORLD
        assert time_ns(msg.header.stamp) in sent, "every output carries the stamp of its source image"
    # The plan's remappings reached the node: camera topics under the camera namespace, no depth input.
    assert {f"{CAMERA}/image_raw", f"{CAMERA}/camera_info"} <= subscriptions, subscriptions
    assert not [topic for topic in subscriptions if "depth" in topic], subscriptions
    # rviz2 cannot run in-process: the command to start it beside the node is printed.
    assert f"ros2 run rviz2 rviz2 -d {default_rviz_config()} -f {WORLD}" in log
    assert returncode == 0, log
    assert "hand-scene launch: stopped" in log and "Traceback" not in log, log
    assert ("ego_reconstruction", NAMESPACE) not in nodes_after

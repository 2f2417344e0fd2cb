"""The multiview node on a degenerate rig (issue 13): both cameras publish the same real photograph with CameraInfo
from another process over DDS on localhost, as two cameras side by side or one stream wired to two names would.
The rig cannot be calibrated (zero baseline), so the node keeps publishing each set's monocular hands and says why
in /diagnostics (WARN), instead of skipping every set with an ERROR."""

from __future__ import annotations

import json
import time

import pytest
import rclpy
from conftest import SHARED_DATA
from diagnostic_msgs.msg import DiagnosticArray
from node_checks import REPO, helper_process
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from hand_scene_msgs.msg import HandArray
from hand_scene_perception.ros.conversions import time_ns
from hand_scene_perception.ros.diagnostics import node_status
from hand_scene_perception.ros.multiview.node import MultiviewFusionNode

REAL_IMAGE = SHARED_DATA / "real_hands" / "mediapipe_samples" / "hand_landmarker_test_image.jpg"
PUBLISHER = REPO / "test" / "ros" / "multiview_image_publisher.py"
SETS = 60  # 4 s at 15 Hz: well past the 7 sets after which the node used to stop publishing hands


@pytest.mark.skipif(not REAL_IMAGE.is_file(), reason="needs ../shared/data/real_hands")
def test_same_photo_on_two_cameras_gives_monocular_hands_and_a_warn_reason(context, subprocess_env):
    node = MultiviewFusionNode(context=context, parameter_overrides=[
        Parameter("cameras", value=["cam0", "cam1"]), Parameter("diagnostics_period_s", value=0.2)])  # fmt: skip
    name = node.get_fully_qualified_name()
    listener = rclpy.create_node("multiview_degenerate_listener", context=context)
    hands: list[HandArray] = []
    diagnostics: list[DiagnosticArray] = []
    listener.create_subscription(HandArray, "/hands", hands.append, 100)
    listener.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 100)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(listener)
    arguments = ["--image", str(REAL_IMAGE), "--cameras", "cam0,cam1", "--rate", "15", "--sets", str(SETS)]
    try:
        with helper_process(PUBLISHER, arguments, subprocess_env) as publisher:
            deadline = time.monotonic() + 60.0
            while publisher.poll() is None and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
            output, _ = publisher.communicate(timeout=10)
        assert publisher.returncode == 0, output
        stamps = json.loads(output.strip().splitlines()[-1])["stamps"]
        end = time.monotonic() + 3.0  # the last sets' outputs and one more diagnostics period
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        listener.destroy_node()
    assert len(stamps) == SETS
    fused = [msg for msg in hands if time_ns(msg.header.stamp) in set(stamps)]
    # images lost between the processes under load (2 cores) cost sets, not hands: the share that matters is per set
    # the node formed; 33-44 of the 60 arrived complete in measured runs
    assert len(fused) >= SETS // 4, f"the node fused only {len(fused)} of {SETS} sets"
    with_hands = [msg for msg in fused if msg.hands]
    assert len(with_hands) >= 0.9 * len(fused), f"{len(with_hands)} of {len(fused)} fused sets have hands"
    assert time_ns(with_hands[-1].header.stamp) in stamps[-5:], "hands stopped before the last sets"
    statuses = [node_status(array, name) for array in diagnostics]
    statuses = [status for status in statuses if status is not None]
    level, message, values = statuses[-1]
    assert level == "WARN" and "viewpoint coincides with cam0's" in message, (level, message)
    assert values["calibration_state"] == "uncalibrated" and "baseline 0.0 mm" in values["calibration_reason"]
    assert int(values["input_errors"]) == 0 and not any(level == "ERROR" for level, _, _ in statuses)
    assert int(values["monocular_sets"]) == int(values["sets_with_hands"]) >= 0.9 * int(values["fused_sets"])
    assert int(values["fused_sets"]) >= len(fused)


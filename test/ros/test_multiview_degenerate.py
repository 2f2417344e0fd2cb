"""The multiview node on a degenerate rig (issue 13): both cameras publish the same real photograph with CameraInfo
from another process over DDS on localhost, as two cameras side by side or one stream wired to two names would.
The rig cannot be calibrated (zero baseline), so the node keeps publishing each set's monocular hands and says why
in /diagnostics (WARN), instead of skipping every set with an ERROR; and once the two cameras show distinct
viewpoints, the same node calibrates."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rclpy
from conftest import SHARED_DATA
from diagnostic_msgs.msg import DiagnosticArray
from ego_fixtures import NodeHarness
from multiview_fixtures import Rig, ViewOracle, make_rig
from node_checks import REPO, helper_process
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage

from hand_scene_msgs.msg import HandArray, MultiCameraCalibration
from hand_scene_perception.ros.conversions import transform_matrix
from hand_scene_perception.ros.diagnostics import node_status
from hand_scene_perception.ros.multiview.node import MultiviewFusionNode
from hand_scene_perception.ros.node_base import LATCHED_QOS

REAL_IMAGE = SHARED_DATA / "real_hands" / "mediapipe_samples" / "hand_landmarker_test_image.jpg"
PUBLISHER = REPO / "test" / "ros" / "multiview_image_publisher.py"
# sets the node must fuse: well past the 7 after which it used to stop publishing hands. Images lost between the
# processes under load (2 cores: 14-44 of 60 sets arrived complete in measured runs) cost sets, not hands, so the
# publisher runs until the node has fused these many.
FUSED_SETS = 30


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
    arguments = ["--image", str(REAL_IMAGE), "--cameras", "cam0,cam1", "--rate", "15", "--sets", "600"]
    try:
        with helper_process(PUBLISHER, arguments, subprocess_env) as publisher:
            deadline = time.monotonic() + 60.0
            while len(hands) < FUSED_SETS and publisher.poll() is None and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.05)
            assert publisher.poll() is None, publisher.communicate(timeout=10)[0]
        end = time.monotonic() + 1.0  # one more diagnostics period
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        listener.destroy_node()
    assert len(hands) >= FUSED_SETS, f"the node fused only {len(hands)} sets in 60 s"
    assert {msg.header.frame_id for msg in hands} == {"cam0_optical_frame"}
    with_hands = [msg for msg in hands if msg.hands]
    assert len(with_hands) >= 0.9 * len(hands), f"{len(with_hands)} of {len(hands)} fused sets have hands"
    assert all(msg.hands for msg in hands[-5:]), "hands stopped before the last sets"
    statuses = [node_status(array, name) for array in diagnostics]
    statuses = [status for status in statuses if status is not None]
    level, message, values = statuses[-1]
    assert level == "WARN" and "viewpoint coincides with cam0's" in message, (level, message)
    assert values["calibration_state"] == "uncalibrated" and "baseline 0.0 mm" in values["calibration_reason"]
    assert int(values["input_errors"]) == 0 and not any(level == "ERROR" for level, _, _ in statuses)
    assert int(values["monocular_sets"]) == int(values["sets_with_hands"]) >= 0.9 * int(values["fused_sets"])
    assert int(values["fused_sets"]) >= len(hands)



class SameStreamThenOwnView:
    """cam1's detector: what cam0's sees (one stream wired to both names) before ``switch_ns``, then its own view."""

    metric_size_sigma = 0.0

    def __init__(self, rig: Rig, switch_ns: int) -> None:
        self.before, self.after = ViewOracle(rig, 0, 0.5), ViewOracle(rig, 1, 0.5, seed=1)
        self.switch_ns = switch_ns

    def detect(self, image_rgb, timestamp_ns: int | None = None):
        return (self.before if timestamp_ns < self.switch_ns else self.after).detect(image_rgb, timestamp_ns)


def test_node_on_a_wired_twice_stream_calibrates_once_the_cameras_have_distinct_viewpoints(context):
    """Oracle landmarks (the geometry under test, not the detector): 15 sets of cam0's stream on both names give
    monocular hands, an uncalibrated rig and the WARN reason; then cam1 shows its own viewpoint (and CameraInfo)
    and the node calibrates it."""
    rig = make_rig(num_views=2, count=90, seed=6, render=False)
    switch = 15
    detectors = [ViewOracle(rig, 0, 0.5), SameStreamThenOwnView(rig, rig.stamp(rig.frames[switch]))]
    node = MultiviewFusionNode(context=context, detectors=detectors, parameter_overrides=[
        Parameter("cameras", value=rig.names), Parameter("diagnostics_period_s", value=0.2)])  # fmt: skip
    name = node.get_fully_qualified_name()
    inputs = {f"{camera}/{stream}": kind for camera in rig.names
              for stream, kind in (("image", Image), ("camera_info", CameraInfo))}  # fmt: skip
    listen = {"hands": (HandArray, 100), "/diagnostics": (DiagnosticArray, 100), "/tf": (TFMessage, 100),
              "calibration": (MultiCameraCalibration, LATCHED_QOS)}  # fmt: skip
    harness = NodeHarness(context, node, listen=listen, inputs=inputs)
    try:
        for camera in rig.names:
            harness.wait_connected(topic=f"{camera}/image")
        for index, frame in enumerate(rig.frames):
            before = len(harness.messages("hands"))
            for view, camera in enumerate(rig.names):
                image, info = rig.messages(frame, 0 if index < switch else view)
                image.header.frame_id = info.header.frame_id = f"{camera}_optical_frame"
                harness.publishers[f"{camera}/camera_info"].publish(info)
                harness.publishers[f"{camera}/image"].publish(image)
            assert harness.wait_for(lambda before=before: len(harness.messages("hands")) > before), f"set {index}"
            if index == switch - 1:
                assert all(len(msg.hands) == 1 for msg in harness.messages("hands"))
                held = [node_status(array, name) for array in harness.messages("/diagnostics")]
                level, message, values = [status for status in held if status is not None][-1]
                assert level == "WARN" and "viewpoint coincides" in message, message
                assert values["calibration_state"] == "uncalibrated" and values["monocular_sets"] == str(switch)
        assert harness.messages("calibration")[-1].state in (MultiCameraCalibration.STATE_CONVERGING,
                                                            MultiCameraCalibration.STATE_CONVERGED)  # fmt: skip
        (tf,) = {t.child_frame_id: t for m in harness.messages("/tf") for t in m.transforms}.values()
        pose, truth = transform_matrix(tf), rig.T_ref_cam(1)
        angle = np.degrees(np.arccos(np.clip((np.trace(pose[:3, :3].T @ truth[:3, :3]) - 1) / 2, -1, 1)))
        assert tf.child_frame_id == "cam1_optical_frame" and angle < 2.0, angle
    finally:
        harness.close()

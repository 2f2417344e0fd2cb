"""The multiview_fusion node over real rclpy and DDS on localhost: fused hands, calibration, estimated CameraInfo,
TF, services, a camera that stops, duplicate topics, a single camera, bad inputs, lifecycle and parameters.

Three rendered synthetic cameras (the third at half resolution, without CameraInfo) with oracle detectors keyed by
stamp; a calibration file written from the true rig lets the node fuse from the first frame (deterministic).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from ego_fixtures import NodeHarness
from multiview_fixtures import make_rig
from node_checks import live_node_names, shipped_params
from rclpy.exceptions import InvalidParameterValueException
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from hand_scene_msgs.msg import HandArray, MultiCameraCalibration
from hand_scene_msgs.srv import LoadFromPath, Reset, SaveToPath
from hand_scene_perception.ros.conversions import hand_state, pinhole_camera, time_ns, transform_matrix
from hand_scene_perception.ros.multiview.node import PARAMETERS, MultiviewFusionNode
from hand_scene_perception.ros.node_base import LATCHED_QOS

NUM_FRAMES = 10
OTHER_CAMERAS = ["left", "right", "top"]


@pytest.fixture(scope="module")
def rig():
    return make_rig(num_views=3, count=NUM_FRAMES, seed=5, scales=(1, 1, 2))


@pytest.fixture(scope="module")
def truth_file(rig, tmp_path_factory):
    return rig.save_truth_calibration(tmp_path_factory.mktemp("calibration") / "truth.yaml")


def _node(context, rig, cameras=None, cli_args=None, **parameters) -> MultiviewFusionNode:
    cameras = cameras or rig.names
    values = {"cameras": cameras, "diagnostics_period_s": 0.2, "view_timeout_s": 0.1, **parameters}
    detectors = rig.detectors()[: len(cameras)]
    return MultiviewFusionNode(context=context, detectors=detectors, cli_args=cli_args,
                               parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])  # fmt: skip


def _harness(context, node, names, info_views=(0, 1)) -> NodeHarness:
    """The node with image publishers for ``names`` and CameraInfo publishers for the cameras in ``info_views``
    (a camera whose CameraInfo topic has a publisher is waited for before the rig starts)."""
    listen = {"hands": (HandArray, 20), "/tf": (TFMessage, 50), "/diagnostics": (DiagnosticArray, 50),
              "hand_markers": (MarkerArray, 10), "calibration": (MultiCameraCalibration, LATCHED_QOS)}  # fmt: skip
    listen.update({f"{name}/camera_info_estimated": (CameraInfo, 10) for name in names})
    inputs = {f"{name}/image": Image for name in names}
    inputs.update({f"{name}/camera_info": CameraInfo for k, name in enumerate(names) if k in info_views})
    harness = NodeHarness(context, node, listen=listen, inputs=inputs)
    for name in names:
        harness.wait_connected(topic=f"{name}/image")
    return harness


@pytest.fixture
def harness(context, rig, truth_file):
    rig_harness = _harness(context, _node(context, rig, calibration_file=str(truth_file)), rig.names)
    yield rig_harness
    rig_harness.close()


def _publish(harness, rig, frame, views=None, infos=(0, 1), stamp_ns=None, change=None) -> None:
    """One frame from ``views`` (default all); CameraInfo from ``infos`` (cam2 publishes none by default)."""
    for view in range(len(rig.names)) if views is None else views:
        image, info = rig.messages(frame, view, stamp_ns)
        if change is not None:
            change(view, image, info)
        name = rig.names[view]
        if view in infos:
            harness.publishers[f"{name}/camera_info"].publish(info)
        harness.publishers[f"{name}/image"].publish(image)


def _run(harness, rig, frames, **kwargs) -> None:
    """Publish frames one at a time, each once the previous one's hands are out (no drops by design)."""
    for frame in frames:
        before = len(harness.messages("hands"))
        _publish(harness, rig, frame, **kwargs)
        assert harness.wait_for(lambda before=before: len(harness.messages("hands")) > before), "no hands"


def _statuses(harness) -> list[DiagnosticStatus]:
    return [status for array in harness.messages("/diagnostics") for status in array.status]


def _has_status(harness, level, words: str, name: str = "") -> bool:
    return any(s.level == level and words in s.message and name in s.name for s in _statuses(harness))


def test_fused_hands_calibration_camera_info_and_tf(harness, rig):
    _run(harness, rig, rig.frames[:4])
    hands = harness.messages("hands")
    assert [time_ns(m.header.stamp) for m in hands] == [rig.stamp(f) for f in rig.frames[:4]]
    for msg, frame in zip(hands, rig.frames, strict=False):
        (hand,) = msg.hands
        state = hand_state(hand)
        assert msg.header.frame_id == "cam0_optical_frame" and state.image_frame_id == "cam0_optical_frame"
        error = np.linalg.norm(state.joints - rig.joints_ref(frame), axis=1).mean()
        assert error < 0.015, f"fused joints {1e3 * error:.1f} mm from the truth"
    (calibration,) = harness.messages("calibration")[:1]
    assert calibration.state == MultiCameraCalibration.STATE_CONVERGED
    assert calibration.header.frame_id == "cam0_optical_frame"
    assert [c.frame_id for c in calibration.cameras] == rig.frames_ids
    transforms = {t.child_frame_id: t for m in harness.messages("/tf") for t in m.transforms}
    assert set(transforms) == {"cam1_optical_frame", "cam2_optical_frame"}
    for view in (1, 2):
        transform = transforms[f"cam{view}_optical_frame"]
        assert transform.header.frame_id == "cam0_optical_frame"
        assert time_ns(transform.header.stamp) in {rig.stamp(f) for f in rig.frames[:4]}
        assert np.allclose(transform_matrix(transform), rig.T_ref_cam(view), atol=1e-5)
    # The half-size camera publishes no CameraInfo: its estimated one has its own size and frame.
    estimated = harness.messages("cam2/camera_info_estimated")[-1]
    assert estimated.header.frame_id == "cam2_optical_frame" and (estimated.width, estimated.height) == (160, 120)
    assert pinhole_camera(estimated).fx == pytest.approx(rig.camera(2).fx, rel=1e-4)
    assert harness.messages("cam0/camera_info_estimated")[-1].width == 320
    markers = harness.messages("hand_markers")[-1].markers
    assert markers and all(m.header.frame_id == "cam0_optical_frame" for m in markers)
    # The calibration is latched: a late subscriber gets it; it is also republished at calibration_period_s.
    late: list[MultiCameraCalibration] = []
    harness.source.create_subscription(MultiCameraCalibration, "calibration", late.append, LATCHED_QOS)
    assert harness.wait_for(lambda: len(late) >= 2, 5.0)
    assert time_ns(late[-1].header.stamp) == rig.stamp(rig.frames[3])  # republished: the last frame's stamp
    assert harness.wait_for(lambda: _has_status(harness, DiagnosticStatus.OK, "in sync", "camera cam2"))
    values = _node_values(harness)
    assert values["calibration_state"] == "converged" and int(values["fused_sets"]) == 4


def _node_values(harness) -> dict[str, str]:
    status = [s for s in _statuses(harness) if s.name.endswith("multiview fusion")][-1]
    return {kv.key: kv.value for kv in status.values}


def test_a_camera_that_stops_does_not_stop_the_others(harness, rig):
    _run(harness, rig, rig.frames[:2])
    for frame in rig.frames[2:8]:  # cam2 stops; beyond view_timeout_s (0.1 s of stamps) it is left out
        received = harness.node.received_counts()
        _publish(harness, rig, frame, views=(0, 1))
        # one image at a time (the inputs keep one message): the stall shows in the stamps the node took
        assert harness.wait_for(lambda r=received: all(harness.node.received_counts()[c] == r[c] + 1
                                                       for c in ("cam0", "cam1")))  # fmt: skip
        if frame.index >= 6:  # frames 2-5 wait for cam2; then the sets go on without it
            assert harness.wait_for(lambda f=frame: time_ns(harness.messages("hands")[-1].header.stamp) ==
                                    rig.stamp(f))  # fmt: skip
    for msg in harness.messages("hands")[-3:]:
        frame = next(f for f in rig.frames if rig.stamp(f) == time_ns(msg.header.stamp))
        error = np.linalg.norm(hand_state(msg.hands[0]).joints - rig.joints_ref(frame), axis=1).mean()
        assert error < 0.015, "cam0 and cam1 still triangulate"
    assert harness.wait_for(lambda: _has_status(harness, DiagnosticStatus.WARN, "left out", "camera cam2"))

    def left_out() -> int:
        status = [s for s in _statuses(harness) if s.name.endswith("camera cam2")][-1]
        return int({kv.key: kv.value for kv in status.values}["sets_left_out"])

    assert harness.wait_for(lambda: left_out() >= 3)
    _run(harness, rig, rig.frames[8:10])  # cam2 is back: sets with all three again
    assert harness.wait_for(lambda: _has_status(harness, DiagnosticStatus.OK, "in sync", "camera cam2"))


def test_camera_info_that_arrives_later_is_used(harness, rig):
    _run(harness, rig, rig.frames[:2])
    scaled = rig.camera(2).fx * 1.05
    harness.publishers["cam2/camera_info"] = harness.source.create_publisher(CameraInfo, "cam2/camera_info", 10)
    harness.wait_connected(topic="cam2/camera_info")

    def with_focal(view, image, info) -> None:
        if view == 2:
            info.k[0] = info.k[4] = info.p[0] = info.p[5] = scaled

    _run(harness, rig, rig.frames[2:4], infos=(0, 1, 2), change=with_focal)

    def estimated_fx() -> float:
        return pinhole_camera(harness.messages("cam2/camera_info_estimated")[-1]).fx

    assert harness.wait_for(lambda: estimated_fx() == pytest.approx(scaled)), estimated_fx()


def _call(harness, kind, name, request):
    client = harness.source.create_client(kind, f"/multiview_fusion/{name}")
    assert client.wait_for_service(timeout_sec=5.0)
    future = client.call_async(request)
    assert harness.wait_for(future.done, 20.0)
    return future.result()


def test_services_save_load_reset(harness, rig, tmp_path):
    _run(harness, rig, rig.frames[:2])
    saved = _call(harness, SaveToPath, "save_calibration", SaveToPath.Request(directory=str(tmp_path / "out")))
    assert saved.success, saved.message
    (path,) = saved.files
    document = yaml.safe_load(Path(path).read_text())
    assert document["state"] == "converged" and [c["name"] for c in document["cameras"]] == rig.names

    def last_state() -> int:
        return harness.messages("calibration")[-1].state

    reset = _call(harness, Reset, "reset_calibration", Reset.Request())
    assert reset.success and harness.wait_for(lambda: last_state() == MultiCameraCalibration.STATE_UNCALIBRATED)
    loaded = _call(harness, LoadFromPath, "load_calibration", LoadFromPath.Request(path=path))
    assert loaded.success, loaded.message
    assert harness.wait_for(lambda: last_state() == MultiCameraCalibration.STATE_CONVERGED)
    other = rig.save_truth_calibration(tmp_path / "other.yaml", names=OTHER_CAMERAS)
    refused = _call(harness, LoadFromPath, "load_calibration", LoadFromPath.Request(path=str(other)))
    assert not refused.success and "calibrates cameras ['left', 'right', 'top']" in refused.message
    assert harness.wait_for(lambda: _has_status(harness, DiagnosticStatus.ERROR, "self-calibrating instead"))
    missing = _call(harness, LoadFromPath, "load_calibration", LoadFromPath.Request(path=str(tmp_path / "no.yaml")))
    assert not missing.success and "not found" in missing.message
    _run(harness, rig, rig.frames[2:3])  # the loaded calibration is still in use
    error = np.linalg.norm(hand_state(harness.messages("hands")[-1].hands[0]).joints - rig.joints_ref(rig.frames[2]),
                           axis=1).mean()  # fmt: skip
    assert error < 0.015
    kept = _call(harness, Reset, "reset_calibration", Reset.Request(map=True))
    assert kept.success and "nothing" in kept.message and last_state() == MultiCameraCalibration.STATE_CONVERGED


def test_calibration_file_for_other_cameras_is_refused_at_start(context, rig, tmp_path):
    other = rig.save_truth_calibration(tmp_path / "other.yaml", names=OTHER_CAMERAS)
    harness = _harness(context, _node(context, rig, calibration_file=str(other)), rig.names)
    try:
        _run(harness, rig, rig.frames[:2])
        assert harness.wait_for(lambda: _has_status(harness, DiagnosticStatus.ERROR, "refused"))
        assert any("'left'" in s.message for s in _statuses(harness) if s.level == DiagnosticStatus.ERROR)
        assert len(harness.messages("hands")[-1].hands) == 1  # self-calibrating: cam0's monocular hand meanwhile
        assert harness.messages("calibration")[-1].state == MultiCameraCalibration.STATE_UNCALIBRATED
        assert "refused" in _node_values(harness)["calibration_file"]
    finally:
        harness.close()


def test_duplicate_cameras_or_topics_are_refused(context, rig):
    repeated = _node(context, rig, cameras=["cam0", "cam1", "cam0"])
    remapped = _node(context, rig, cameras=["cam0", "cam1"], cli_args=["--ros-args", "-r", "cam1/image:=/cam0/image"])
    try:
        for node in (repeated, remapped):
            assert node._processor is None and node.count_publishers("hands") == 0
            assert node.count_subscribers("/cam0/image") == 0
    finally:
        repeated.destroy_node()
        remapped.destroy_node()


def test_single_camera_works_with_a_warning(context, rig):
    harness = _harness(context, _node(context, rig, cameras=["cam0"]), ["cam0"])
    try:
        _run(harness, rig, rig.frames[:2], views=(0,))
        (hand,) = harness.messages("hands")[-1].hands
        assert harness.messages("hands")[-1].header.frame_id == "cam0_optical_frame"
        assert np.linalg.norm(hand_state(hand).joints - rig.joints_ref(rig.frames[1]), axis=1).mean() < 0.1
        assert any(s.level == DiagnosticStatus.WARN and "monocular" in s.message for s in _statuses(harness))
        assert not [t for m in harness.messages("/tf") for t in m.transforms]  # no other camera to place
    finally:
        harness.close()


@pytest.mark.parametrize(
    ("problem", "words"),
    [("encoding", "yuv422"), ("size", "camera_info says"), ("zero_k", "camera_info")],
)
def test_bad_inputs_keep_node_running(harness, rig, problem, words):
    _run(harness, rig, rig.frames[:1])

    def spoil(view, image, info) -> None:
        if view == 1 and problem == "encoding":
            image.encoding = "yuv422"
        elif view == 1 and problem == "size":
            info.width = 400
        elif view == 1:
            info.k = [0.0] * 9

    _run(harness, rig, rig.frames[1:2], change=spoil)  # cam1 is left out, cam0 and cam2 fuse
    assert harness.wait_for(lambda: _has_status(harness, DiagnosticStatus.ERROR, words))
    assert any("'cam1'" in s.message for s in _statuses(harness) if s.level == DiagnosticStatus.ERROR)
    _run(harness, rig, rig.frames[2:3])
    assert len(harness.messages("hands")[-1].hands) == 1
    assert harness.wait_for(lambda: int(_node_values(harness)["input_errors"]) == 1)


def test_stamps_going_back_warn_and_the_node_goes_on(harness, rig):
    _run(harness, rig, rig.frames[:4])
    _publish(harness, rig, rig.frames[1])
    assert harness.wait_for(lambda: _has_status(harness, DiagnosticStatus.WARN, "went back"))
    assert harness.wait_for(lambda: time_ns(harness.messages("hands")[-1].header.stamp) == rig.stamp(rig.frames[1]))
    _run(harness, rig, rig.frames[2:3])
    assert time_ns(harness.messages("hands")[-1].header.stamp) == rig.stamp(rig.frames[2])


def test_lifecycle_transitions(context, rig):
    node = _node(context, rig, autostart=False)
    try:
        assert node.count_publishers("hands") == 0
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.count_publishers("hands") == 1 and node.count_publishers("cam2/camera_info_estimated") == 1
        assert node.count_subscribers("cam0/image") == 0
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert all(node.count_subscribers(f"{name}/{stream}") == 1
                   for name in rig.names for stream in ("image", "camera_info"))  # fmt: skip
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.count_subscribers("cam0/image") == 0
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.count_publishers("hands") == 0 and node._processor is None
        node.set_parameters([Parameter("cameras", value=["cam0", "cam1", "cam3"])])
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert node.count_subscribers("cam3/image") == 1 and node.count_subscribers("cam2/image") == 0
    finally:
        node.destroy_node()


def test_parameters_out_of_range_rejected(context, rig):
    before = live_node_names()
    with pytest.raises(InvalidParameterValueException):
        _node(context, rig, sync_tolerance_s=-0.01)
    assert live_node_names() == before  # the rejected node destroyed itself (no endpoints left behind)
    node = _node(context, rig, autostart=False)
    try:
        for name, value in (("view_timeout_s", 0.0), ("max_hands", 9), ("qos_image", "FAST"),
                            ("hand_model", "mesh"), ("camera_frames", [1, 2]), ("backend", "gpu")):  # fmt: skip
            (result,) = node.set_parameters([Parameter(name, value=value)])
            assert not result.successful, name
        (result,) = node.set_parameters([Parameter("camera_frames", value=["a", "b", "c"])])
        assert result.successful
        node.set_parameters([Parameter("sync_tolerance_s", value=0.3), Parameter("view_timeout_s", value=0.2)])
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE, "a set could never wait for a camera"
        descriptor = node.describe_parameter("sync_tolerance_s")
        assert descriptor.description and descriptor.floating_point_range[0].to_value == 0.5
    finally:
        node.destroy_node()


def test_camera_frames_and_reference_frame_parameters(context, rig, truth_file):
    frames = ["left_optical", "right_optical", "top_optical"]
    node = _node(context, rig, camera_frames=frames, reference_frame="rig", calibration_file=str(truth_file))
    harness = _harness(context, node, rig.names)
    try:
        _run(harness, rig, rig.frames[:1])
        assert harness.messages("hands")[-1].header.frame_id == "rig"

        def transforms() -> set[tuple[str, str]]:
            return {(t.header.frame_id, t.child_frame_id) for m in harness.messages("/tf") for t in m.transforms}

        # the reference camera sits at the rig origin, so every camera has a transform
        assert harness.wait_for(lambda: transforms() == {("rig", frame) for frame in frames}), transforms()
        assert harness.wait_for(lambda: harness.messages("cam1/camera_info_estimated"))
        assert harness.messages("cam1/camera_info_estimated")[-1].header.frame_id == "right_optical"
    finally:
        harness.close()


def test_shipped_params_file_loads_and_every_key_is_commented(context, rig):
    params_file, values = shipped_params("multiview", "multiview_fusion", PARAMETERS)
    node = MultiviewFusionNode(context=context, detectors=rig.detectors()[:2],
                               cli_args=["--ros-args", "--params-file", str(params_file)])  # fmt: skip
    try:
        loaded = {name: node.get_parameter(name).value for name in values}
        assert loaded == {**values, "camera_frames": loaded["camera_frames"]} and not loaded["camera_frames"]
        assert node.count_subscribers("cam0/image") == 1 and node.count_subscribers("cam1/image") == 1
    finally:
        node.destroy_node()


def test_use_sim_time_follows_clock(context, rig, truth_file):
    node = _node(context, rig, use_sim_time=True, calibration_file=str(truth_file))
    harness = _harness(context, node, rig.names)
    try:
        clock = harness.source.create_publisher(Clock, "/clock", 10)
        assert harness.wait_for(lambda: clock.get_subscription_count() > 0)
        clock.publish(Clock(clock=Time(sec=1234, nanosec=0)))
        _run(harness, rig, rig.frames[:1])
        assert harness.wait_for(lambda: any(a.header.stamp.sec == 1234 for a in harness.messages("/diagnostics")))
        assert time_ns(harness.messages("hands")[0].header.stamp) == rig.stamp(rig.frames[0])  # the image stamp
    finally:
        harness.close()


def test_four_cameras_calibrate_themselves_from_the_hands(context):
    """No calibration file: the node links the cameras from the hands it sees and publishes their poses (oracle
    landmarks on grey images: the geometry, not the detector, is under test here)."""
    rig = make_rig(num_views=4, count=40, seed=6, render=False)
    harness = _harness(context, _node(context, rig, view_timeout_s=0.5), rig.names, info_views=(0, 1, 2, 3))
    try:
        _run(harness, rig, rig.frames, infos=(0, 1, 2, 3))
        calibration = harness.messages("calibration")[-1]
        assert calibration.state in (MultiCameraCalibration.STATE_CONVERGING, MultiCameraCalibration.STATE_CONVERGED)
        latest = {t.child_frame_id: t for m in harness.messages("/tf") for t in m.transforms}
        assert set(latest) == {"cam1_optical_frame", "cam2_optical_frame", "cam3_optical_frame"}
        for view in (1, 2, 3):
            pose = transform_matrix(latest[f"cam{view}_optical_frame"])
            truth = rig.T_ref_cam(view)
            angle = np.degrees(np.arccos(np.clip((np.trace(pose[:3, :3].T @ truth[:3, :3]) - 1) / 2, -1, 1)))
            assert angle < 2.0, f"cam{view} rotation off by {angle:.2f} deg"
            # the rig's scale comes from the hands' metric size (core/rig_calibration.py), so it is approximate
            scale = np.linalg.norm(pose[:3, 3]) / np.linalg.norm(truth[:3, 3])
            assert abs(scale - 1.0) < 0.1, f"cam{view} distance off by {100 * (scale - 1):.1f} %"
        joints = hand_state(harness.messages("hands")[-1].hands[0]).joints
        truth = rig.joints_ref(rig.frames[-1])
        root_relative = np.linalg.norm((joints - joints[0]) - (truth - truth[0]), axis=1).mean()
        assert root_relative < 0.01, f"fused hand {1e3 * root_relative:.1f} mm from the truth (root-relative)"
    finally:
        harness.close()


def test_the_rig_waits_for_camera_info_that_comes_after_the_first_images(context, rig, tmp_path):
    """Drivers publish the image first: a camera must not start with an estimated focal length (and be
    re-calibrated a moment later) because its CameraInfo was a few milliseconds late."""
    harness = _harness(context, _node(context, rig, cameras=rig.names[:2]), rig.names[:2])
    try:
        _publish(harness, rig, rig.frames[0], views=(0, 1), infos=())  # images only
        assert harness.wait_for(lambda: _has_status(harness, DiagnosticStatus.WARN, "waiting for the CameraInfo"))
        _run(harness, rig, rig.frames[1:3], views=(0, 1))
        assert not any("re-calibrating" in s.message for s in _statuses(harness))
        assert harness.wait_for(lambda: harness.messages("cam1/camera_info_estimated"))
        estimated = pinhole_camera(harness.messages("cam1/camera_info_estimated")[-1])
        assert estimated.fx == pytest.approx(rig.camera(1).fx)
    finally:
        harness.close()

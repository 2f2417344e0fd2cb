"""The ego node over real rclpy and DDS on localhost: outputs, lifecycle, parameters, services, bad inputs.

Frames come from the synthetic generator and hands from the oracle detector keyed by stamp (deterministic);
test_ego_node_dds.py covers publishers in another process and the real MediaPipe detector.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from ego_fixtures import CAMERA_FRAME, NodeHarness, StampOracle, frame_messages, frame_stamp, synthetic_frames
from nav_msgs.msg import Odometry
from nav_msgs.msg import Path as PathMsg
from node_checks import live_node_names, shipped_params
from rclpy.exceptions import InvalidParameterValueException
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from hand_scene_msgs.msg import HandArray, HandMeshTopology
from hand_scene_msgs.srv import GetHandTrajectory, Reset, SaveToPath
from hand_scene_perception.ros.conversions import POINT_STEP, depth_msg, hand_state, image_rgb, time_ns
from hand_scene_perception.ros.ego.node import PARAMETERS, EgoReconstructionNode
from hand_scene_perception.ros.node_base import LATCHED_QOS, matched_reliability

PATH_CAP = 4
NUM_FRAMES = 7


@pytest.fixture(scope="module")
def frames():
    return synthetic_frames(NUM_FRAMES)


def _node(context, frames, **parameters) -> EgoReconstructionNode:
    # Every frame updates markers and paths here (visualization_rate_hz 0), so counts per frame are exact.
    values = {"path_max_poses": PATH_CAP, "map_publish_rate_hz": 30.0, "world_frame": "map",
              "diagnostics_period_s": 0.2, "visualization_rate_hz": 0.0, **parameters}  # fmt: skip
    return EgoReconstructionNode(context=context, detector=StampOracle(frames),
                                 parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])  # fmt: skip


@pytest.fixture
def harness(context, frames):
    listen = {"hands": (HandArray, 10), "/tf": (TFMessage, 50), "scene_map": (PointCloud2, 10),
              "camera_odometry": (Odometry, 10), "/diagnostics": (DiagnosticArray, 50),
              "hand_markers": (MarkerArray, 10)}  # fmt: skip
    listen.update({f"hand_paths/{side}": (PathMsg, 10) for side in ("left", "right")})
    rig = NodeHarness(context, _node(context, frames), listen=listen)
    rig.wait_connected()
    yield rig
    rig.close()


def _run(rig: NodeHarness, frames, count=None) -> None:
    """Publish frames one at a time, each once the previous one's outputs are out (no drops by design)."""
    topics = ("hands", "hand_paths/left", "hand_paths/right", "camera_odometry")
    for frame in frames[:count]:
        before = [len(rig.messages(topic)) for topic in topics]
        rig.publish(frame_messages(frame))

        def all_out(before=before) -> bool:
            return all(len(rig.messages(topic)) > n for topic, n in zip(topics, before, strict=True))

        assert rig.wait_for(all_out), "outputs missing"


def _statuses(rig: NodeHarness) -> list[DiagnosticStatus]:
    return [status for array in rig.messages("/diagnostics") for status in array.status]


def test_outputs_frames_tf_cloud_paths(harness, frames):
    _run(harness, frames)
    hands = harness.messages("hands")
    assert [m.header.stamp.nanosec for m in hands] == [frame_stamp(f) % 10**9 for f in frames]
    side = frames[0].hands[0].side.value
    for msg in hands:
        (hand,) = msg.hands
        state = hand_state(hand)
        assert msg.header.frame_id == "map" and state.image_frame_id == CAMERA_FRAME and state.side.value == side
        assert np.all(np.abs(state.joints) < 5.0) and len(hand.vertices) > 0
    transforms = [(t.header.frame_id, t.child_frame_id) for m in harness.messages("/tf") for t in m.transforms]
    assert ("map", CAMERA_FRAME) in transforms and ("map", f"{side}_hand") in transforms
    assert harness.wait_for(lambda: len(harness.messages("scene_map")) > 0)
    cloud = harness.messages("scene_map")[-1]
    assert (cloud.header.frame_id, cloud.point_step, cloud.height) == ("map", POINT_STEP, 1)
    assert [(f.name, f.offset) for f in cloud.fields] == [("x", 0), ("y", 4), ("z", 8), ("rgb", 12)]
    assert cloud.width > 1000 and len(cloud.data) == cloud.width * POINT_STEP
    lengths = [len(p.poses) for p in harness.messages(f"hand_paths/{side}")]
    assert lengths == [min(i + 1, PATH_CAP) for i in range(NUM_FRAMES)]  # grows, then stays at the cap
    markers = harness.messages("hand_markers")[-1].markers  # built because this test subscribes
    assert [(m.ns, m.type) for m in markers] == [("hands/mesh", Marker.TRIANGLE_LIST),
                                                 ("hands/skeleton", Marker.LINE_LIST)]  # fmt: skip
    assert all(m.header.frame_id == "map" and m.id == hands[-1].hands[0].track_id for m in markers)
    odometry = harness.messages("camera_odometry")[-1]
    assert (odometry.header.frame_id, odometry.child_frame_id) == ("map", CAMERA_FRAME)
    # The mesh topology is latched: a subscriber that comes late still gets it.
    harness.listen("hand_mesh_topology", HandMeshTopology, LATCHED_QOS)
    assert harness.wait_for(lambda: len(harness.messages("hand_mesh_topology")) == 1)
    assert harness.node.dropped_frames() == 0


def test_visual_outputs_follow_the_visualization_rate_while_hands_go_out_every_frame(context, frames):
    listen = {"hands": (HandArray, 10), "hand_markers": (MarkerArray, 10), "/diagnostics": (DiagnosticArray, 50),
              "overlay": (Image, 10),
              **{f"hand_paths/{side}": (PathMsg, 10) for side in ("left", "right")}}  # fmt: skip
    # One visual update per 1000 s: only the first frame's.
    rig = NodeHarness(context, _node(context, frames, visualization_rate_hz=0.001), listen=listen)
    try:
        rig.wait_connected()
        for index, frame in enumerate(frames):
            rig.publish(frame_messages(frame))
            assert rig.wait_for(lambda index=index: len(rig.messages("hands")) > index), "hands missing"
        assert rig.wait_for(lambda: len(rig.messages("hand_markers")) >= 1)
        assert len(rig.messages("hands")) == NUM_FRAMES
        assert len(rig.messages("hand_markers")) == 1 and len(rig.messages("hand_paths/left")) == 1
        assert len(rig.messages("overlay")) == 1
        # The node's per-stage times and processed rate are in its diagnostics.
        assert rig.wait_for(lambda: any(any(v.key == "stage_fit_ms" for v in status.values)
                                        for status in _statuses(rig)))  # fmt: skip
        keys = {value.key for value in _statuses(rig)[-1].values}
        assert {"processed_rate_hz", "stage_detect_ms", "stage_messages_ms", "stage_publish_ms"} <= keys
    finally:
        rig.close()


def test_overlay_published_only_while_subscribed(harness, frames, monkeypatch):
    # Drawing the overlay costs ~10 ms a frame: the node must not build it for nobody.
    built = []
    processor = harness.node._processor
    draw = processor.overlay_msg
    monkeypatch.setattr(processor, "overlay_msg", lambda out: built.append(out.result.stamp_ns) or draw(out))
    publisher_sees = harness.node._outputs["overlay"].get_subscription_count
    _run(harness, frames, 2)
    assert built == []
    overlays = []
    subscription = harness.source.create_subscription(Image, "overlay", overlays.append, 10)
    assert harness.wait_for(lambda: publisher_sees() == 1)
    _run(harness, frames[2:4])
    assert harness.wait_for(lambda: len(overlays) == 2)
    assert built == [frame_stamp(f) for f in frames[2:4]]
    for msg, frame in zip(overlays, frames[2:4], strict=True):
        assert (msg.header.frame_id, time_ns(msg.header.stamp)) == (CAMERA_FRAME, frame_stamp(frame))
        assert (msg.width, msg.height, msg.encoding) == (frame.rgb.shape[1], frame.rgb.shape[0], "rgb8")
        drawn = np.any(image_rgb(msg) != frame.rgb, axis=2)
        assert 0.005 < drawn.mean() < 0.5  # the hand, drawn over the frame it was seen in
    harness.source.destroy_subscription(subscription)
    assert harness.wait_for(lambda: publisher_sees() == 0)
    _run(harness, frames[4:5])
    assert len(built) == 2


def test_auto_reliability_matches_the_publishers():
    reliable, best_effort = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
    assert matched_reliability([reliable, reliable]) == reliable
    assert matched_reliability([reliable, best_effort]) == best_effort  # a reliable reader would miss one
    assert matched_reliability([]) == best_effort  # connects to whatever comes


@pytest.mark.parametrize("offered", [ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT])
def test_auto_qos_inputs_follow_what_the_camera_offers(context, frames, offered):
    """The camera's publishers appear after the node subscribed (best effort then): frames flow throughout, and
    once the new subscriptions deliver, the node's inputs are the camera's reliability only."""
    rig = NodeHarness(context, _node(context, frames), source_qos=QoSProfile(depth=10, reliability=offered),
                      listen={"hands": (HandArray, 10)})  # fmt: skip

    def node_inputs() -> list:
        return [info.qos_profile.reliability for topic in ("/image", "/camera_info", "/depth")
                for info in rig.source.get_subscriptions_info_by_topic(topic)]  # fmt: skip

    try:
        rig.wait_connected()
        for count, frame in enumerate(frames, start=1):
            rig.publish(frame_messages(frame))
            assert rig.wait_for(lambda count=count: len(rig.messages("hands")) >= count), "no hands"
            if count >= 3 and node_inputs() == [offered] * 3:
                break
            time.sleep(0.5)  # (the follow period is 1 s)
        assert node_inputs() == [offered] * 3
    finally:
        rig.close()


def test_services_save_trajectory_reset(harness, frames, tmp_path):
    _run(harness, frames, 5)
    source = harness.source

    def call(kind, name, request):
        client = source.create_client(kind, f"/ego_reconstruction/{name}")
        assert client.wait_for_service(timeout_sec=5.0)
        future = client.call_async(request)
        assert harness.wait_for(future.done, 20.0)
        return future.result()

    saved = call(SaveToPath, "save", SaveToPath.Request(directory=str(tmp_path / "out")))
    assert saved.success, saved.message
    assert {p.rsplit("/", 1)[1] for p in saved.files} >= {"map.ply", "hands.npz", "camera_trajectory.csv"}
    assert (tmp_path / "out" / "map.ply").stat().st_size > 1000
    request = GetHandTrajectory.Request(track_id=-1, side=GetHandTrajectory.Request.SIDE_ANY)
    request.start.sec, request.end.sec = 0, 100
    trajectory = call(GetHandTrajectory, "get_hand_trajectory", request)
    assert trajectory.success and len(trajectory.hands) == PATH_CAP  # history capped like the paths
    assert all(h.header.frame_id == "map" for h in trajectory.hands)
    assert call(Reset, "reset", Reset.Request()).success
    assert call(GetHandTrajectory, "get_hand_trajectory", request).hands == []
    _run(harness, frames[5:6])  # a new session starts with the next image
    assert len(harness.messages(f"hand_paths/{frames[0].hands[0].side.value}")[-1].poses) == 1


@pytest.mark.parametrize(
    ("problem", "level", "words"),
    [("encoding", DiagnosticStatus.ERROR, "yuv422"), ("size", DiagnosticStatus.ERROR, "camera_info says"),
     ("zero_k", DiagnosticStatus.ERROR, "camera_info"), ("depth_size", DiagnosticStatus.WARN, "depth")],
    ids=["encoding", "size", "zero_k", "depth_size"],
)  # fmt: skip
def test_bad_inputs_keep_node_running(harness, frames, problem, level, words):
    _run(harness, frames, 1)
    messages = frame_messages(frames[1])
    if problem == "encoding":
        messages.image.encoding = "yuv422"
    elif problem == "size":
        messages.info.width = 400
    elif problem == "zero_k":
        messages.info.k = [0.0] * 9
    else:
        messages.depth = depth_msg(np.ones((100, 100), np.float32), CAMERA_FRAME, frame_stamp(frames[1]))
    harness.publish(messages)
    assert harness.wait_for(lambda: any(s.level == level and words in s.message for s in _statuses(harness)))
    _run(harness, frames[2:3])  # still running: the next good frame gives hands
    assert len(harness.messages("hands")[-1].hands) == 1
    values = {kv.key: kv.value for kv in _statuses(harness)[-1].values}
    assert int(values["input_errors"]) == 1 and values["backend"] == "embedded"


def test_time_jump_back_warns_and_resets(harness, frames):
    _run(harness, frames, 4)
    # The first set after a jump may not pair (camera_info/depth taken before the image count as too late).
    harness.publish(frame_messages(frames[1]))
    assert harness.wait_for(lambda: any(s.level == DiagnosticStatus.WARN and "went back" in s.message
                                        for s in _statuses(harness)))  # fmt: skip
    _run(harness, frames[2:3])
    side = frames[0].hands[0].side.value
    assert len(harness.messages(f"hand_paths/{side}")[-1].poses) <= 2  # a new session: the old 4 poses are gone


def test_lifecycle_transitions(context, frames):
    node = _node(context, frames, autostart=False)
    try:
        assert node.count_subscribers("hands") == 0 and node.count_publishers("hands") == 0
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.count_publishers("hands") == 1 and node.count_subscribers("image") == 0
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert node.count_subscribers("image") == 1 and node.count_subscribers("depth") == 1
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.count_subscribers("image") == 0
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.count_publishers("hands") == 0 and node._processor is None
        node.set_parameters([Parameter("use_depth", value=False)])
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        assert node.count_subscribers("image") == 1 and node.count_subscribers("depth") == 0
    finally:
        node.destroy_node()


def test_a_static_camera_stays_at_the_world_origin(context, frames):
    listen = {"camera_odometry": (Odometry, 10), "/tf": (TFMessage, 50)}
    rig = NodeHarness(context, _node(context, frames, camera_pose_source="static"), listen=listen)
    try:
        rig.wait_connected()
        for count, frame in enumerate(frames[:3], start=1):  # the synthetic camera moves: odometry would follow it
            rig.publish(frame_messages(frame))
            assert rig.wait_for(lambda count=count: len(rig.messages("camera_odometry")) >= count)
        for odometry in rig.messages("camera_odometry"):
            position, orientation = odometry.pose.pose.position, odometry.pose.pose.orientation
            assert (position.x, position.y, position.z, orientation.w) == (0.0, 0.0, 0.0, 1.0)
        cameras = [t for m in rig.messages("/tf") for t in m.transforms if t.child_frame_id == CAMERA_FRAME]
        assert len(cameras) == 3 and all(t.transform.translation.z == 0.0 for t in cameras)
    finally:
        rig.close()


def test_configure_fails_cleanly_without_mano_files(context, frames, tmp_path):
    node = _node(context, frames, hand_model="mano", mano_dir=str(tmp_path))
    try:
        assert node._processor is None and node.count_subscribers("image") == 0
    finally:
        node.destroy_node()


def test_parameters_out_of_range_rejected(context, frames):
    before = live_node_names()
    with pytest.raises(InvalidParameterValueException):
        _node(context, frames, voxel_size_m=-0.01)
    assert live_node_names() == before  # the rejected node destroyed itself (no endpoints left behind)
    node = _node(context, frames, autostart=False)
    try:
        for name, value in (("voxel_size_m", 0.0), ("max_hands", 9), ("map_publish_rate_hz", 100.0),
                            ("qos_image", "FAST"), ("hand_model", "mesh"), ("camera_pose_source", "gps"),
                            ("tf_timeout_s", 10.0), ("backend", "learned")):  # fmt: skip
            (result,) = node.set_parameters([Parameter(name, value=value)])
            assert not result.successful, name
        (result,) = node.set_parameters([Parameter("backend", value="gpu")])
        assert "backend must be one of embedded" in result.reason
        (result,) = node.set_parameters([Parameter("map_publish_rate_hz", value=5.0)])
        assert result.successful and node.get_parameter("map_publish_rate_hz").value == 5.0
        descriptor = node.describe_parameter("voxel_size_m")
        assert descriptor.description and descriptor.floating_point_range[0].from_value > 0
    finally:
        node.destroy_node()


def test_an_integer_for_a_float_parameter_is_refused_with_the_name_and_a_hint(context, frames):
    # What `-p visualization_rate_hz:=0` gives: rclpy's type error becomes a ValueError that says what to write
    # (the CLI prints it and exits 2), and the half-built node is gone.
    before = live_node_names()
    with pytest.raises(ValueError, match=r"visualization_rate_hz must be of type float \(write a decimal point"):
        _node(context, frames, visualization_rate_hz=0)
    assert live_node_names() == before


def test_shipped_params_file_loads_and_every_key_is_commented(context, frames):
    params_file, values = shipped_params("ego", "ego_reconstruction", PARAMETERS)
    node = EgoReconstructionNode(context=context, detector=StampOracle(frames),
                                 cli_args=["--ros-args", "--params-file", str(params_file)])  # fmt: skip
    try:
        assert {name: node.get_parameter(name).value for name in values} == values
        assert node.count_subscribers("image") == 1  # autostart: configured and active
    finally:
        node.destroy_node()


def test_use_sim_time_follows_clock(context, frames):
    node = _node(context, frames, use_sim_time=True)
    rig = NodeHarness(context, node, listen={"/diagnostics": (DiagnosticArray, 50), "hands": (HandArray, 10)})
    try:
        clock = rig.source.create_publisher(Clock, "/clock", 10)
        rig.wait_connected()
        assert rig.wait_for(lambda: clock.get_subscription_count() > 0)
        clock.publish(Clock(clock=Time(sec=1234, nanosec=0)))
        rig.publish(frame_messages(frames[0]))
        assert rig.wait_for(lambda: any(a.header.stamp.sec == 1234 for a in rig.messages("/diagnostics")))
        assert rig.wait_for(lambda: len(rig.messages("hands")) == 1)
        assert rig.messages("hands")[0].header.stamp.nanosec == frame_stamp(frames[0]) % 10**9  # image stamp
    finally:
        rig.close()


def test_diagnostics_name_the_inputs_no_publisher_is_connected_to(context, frames):
    # A misspelt topic or a camera not started: the node says which input it waits for, also while sim time stands
    # still (its diagnostics tick on the steady clock).
    listen = {"/diagnostics": (DiagnosticArray, 50)}
    inputs = {"image": Image, "camera_info": CameraInfo}  # no depth publisher
    rig = NodeHarness(context, _node(context, frames, use_sim_time=True), listen=listen, inputs=inputs)
    try:
        assert rig.wait_for(lambda: rig.node.inputs_without_publisher() == ["/depth"])
        assert rig.wait_for(lambda: any(
            {v.key: v.value for v in status.values}.get("inputs_without_publisher") == "/depth"
            and status.message.endswith("no image received yet (no publisher on /depth)") for status in _statuses(rig)))
        depth = rig.source.create_publisher(Image, "depth", 10)
        assert rig.wait_for(lambda: rig.node.inputs_without_publisher() == [])
        rig.source.destroy_publisher(depth)
    finally:
        rig.close()

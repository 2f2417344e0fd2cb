"""The multiview launch plan (shared by launch/multiview.launch.py and `hand-scene launch multiview`), the launch
actions both launch files build, the RViz layout, the README table, the bag topics, and `hand-scene launch
multiview` in its own process with the real embedded detector over DDS on localhost."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from conftest import SHARED_DATA
from node_checks import launch_actions, launch_runner
from PIL import Image as PILImage
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from hand_scene_msgs.msg import HandArray
from hand_scene_perception import cli
from hand_scene_perception.ros.bags.transport import multiview_output_topics
from hand_scene_perception.ros.conversions import image_msg, time_ns
from hand_scene_perception.ros.launch.plan import (
    MULTIVIEW_LAUNCH_ARGUMENTS,
    MULTIVIEW_NODE_NAME,
    LaunchArgumentError,
    arguments_markdown,
    default_params_file,
    default_rviz_config,
    multiview_launch_plan,
)

REPO = Path(__file__).resolve().parents[2]
HAND_IMAGE = SHARED_DATA / "real_hands" / "mediapipe_samples" / "hand_landmarker_test_image.jpg"


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    """A user parameter file naming three cameras and a reference frame, for the node in any namespace."""
    path = tmp_path / "my_rig.yaml"
    path.write_text("/**/multiview_fusion:\n  ros__parameters:\n    cameras: [left, right, top]\n"
                    "    reference_frame: rig\n")  # fmt: skip
    return path


def test_defaults_remap_every_camera_of_the_shipped_file():
    (spec,) = multiview_launch_plan()
    assert (spec.package, spec.executable, spec.name, spec.namespace) == (
        "hand_scene_perception", "multiview_fusion", MULTIVIEW_NODE_NAME, "")  # fmt: skip
    assert spec.parameter_files() == [str(default_params_file("multiview"))] == [str(REPO / "config/multiview.yaml")]
    assert spec.parameter_overrides() == {"use_sim_time": False}
    assert spec.remappings == (
        ("cam0/image", "/cam0/image_raw"),
        ("cam0/camera_info", "/cam0/camera_info"),
        ("cam1/image", "/cam1/image_raw"),
        ("cam1/camera_info", "/cam1/camera_info"),
    )


def test_cameras_from_the_params_file_and_rviz_reference_frame(params_file):
    node, rviz = multiview_launch_plan({"params_file": str(params_file), "rviz": "true", "namespace": "/rig1"})
    assert [source for source, _ in node.remappings] == [f"{c}/{s}" for c in ("left", "right", "top")
                                                          for s in ("image", "camera_info")]  # fmt: skip
    assert "cameras" not in node.parameter_overrides(), "the file's list stays in charge"
    assert node.namespace == rviz.namespace == "/rig1"
    assert rviz.arguments == ("-d", str(default_rviz_config("multiview")), "-f", "rig")
    assert dict(rviz.remappings) == {"cam0/image": "/left/image_raw", "cam1/image": "/right/image_raw",
                                     "cam2/image": "/top/image_raw"}  # fmt: skip


def test_arguments_override_cameras_topics_and_files(params_file, tmp_path):
    calibration = tmp_path / "rig.yaml"
    calibration.write_text("format: x\n")
    node, rviz = multiview_launch_plan({
        "params_file": str(params_file), "cameras": "a,b,c,d,e", "image_topic": "drivers/{camera}/color/image_raw",
        "camera_info_topic": "/{camera}/color/camera_info", "calibration_file": str(calibration),
        "reference_frame": "", "use_sim_time": "true", "rviz": "true", "hand_model": "open",
    })  # fmt: skip
    assert node.parameter_overrides() == {"use_sim_time": True, "hand_model": "open",
                                          "calibration_file": str(calibration.resolve()),
                                          "cameras": ["a", "b", "c", "d", "e"]}  # fmt: skip
    remaps = dict(node.remappings)
    assert remaps["e/image"] == "/drivers/e/color/image_raw" and remaps["a/camera_info"] == "/a/color/camera_info"
    assert len(rviz.remappings) == 4 and dict(rviz.remappings)["cam3/image"] == "/drivers/d/color/image_raw"
    assert rviz.arguments[-1] == "rig" and rviz.parameter_overrides() == {"use_sim_time": True}
    (default_frame,) = [s for s in multiview_launch_plan({"cameras": "x,y", "rviz": "true"}) if s.name == "rviz2"]
    assert default_frame.arguments[-1] == "x_optical_frame"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"cameras": "cam0,cam0"}, r"repeated: cam0"),
        ({"cameras": "0cam,cam1"}, r"cameras:='0cam,cam1' must be comma-separated names"),
        ({"image_topic": "/image_raw"}, r"gives every camera the same topic; put \{camera\}"),
        ({"camera_info_topic": "/{camera}//info"}, r"camera_info_topic:='/cam0//info' is not a valid ROS topic"),
        ({"calibration_file": "/no/such.yaml"}, r"calibration_file:='/no/such.yaml' does not exist"),
        ({"reference_frame": "/rig"}, r"reference_frame:='/rig' is not a TF frame id"),
        ({"hand_model": "MANO"}, r"hand_model:='MANO' is not one of"),
        ({"hand_model": "mano"}, r"hand_model mano needs mano_dir"),
        ({"namespace": "1rig"}, r"namespace:='1rig' is not a valid ROS namespace"),
        ({"world_frame": "map"}, r"unknown launch argument\(s\) world_frame; the multiview launch takes: namespace"),
    ],
)
def test_bad_values_name_the_argument(values, message):
    with pytest.raises(LaunchArgumentError, match=message):
        multiview_launch_plan(values)


def test_one_camera_needs_no_placeholder():
    (spec,) = multiview_launch_plan({"cameras": "front", "image_topic": "/camera/image_raw"})
    assert dict(spec.remappings)["front/image"] == "/camera/image_raw"


def test_cli_print_plan(capsys):
    assert cli.main(["launch", "multiview", "cameras:=a,b,c", "--print-plan"]) == 0
    shown = capsys.readouterr().out
    assert "hand_scene_perception/multiview_fusion as /multiview_fusion" in shown
    assert "remap c/image -> /c/image_raw" in shown and "param cameras = ['a', 'b', 'c']" in shown
    assert cli.main(["launch", "multiview", "image_topic:=/same", "--print-plan"]) == 2
    assert "hand-scene launch: error: image_topic:='/same' gives every camera the same topic" in capsys.readouterr().err


def test_launch_readme_lists_every_argument():
    assert arguments_markdown(MULTIVIEW_LAUNCH_ARGUMENTS) in (REPO / "launch" / "README.md").read_text(), (
        "launch/README.md's multiview table differs; paste launch_plan.arguments_markdown(MULTIVIEW_LAUNCH_ARGUMENTS)"
    )


def test_rviz_layout_shows_hands_cameras_and_calibration():
    layout = yaml.safe_load(default_rviz_config("multiview").read_text())
    manager = layout["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "cam0_optical_frame"
    displays = manager["Displays"]
    assert all(display["Enabled"] for display in displays)
    images = [d["Topic"]["Value"] for d in displays if d["Class"] == "rviz_default_plugins/Image"]
    assert images == ["cam0/image", "cam1/image", "cam2/image", "cam3/image"]
    (markers,) = [d for d in displays if d["Class"] == "rviz_default_plugins/MarkerArray"]
    assert markers["Topic"]["Value"] == "hand_markers"
    (tf,) = [d for d in displays if d["Class"] == "rviz_default_plugins/TF"]
    assert tf["Show Axes"] and tf["Show Names"], "the calibration shows as each camera's axes"
    assert not any(d["Topic"]["Value"].startswith("/") for d in displays if "Topic" in d)


def test_launch_actions_declare_every_argument_and_build_the_planned_nodes(monkeypatch, params_file):
    """launch/*.launch.py run hand_scene_perception.ros.launch.actions under `ros2 launch` (node_checks.py
    launch_actions: stand-ins for `launch`, which is not on PyPI)."""
    launch_description = launch_actions(monkeypatch)
    description = launch_description("multiview")
    *declared, opaque = description.args[0]
    assert [d.args[0] for d in declared] == [a.name for a in MULTIVIEW_LAUNCH_ARGUMENTS]
    assert all(d.kwargs["description"] for d in declared)
    context = {a.name: a.default for a in MULTIVIEW_LAUNCH_ARGUMENTS} | {"params_file": str(params_file)}
    (node,) = opaque.kwargs["function"](context)
    (spec,) = multiview_launch_plan({"params_file": str(params_file)})
    assert node.kwargs["executable"] == "multiview_fusion" and node.kwargs["remappings"] == list(spec.remappings)
    assert node.kwargs["parameters"] == [str(params_file.resolve()), {"use_sim_time": False}]


def test_record_topics_cover_the_node_outputs():
    topics = multiview_output_topics(["a", "b"])
    assert {"hands", "hand_markers", "calibration", "/tf", "/diagnostics", "a/camera_info_estimated",
            "b/camera_info_estimated"} <= set(topics)  # fmt: skip


@pytest.fixture
def runner(subprocess_env, tmp_path):
    """`hand-scene launch multiview` with two cameras in their own namespaces; killed if a test leaves it."""
    log_path = tmp_path / "runner.log"
    arguments = ["multiview", "namespace:=/mv_test", "cameras:=front,side",
                 "image_topic:=/mv_test_cams/{camera}/image_raw", "rviz:=true"]  # fmt: skip
    with launch_runner(arguments, subprocess_env, log_path) as process:
        yield process, log_path


def test_runner_starts_the_node_which_fuses_and_stops_on_ctrl_c(runner):
    process, log_path = runner
    rgb = np.asarray(PILImage.open(HAND_IMAGE).convert("RGB"))
    rclpy.init()
    probe = rclpy.create_node("multiview_runner_probe")
    received: list[HandArray] = []
    publishers = {name: probe.create_publisher(Image, f"/mv_test_cams/{name}/image_raw", 10)
                  for name in ("front", "side")}  # fmt: skip
    probe.create_subscription(HandArray, "/mv_test/hands", received.append, qos_profile_sensor_data)
    sent: set[int] = set()
    try:
        deadline = time.monotonic() + 120.0  # first start loads MediaPipe (one detector per camera)
        next_send = 0.0
        while time.monotonic() < deadline and not any(msg.hands for msg in received):
            assert process.poll() is None, log_path.read_text()
            if time.monotonic() >= next_send:
                stamp_ns = time.time_ns()
                for name, publisher in publishers.items():  # no CameraInfo: focal lengths are estimated
                    publisher.publish(image_msg(rgb, f"{name}_optical_frame", stamp_ns))
                sent.add(stamp_ns)
                next_send = time.monotonic() + 0.1
            rclpy.spin_once(probe, timeout_sec=0.02)
        subscriptions = {topic for topic, _ in probe.get_subscriber_names_and_types_by_node(MULTIVIEW_NODE_NAME,
                                                                                              "/mv_test")}  # fmt: skip
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=30)
    finally:
        probe.destroy_node()
        rclpy.shutdown()
    log = log_path.read_text()
    with_hands = [msg for msg in received if msg.hands]
    assert with_hands, f"no HandArray with a hand on /mv_test/hands within 120 s:\n{log}"
    for msg in with_hands:
        assert msg.header.frame_id == "front_optical_frame" and time_ns(msg.header.stamp) in sent
    assert {"/mv_test_cams/front/image_raw", "/mv_test_cams/side/image_raw", "/front/camera_info"} <= subscriptions
    assert f"ros2 run rviz2 rviz2 -d {default_rviz_config('multiview')} -f front_optical_frame" in log
    assert returncode == 0 and "hand-scene launch: stopped" in log and "Traceback" not in log, log

"""The ego launch plan (shared by launch/ego.launch.py and `hand-scene launch ego`), its runner's pure parts, the
RViz layout and the launch README's argument table. No DDS here; test_launch_runner.py starts the node."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hand_scene_perception import cli
from hand_scene_perception.ros.launch.plan import (
    DEFAULT_WORLD_FRAME,
    EGO_NODE_NAME,
    LaunchArgumentError,
    NodeSpec,
    arguments_markdown,
    default_params_file,
    default_rviz_config,
    ego_launch_plan,
    load_node_parameters,
)
from hand_scene_perception.ros.launch.runner import (
    DiscoveryRangeError,
    ensure_local_discovery,
    launch_values,
    node_ros_arguments,
    ros2_run_command,
)

REPO = Path(__file__).resolve().parents[2]
# Outputs the ego node publishes (README "Run the ego node"), relative to its namespace.
NODE_OUTPUTS = {
    "hands",
    "hand_markers",
    "hand_paths/left",
    "hand_paths/right",
    "scene_map",
    "camera_odometry",
    "contacts",
    "hand_mesh_topology",
}


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    """A user parameter file that sets the world frame and keeps depth on, for the node in any namespace."""
    path = tmp_path / "my_ego.yaml"
    path.write_text("/**/ego_reconstruction:\n  ros__parameters:\n    world_frame: odom\n    use_depth: true\n")
    return path


def plan_for(params_file: Path, **values: str) -> list[NodeSpec]:
    return ego_launch_plan({"params_file": str(params_file), **values})


def test_defaults_wire_the_camera_topics_and_keep_the_file_values(params_file):
    (spec,) = plan_for(params_file)
    assert (spec.package, spec.executable, spec.name, spec.namespace) == (
        "hand_scene_perception",
        "ego_reconstruction",
        EGO_NODE_NAME,
        "",
    )
    assert spec.parameter_files() == [str(params_file.resolve())]
    # Only use_sim_time is always set; empty node-parameter arguments leave the params file in charge.
    assert spec.parameter_overrides() == {"use_sim_time": False}
    assert spec.remappings == (
        ("image", "/camera/image_raw"),
        ("camera_info", "/camera/camera_info"),
        ("depth", "/camera/depth/image_raw"),
    )
    assert spec.arguments == ()


def test_shipped_params_file_is_the_default():
    path = default_params_file()
    assert path == REPO / "config" / "ego.yaml", "outside a colcon install the source tree's copy is used"
    (spec,) = ego_launch_plan()
    assert spec.parameter_files() == [str(path)]
    shipped = load_node_parameters(path)
    assert {"world_frame", "use_depth", "backend", "hand_model", "autostart"} <= set(shipped), sorted(shipped)


def test_camera_namespace_and_topics(params_file):
    (spec,) = plan_for(
        params_file,
        camera_namespace="/camera/camera/",
        image_topic="color/image_raw",
        camera_info_topic="color/camera_info",
        depth_topic="/other/aligned_depth",
    )
    assert dict(spec.remappings) == {
        "image": "/camera/camera/color/image_raw",
        "camera_info": "/camera/camera/color/camera_info",
        "depth": "/other/aligned_depth",  # absolute topics are kept as given
    }
    (root,) = plan_for(params_file, camera_namespace="/")
    assert dict(root.remappings)["image"] == "/image_raw"
    (bare,) = plan_for(params_file, camera_namespace="")
    assert dict(bare.remappings)["camera_info"] == "/camera_info"


def test_depth_off_drops_the_depth_input(params_file, tmp_path):
    (spec,) = plan_for(params_file, use_depth="false")
    assert "depth" not in dict(spec.remappings)
    assert spec.parameter_overrides()["use_depth"] is False
    (on,) = plan_for(params_file, use_depth="true")
    assert dict(on.remappings)["depth"] == "/camera/depth/image_raw" and on.parameter_overrides()["use_depth"] is True
    rgb_only = tmp_path / "rgb_only.yaml"
    rgb_only.write_text("/**:\n  ros__parameters:\n    use_depth: false\n")
    (from_file,) = plan_for(rgb_only)
    assert "depth" not in dict(from_file.remappings) and "use_depth" not in from_file.parameter_overrides()


def test_node_parameter_arguments_override_the_file(params_file, tmp_path):
    mano = tmp_path / "mano"
    mano.mkdir()
    (spec,) = plan_for(
        params_file,
        namespace="robot1",
        backend="embedded",
        hand_model="mano",
        mano_dir=str(mano),
        world_frame="map",
        camera_pose_source="tf",
        use_sim_time="true",
    )
    assert spec.namespace == "/robot1"
    assert spec.parameter_overrides() == {
        "use_sim_time": True,
        "backend": "embedded",
        "hand_model": "mano",
        "mano_dir": str(mano.resolve()),
        "world_frame": "map",
        "camera_pose_source": "tf",
    }
    # Later entries win in launch_ros: the file first, the overrides after it.
    assert isinstance(spec.parameters[0], str) and spec.parameters[1] == spec.parameter_overrides()


def test_rviz_follows_world_frame_namespace_and_camera(params_file):
    ego, rviz = plan_for(params_file, rviz="true", namespace="/robot1", camera_namespace="/cam")
    assert (rviz.package, rviz.executable, rviz.namespace) == ("rviz2", "rviz2", ego.namespace)
    assert rviz.arguments == ("-d", str(default_rviz_config()), "-f", "odom")  # the params file's world frame
    assert dict(rviz.remappings) == {"image": "/cam/image_raw"}
    assert rviz.parameter_overrides() == {"use_sim_time": False}
    _, explicit = plan_for(params_file, rviz="true", world_frame="map", use_sim_time="true")
    assert explicit.arguments[-2:] == ("-f", "map") and explicit.parameter_overrides() == {"use_sim_time": True}
    assert len(plan_for(params_file, rviz="false")) == 1


def test_rviz_falls_back_to_the_default_world_frame(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    _, rviz = plan_for(empty, rviz="true")
    assert rviz.arguments[-2:] == ("-f", DEFAULT_WORLD_FRAME)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"backend": "gpu"}, r"backend:='gpu' is not one of: embedded"),
        ({"backend": "learned"}, r"backend:='learned' is not one of: embedded"),
        ({"hand_model": "MANO"}, r"hand_model:='MANO' is not one of"),
        ({"use_depth": "maybe"}, r"use_depth:='maybe' is not one of"),
        ({"use_sim_time": "yes"}, r"use_sim_time:='yes' is not a boolean"),
        ({"rviz": "True"}, r"rviz:='True' is not a boolean"),
        ({"namespace": "1robot"}, r"namespace:='1robot' is not a valid ROS namespace"),
        ({"camera_namespace": "cam era"}, r"camera_namespace:='cam era' is not a valid ROS namespace"),
        ({"image_topic": "color//image_raw"}, r"image_topic:='color//image_raw' is not a valid ROS topic"),
        ({"depth_topic": "depth/"}, r"depth_topic:='depth/' is not a valid ROS topic"),
        ({"camera_info_topic": ""}, r"camera_info_topic:='' is not a valid ROS topic"),
        ({"world_frame": "/world"}, r"world_frame:='/world' is not a TF frame id"),
        ({"world_frame": "my world"}, r"world_frame:='my world' is not a TF frame id"),
        ({"mano_dir": "/no/such/folder"}, r"mano_dir:='/no/such/folder' is not a folder"),
        ({"camera_pose_source": "TF"}, r"camera_pose_source:='TF' is not one of: odometry, tf, static"),
        ({"hand_model": "mano"}, r"hand_model mano needs mano_dir"),
        ({"camera": "/cam"}, r"unknown launch argument\(s\) camera; the ego launch takes: namespace, "),
    ],
)
def test_bad_values_name_the_argument(params_file, values, message):
    with pytest.raises(LaunchArgumentError, match=message):
        plan_for(params_file, **values)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "does not exist or is not a file"),
        ("- a\n- b\n", r"must map node names to \{ros__parameters: ...\}"),
        ("ego_reconstruction: [unclosed\n", "is not readable YAML"),
    ],
)
def test_bad_params_files(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(LaunchArgumentError, match=message):
        plan_for(path)


def test_params_file_sections_apply_as_rcl_matches_them(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n    world_frame: a\n    use_depth: false\n"
        "other_node:\n  ros__parameters:\n    world_frame: b\n"
        "/**/ego_reconstruction:\n  ros__parameters:\n    world_frame: c\n"
        "/robot1/*:\n  ros__parameters:\n    backend: embedded\n"
    )
    assert load_node_parameters(path) == {"world_frame": "c", "use_depth": False}
    assert load_node_parameters(path, "/robot1/ego_reconstruction") == {
        "world_frame": "c",
        "use_depth": False,
        "backend": "embedded",
    }
    # A section keyed by the bare node name addresses the node in the root namespace only (rcl's rule), so a
    # namespaced node does not get its values: rviz then falls back to the default world frame.
    bare = tmp_path / "bare.yaml"
    bare.write_text("ego_reconstruction:\n  ros__parameters:\n    world_frame: odom\n")
    assert load_node_parameters(bare) == {"world_frame": "odom"}
    assert load_node_parameters(bare, "/robot1/ego_reconstruction") == {}
    _, rviz = plan_for(bare, rviz="true", namespace="/robot1")
    assert rviz.arguments[-2:] == ("-f", DEFAULT_WORLD_FRAME)


def test_node_ros_arguments_keep_launch_ros_order_and_types(params_file):
    (spec,) = plan_for(params_file, world_frame="true", use_depth="false")
    arguments = node_ros_arguments(spec)
    assert arguments[:3] == ["--ros-args", "--params-file", str(params_file.resolve())]
    rules = [arguments[i + 1] for i, flag in enumerate(arguments) if flag == "-p"]
    # A frame literally named "true" stays a string (JSON quoting); booleans stay booleans.
    assert rules == ["use_sim_time:=false", "use_depth:=false", 'world_frame:="true"']
    remaps = [arguments[i + 1] for i, flag in enumerate(arguments) if flag == "-r"]
    assert remaps == ["image:=/camera/image_raw", "camera_info:=/camera/camera_info"]
    assert arguments.index("-r") > max(i for i, flag in enumerate(arguments) if flag == "-p")


def test_rviz_command_for_manual_start(params_file):
    _, rviz = plan_for(params_file, rviz="true", namespace="/robot1")
    command = ros2_run_command(rviz)
    assert command.startswith(f"ros2 run rviz2 rviz2 -d {default_rviz_config()} -f odom --ros-args -r __node:=rviz2 ")
    assert "-r __ns:=/robot1" in command and "-p use_sim_time:=false" in command
    assert command.endswith("-r image:=/camera/image_raw")


@pytest.mark.parametrize(
    ("value", "allow", "expected"),
    [
        (None, False, "LOCALHOST"),
        ("", False, "LOCALHOST"),
        ("localhost", False, "LOCALHOST"),
        ("OFF", False, "OFF"),
        ("SUBNET", True, "SUBNET"),
        ("SYSTEM_DEFAULT", True, "SYSTEM_DEFAULT"),
    ],
)
def test_discovery_range_kept_local_unless_allowed(value, allow, expected):
    environ = {} if value is None else {"ROS_AUTOMATIC_DISCOVERY_RANGE": value}
    assert ensure_local_discovery(environ, allow_network=allow) == expected
    assert environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("SUBNET", "--allow-network-discovery"),
        ("SYSTEM_DEFAULT", "reach other machines"),
        ("LAN", "is not one of LOCALHOST, OFF, SUBNET, SYSTEM_DEFAULT"),
    ],
)
def test_discovery_range_refused(value, message):
    environ = {"ROS_AUTOMATIC_DISCOVERY_RANGE": value}
    with pytest.raises(DiscoveryRangeError, match=message):
        ensure_local_discovery(environ)
    assert environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == value


def test_cli_refuses_network_discovery_before_any_ros(params_file):
    # A bogus RMW makes sure nothing could reach DDS even if the check were broken.
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET", RMW_IMPLEMENTATION="rmw_not_installed_cpp")
    result = subprocess.run(
        [sys.executable, "-m", "hand_scene_perception.cli", "launch", "ego", "--params", str(params_file)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "hand-scene launch: error: ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET lets DDS discovery reach" in result.stderr


def test_launch_values_and_cli_print_plan(params_file, capsys):
    assert launch_values(["rviz:=true", "world_frame:=a:=b"], "p.yaml") == {
        "rviz": "true",
        "world_frame": "a:=b",
        "params_file": "p.yaml",
    }
    for items, params, message in (
        (["rviz"], None, "NAME:=VALUE"),
        (["rviz:=true", "rviz:=false"], None, "twice"),
        (["params_file:=a.yaml"], "b.yaml", "once"),
    ):
        with pytest.raises(ValueError, match=message):
            launch_values(items, params)

    assert (
        cli.main(["launch", "ego", "use_depth:=false", "rviz:=true", "--params", str(params_file), "--print-plan"]) == 0
    )
    shown = capsys.readouterr().out
    assert "hand_scene_perception/ego_reconstruction as /ego_reconstruction" in shown
    assert "remap image -> /camera/image_raw" in shown and "remap depth" not in shown
    assert f"arguments: -d {default_rviz_config()} -f odom" in shown
    assert cli.main(["launch", "ego", "backend:=gpu", "--print-plan"]) == 2
    assert "hand-scene launch: error: backend:='gpu' is not one of" in capsys.readouterr().err


def test_launch_readme_lists_every_argument():
    assert arguments_markdown() in (REPO / "launch" / "README.md").read_text(), (
        "launch/README.md's table differs from EGO_LAUNCH_ARGUMENTS; paste launch_plan.arguments_markdown()"
    )


def test_rviz_layout_shows_the_node_outputs():
    layout = yaml.safe_load(default_rviz_config().read_text())
    manager = layout["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == DEFAULT_WORLD_FRAME
    displays = {display["Name"]: display for display in manager["Displays"]}
    by_class = {}
    for display in displays.values():
        by_class.setdefault(display["Class"], []).append(display)
        assert display["Enabled"] is True
    topics = {display["Topic"]["Value"] for display in displays.values() if "Topic" in display}
    assert topics == {"image", "hand_markers", "hand_paths/left", "hand_paths/right", "scene_map"}
    assert topics - {"image"} <= NODE_OUTPUTS, "the layout shows only topics the node publishes"
    assert set(by_class) >= {
        "rviz_default_plugins/Grid",
        "rviz_default_plugins/TF",
        "rviz_default_plugins/Image",
        "rviz_default_plugins/MarkerArray",
        "rviz_default_plugins/Path",
        "rviz_default_plugins/PointCloud2",
    }
    (cloud,) = by_class["rviz_default_plugins/PointCloud2"]
    assert cloud["Color Transformer"] == "RGB8" and cloud["Topic"]["Value"] == "scene_map"
    assert {path["Topic"]["Value"] for path in by_class["rviz_default_plugins/Path"]} == {
        "hand_paths/left",
        "hand_paths/right",
    }
    for display in displays.values():
        if "Topic" in display:
            assert not display["Topic"]["Value"].startswith("/"), "relative, so rviz2 follows the node namespace"
            assert display["Topic"]["Reliability Policy"] in ("Reliable", "Best Effort")


def test_installed_share_files_win_when_the_package_is_in_the_ament_index(tmp_path, monkeypatch):
    prefix = tmp_path / "install"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "hand_scene_perception").write_text("")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    share = prefix / "share" / "hand_scene_perception"
    share.mkdir()
    assert default_params_file() == share / "config" / "ego.yaml"
    assert default_rviz_config() == share / "config" / "rviz" / "ego.rviz"
    with pytest.raises(LaunchArgumentError, match=f"params_file {share / 'config' / 'ego.yaml'} does not exist"):
        ego_launch_plan()
    monkeypatch.delenv("AMENT_PREFIX_PATH")
    assert default_rviz_config() == REPO / "config" / "rviz" / "ego.rviz"

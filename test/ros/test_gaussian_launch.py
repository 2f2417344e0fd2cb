"""The gaussian launch plan (shared by launch/gaussian.launch.py and `hand-scene launch gaussian`), its shipped
parameter file (every key commented, exactly the node's parameters, usable as shipped) and its RViz layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from node_checks import launch_actions, shipped_params

from hand_scene_perception import cli
from hand_scene_perception.core.hand_model import HandSide, create_hand_model
from hand_scene_perception.gaussian.avatar_file import save_avatar
from hand_scene_perception.gaussian.per_video import new_avatar
from hand_scene_perception.ros.gaussian.node import PARAMETERS, GaussianHandsNode
from hand_scene_perception.ros.launch.plan import (
    GAUSSIAN_LAUNCH_ARGUMENTS,
    GAUSSIAN_NODE_NAME,
    LaunchArgumentError,
    arguments_markdown,
    default_params_file,
    default_rviz_config,
    gaussian_launch_plan,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def avatar(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("avatar") / "right.avatar.pt"
    save_avatar(path, new_avatar(create_hand_model("open"), HandSide.RIGHT), HandSide.RIGHT)
    return path


def test_defaults_remap_the_ego_outputs_and_the_camera():
    (spec,) = gaussian_launch_plan()
    assert (spec.executable, spec.name, spec.namespace) == ("gaussian_hands", GAUSSIAN_NODE_NAME, "")
    assert spec.parameter_files() == [str(default_params_file("gaussian"))] == [str(REPO / "config/gaussian.yaml")]
    assert dict(spec.remappings) == {"hands": "/hands", "image": "/camera/image_raw",
                                     "camera_info": "/camera/camera_info"}  # fmt: skip
    assert spec.parameter_overrides() == {"use_sim_time": False}
    assert all(argument.description for argument in GAUSSIAN_LAUNCH_ARGUMENTS)


def test_arguments_become_overrides_and_rviz(avatar, tmp_path):
    node, rviz = gaussian_launch_plan({"avatar_files": f"{avatar}, {avatar}", "namespace": "/robot1",
                                       "hands_topic": "hands", "rviz": "true", "use_sim_time": "true"})  # fmt: skip
    assert node.parameter_overrides()["avatar_files"] == [str(avatar.resolve())] * 2
    assert dict(node.remappings)["hands"] == "/robot1/hands" and node.namespace == rviz.namespace == "/robot1"
    assert rviz.arguments == ("-d", str(default_rviz_config("gaussian")), "-f", "map")


@pytest.mark.parametrize(("values", "message"), [
    ({"avatar_files": "/no/such.avatar.pt"}, r"avatar_files: no such file: /no/such.avatar.pt"),
    ({"hand_model": "mano"}, "hand_model mano needs mano_dir"),
    ({"image_topic": "bad topic"}, "image_topic:='bad topic' is not a valid ROS topic name"),
    ({"world_frame": "map"}, r"unknown launch argument\(s\) world_frame; the gaussian launch takes: namespace"),
])  # fmt: skip
def test_bad_arguments_are_refused_with_what_is_accepted(values, message):
    with pytest.raises(LaunchArgumentError, match=message):
        gaussian_launch_plan(values)


def test_the_shipped_parameters_are_the_nodes_and_configure_it(context, avatar, tmp_path):
    params_file, values = shipped_params("gaussian", GAUSSIAN_NODE_NAME, PARAMETERS)
    assert values["avatar_files"] == []  # the user names them: the node refuses to start without
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({f"/**/{GAUSSIAN_NODE_NAME}": {"ros__parameters": {"avatar_files": [str(avatar)]}}}))
    node = GaussianHandsNode(context=context, cli_args=["--ros-args", "--params-file", str(params_file),
                                                        "--params-file", str(mine)])  # fmt: skip
    try:
        assert node._processor is not None  # configured and active with the shipped file's values
        assert {name: node.get_parameter(name).value for name in values if name != "avatar_files"} == {
            name: value for name, value in values.items() if name != "avatar_files"}
    finally:
        node.destroy_node()
    shipped_only = GaussianHandsNode(context=context, cli_args=["--ros-args", "--params-file", str(params_file)])
    try:
        assert shipped_only._processor is None  # avatar_files is empty: the configure fails with that reason
    finally:
        shipped_only.destroy_node()


def test_rviz_layout_shows_the_render_overlay_and_gaussians():
    layout = yaml.safe_load(default_rviz_config("gaussian").read_text())
    displays = layout["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"] for d in displays if "Topic" in d}
    assert topics == {"render", "overlay", "gaussians/left", "gaussians/right"}


def test_print_plan_from_the_command_line(capsys, avatar):
    assert cli.main(["launch", "gaussian", f"avatar_files:={avatar}", "--print-plan"]) == 0
    printed = capsys.readouterr().out
    assert "hand_scene_perception/gaussian_hands as /gaussian_hands" in printed and "remap hands -> /hands" in printed


def test_launch_readme_lists_every_argument():
    assert arguments_markdown(GAUSSIAN_LAUNCH_ARGUMENTS) in (REPO / "launch" / "README.md").read_text()


def test_the_launch_file_declares_every_argument_and_builds_the_planned_node(monkeypatch, avatar):
    launch_actions(monkeypatch)  # the launch file imports them
    namespace: dict = {}
    exec(compile((REPO / "launch" / "gaussian.launch.py").read_text(), "gaussian.launch.py", "exec"), namespace)
    description = namespace["generate_launch_description"]()
    *declared, opaque = description.args[0]
    assert [d.args[0] for d in declared] == [a.name for a in GAUSSIAN_LAUNCH_ARGUMENTS]
    context = {a.name: a.default for a in GAUSSIAN_LAUNCH_ARGUMENTS} | {"avatar_files": str(avatar)}
    (node,) = opaque.kwargs["function"](context)
    assert node.kwargs["executable"] == "gaussian_hands" and ("hands", "/hands") in node.kwargs["remappings"]
    assert node.kwargs["parameters"][1]["avatar_files"] == [str(avatar.resolve())]

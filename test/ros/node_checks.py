"""Checks the nodes' tests share: the shipped parameter file's comments, the nodes left undestroyed, the launch
actions under stand-ins for `launch`, a launch runner and helper publisher processes in subprocesses."""

from __future__ import annotations

import contextlib
import gc
import subprocess
import sys
import types
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml
from rclpy.exceptions import InvalidHandle
from rclpy.node import Node

REPO = Path(__file__).resolve().parents[2]


def shipped_params(system: str, node_name: str, parameters: Mapping[str, object]) -> tuple[Path, dict]:
    """config/<system>.yaml's values for the node, after checking that they are exactly the node's parameters and
    that every key has a comment above it (a ``qos_*`` group may share one)."""
    params_file = REPO / "config" / f"{system}.yaml"
    values = yaml.safe_load(params_file.read_text())[f"/**/{node_name}"]["ros__parameters"]
    assert set(values) == set(parameters)
    lines = params_file.read_text().splitlines()
    for index, line in enumerate(lines):
        if line.startswith("    ") and not line.strip().startswith("#") and ":" in line:
            key = line.split(":")[0].strip()
            above = next(lines[i] for i in range(index - 1, -1, -1) if not lines[i].strip().startswith("qos_"))
            assert above.strip().startswith("#"), f"{key} has no comment"
    return params_file, values


def live_node_names() -> list[str]:
    """Names of this process's rclpy nodes that were never destroyed (a destroyed node's handle refuses use). Such a
    node keeps its DDS endpoints: Jazzy's context shutdown does not destroy it (Kilted's does)."""
    names = []
    for obj in gc.get_objects():
        if issubclass(type(obj), Node):  # not isinstance: its __class__ fallback trips torch deprecation warnings
            with contextlib.suppress(InvalidHandle):
                names.append(obj.get_name())
    return names


@contextlib.contextmanager
def launch_runner(arguments: list[str], env: Mapping[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """`hand-scene launch ARGUMENTS` as a subprocess logging to ``log_path``; killed if the test leaves it."""
    command = [sys.executable, "-m", "hand_scene_perception.cli", "launch", *arguments]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def helper_process(script: Path, arguments: list[str], env: Mapping[str, str]) -> Iterator[subprocess.Popen]:
    """``python SCRIPT ARGUMENTS`` (a publisher in another process, text output piped); terminated when left."""
    process = subprocess.Popen([sys.executable, str(script), *arguments], env=dict(env), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def launch_actions(monkeypatch):
    """ros/launch/actions.py's ``launch_description``, imported over minimal stand-ins for `launch` and `launch_ros`
    (not on PyPI) that record what they are given: what launch/*.launch.py build under `ros2 launch`."""

    def recorder(name):
        def init(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

        return type(name, (), {"__init__": init})

    class LaunchConfiguration:
        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return context[self.name]

    modules = {
        "launch": types.SimpleNamespace(LaunchContext=dict, LaunchDescription=recorder("LaunchDescription")),
        "launch.actions": types.SimpleNamespace(
            DeclareLaunchArgument=recorder("DeclareLaunchArgument"), OpaqueFunction=recorder("OpaqueFunction")
        ),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration),
        "launch_ros": types.SimpleNamespace(),
        "launch_ros.actions": types.SimpleNamespace(Node=recorder("Node")),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "hand_scene_perception.ros.launch.actions", raising=False)
    from hand_scene_perception.ros.launch.actions import launch_description

    return launch_description

"""The README's ROS 2 workspace command builds BOTH packages (colcon from PyPI).

colcon stops descending at a package root, so hand_scene_msgs (nested inside the
hand_scene_perception package folder) needs its own base path. This test copies the
repository into a fresh workspace as `ws/src/hand_scene_perception`, runs the exact
`colcon build` line from the README, and checks what lands in `install/`. The venv
stands in for `/opt/ros/<distro>` (AMENT_PREFIX_PATH / CMAKE_PREFIX_PATH).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv*", "build", "install", "log", "outputs", "__pycache__", ".*_cache")


def documented_colcon_command() -> list[str]:
    """The single `colcon build ...` line of the README's workspace section."""
    lines = [line.strip() for line in (REPO / "README.md").read_text().splitlines()]
    commands = [line for line in lines if re.match(r"^colcon build\b", line)]
    assert len(commands) == 1, f"expected one `colcon build` line in README.md, found {commands}"
    return shlex.split(commands[0])


@pytest.mark.slow
def test_documented_colcon_command_builds_both_packages(tmp_path, subprocess_env):
    workspace = tmp_path / "ws"
    shutil.copytree(REPO, workspace / "src" / "hand_scene_perception", ignore=NOT_SOURCES)
    venv_bin = Path(sys.executable).parent
    env = dict(subprocess_env, AMENT_PREFIX_PATH=sys.prefix, CMAKE_PREFIX_PATH=sys.prefix,
               PATH=f"{venv_bin}{os.pathsep}{subprocess_env.get('PATH', '')}")
    command = documented_colcon_command()
    result = subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Summary: 2 packages finished" in result.stdout

    install = workspace / "install"
    assert (install / "hand_scene_msgs" / "share" / "hand_scene_msgs" / "msg" / "HandArray.msg").is_file()
    assert (install / "hand_scene_perception" / "share" / "hand_scene_perception" / "package.xml").is_file()
    assert (install / "hand_scene_perception" / "lib" / "hand_scene_perception" / "hand-scene").is_file()

    # Sourcing the workspace makes both packages importable from install/, not from the venv.
    probe = "import hand_scene_msgs.msg, hand_scene_perception; print(hand_scene_msgs.__file__); " \
            "print(hand_scene_perception.__file__); print(hand_scene_msgs.msg.HandArray.__name__)"
    sourced = subprocess.run(
        ["bash", "-c", f"source install/setup.bash && cd / && {shlex.quote(sys.executable)} -c {shlex.quote(probe)}"],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert sourced.returncode == 0, sourced.stderr
    msgs_file, package_file, type_name = sourced.stdout.split()
    assert msgs_file.startswith(str(install / "hand_scene_msgs"))
    assert package_file.startswith(str(install / "hand_scene_perception"))
    assert type_name == "HandArray"

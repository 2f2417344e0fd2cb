"""Build and install the ROS 2 interface packages into a Python virtual environment.

ROS 2 from PyPI wheels (ARCHITECTURE.md, Environment) can build rosidl interface packages, but the
wheels' exported CMake files hard-code the include directories of the machine they were
built on (``/opt/python/cpXY-cpXY/...``). This script repoints those paths at this
interpreter, then configures, builds and installs ``hand_scene_msgs`` (and, only when
``tf2_msgs`` is not importable, a ``tf2_msgs`` package holding TFMessage) with CMake.

Run with the venv's interpreter: ``.venv-jazzy/bin/python tools/build_interfaces.py``.
Rebuilds are skipped when the installed package is newer than its sources.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD_HOST_INCLUDE = re.compile(
    r"/opt/python/cp\d+-cp\d+/(include/python[\d.]+|lib/python[\d.]+/site-packages/numpy/_core/include)"
)

# TFMessage's upstream definition; the generated type hash equals upstream tf2_msgs'.
TF2_MSGS_PACKAGE_XML = """<?xml version="1.0"?>
<package format="3">
  <name>tf2_msgs</name>
  <version>0.0.0</version>
  <description>TFMessage only, built by hand_scene_perception where tf2_msgs has no wheel.</description>
  <maintainer email="maintainers@hand-scene-perception.dev">hand_scene_perception maintainers</maintainer>
  <license>BSD-3-Clause</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>geometry_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
"""
TF2_MSGS_CMAKE = """cmake_minimum_required(VERSION 3.16)
project(tf2_msgs)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(geometry_msgs REQUIRED)
rosidl_generate_interfaces(${PROJECT_NAME} "msg/TFMessage.msg" DEPENDENCIES geometry_msgs)
ament_export_dependencies(rosidl_default_runtime)
ament_package()
"""
TF_MESSAGE_MSG = "geometry_msgs/TransformStamped[] transforms\n"


def repoint_build_host_paths(prefix: Path) -> int:
    """Replace the wheels' build-host include paths with this interpreter's; returns files changed."""
    import numpy

    replacements = {
        "include": sysconfig.get_paths()["include"],
        "numpy": numpy.get_include(),
    }

    def local_path(match: re.Match[str]) -> str:
        return replacements["numpy" if "numpy" in match.group(1) else "include"]

    changed = 0
    for cmake_file in (prefix / "share").glob("*/cmake/*.cmake"):
        text = cmake_file.read_text()
        patched = BUILD_HOST_INCLUDE.sub(local_path, text)
        if patched != text:
            cmake_file.write_text(patched)
            changed += 1
    return changed


def newest_mtime(paths: list[Path]) -> float:
    """Latest modification time among files under the given paths."""
    files = [p for root in paths for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file()]
    return max((p.stat().st_mtime for p in files), default=0.0)


def cmake_install(source: Path, build: Path, prefix: Path) -> None:
    """Configure, build and install one ament_cmake package into prefix."""
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix), CMAKE_PREFIX_PATH=str(prefix))
    env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    configure = [
        "cmake", "-S", str(source), "-B", str(build),
        f"-DCMAKE_INSTALL_PREFIX={prefix}", f"-DCMAKE_PREFIX_PATH={prefix}",
        f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF",
    ]  # fmt: skip
    subprocess.run(configure, check=True, env=env, stdout=subprocess.DEVNULL)
    jobs = str(os.cpu_count() or 2)
    subprocess.run(
        ["cmake", "--build", str(build), "--target", "install", "-j", jobs],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def write_tf2_msgs_source(root: Path) -> Path:
    """Write the minimal tf2_msgs package sources under root and return its folder."""
    package = root / "tf2_msgs"
    (package / "msg").mkdir(parents=True, exist_ok=True)
    (package / "package.xml").write_text(TF2_MSGS_PACKAGE_XML)
    (package / "CMakeLists.txt").write_text(TF2_MSGS_CMAKE)
    (package / "msg" / "TFMessage.msg").write_text(TF_MESSAGE_MSG)
    return package


def main() -> int:
    """Build what is missing or stale; print one line per package."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", type=Path, default=Path(sys.prefix), help="install prefix (default: this venv)")
    parser.add_argument(
        "--build-dir",
        type=Path,
        default=None,
        help="CMake build folders go here (default: build/<venv folder name>; one per venv, "
        "since a CMake cache remembers the prefix it was configured against)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args()
    prefix = args.prefix.resolve()
    build_dir = args.build_dir or REPO / "build" / prefix.name

    patched = repoint_build_host_paths(prefix)
    if patched:
        print(f"build_interfaces: repointed build-host include paths in {patched} CMake files")

    if importlib.util.find_spec("tf2_msgs") is None:
        source = write_tf2_msgs_source(build_dir / "generated")
        cmake_install(source, build_dir / "tf2_msgs", prefix)
        print("build_interfaces: built tf2_msgs (TFMessage) into", prefix)

    msgs_source = REPO / "hand_scene_msgs"
    marker = prefix / "share" / "hand_scene_msgs" / "package.xml"
    if args.force or not marker.exists() or newest_mtime([msgs_source]) > marker.stat().st_mtime:
        cmake_install(msgs_source, build_dir / "hand_scene_msgs", prefix)
        marker.touch()
        print("build_interfaces: built hand_scene_msgs into", prefix)
    else:
        print("build_interfaces: hand_scene_msgs up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The package's layers (ARCHITECTURE.md): each folder imports only the folders below it.

core <- backends, models, io, gaussian <- pipelines, synth, datasets <- ros <- eval <- cli; only backends import
models.
Checked on the source (every import statement, module level or inside a function), so a lazy import cannot hide
a dependency.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hand_scene_perception"
ROS_MODULES = {"rclpy", "launch", "launch_ros", "sensor_msgs", "geometry_msgs", "nav_msgs", "std_msgs", "tf2_msgs",
               "tf2_ros", "visualization_msgs", "diagnostic_msgs", "builtin_interfaces", "rcl_interfaces",
               "rosgraph_msgs", "hand_scene_msgs", "shape_msgs"}
# folder: the package folders it must not import
FORBIDDEN = {
    "core": {"backends", "models", "pipelines", "synth", "datasets", "io", "eval", "ros", "cli", "gaussian"},
    "backends": {"pipelines", "synth", "datasets", "eval", "ros", "cli"},
    "models": {"backends", "pipelines", "synth", "datasets", "eval", "ros", "cli"},
    "gaussian": {"backends", "models", "pipelines", "synth", "datasets", "io", "eval", "ros", "cli"},
    "pipelines": {"eval", "ros", "cli", "models"},
    "synth": {"eval", "ros", "cli", "models"},
    "datasets": {"eval", "ros", "cli", "models"},
    "io": {"pipelines", "eval", "ros", "cli", "models"},
    "ros": {"eval", "cli", "models"},
    "eval": {"cli", "models"},
    "cli": {"models"},
}


def imported_modules(path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports (relative imports resolved against its package)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names.add(module)
            if not node.module:  # from . import x: x may be a module
                names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def modules_of(folder: str) -> list[Path]:
    """The folder's modules (``cli`` may be one module or a package)."""
    single = PACKAGE / f"{folder}.py"
    return [single] if single.is_file() else sorted((PACKAGE / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_folder_imports_only_layers_below(folder):
    offences = []
    for path in modules_of(folder):
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[0] == "hand_scene_perception" and len(parts) > 1 and parts[1] in FORBIDDEN[folder]:
                offences.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not offences, "\n".join(offences)


@pytest.mark.parametrize("folder", ["core", "backends", "models", "gaussian", "pipelines", "synth", "datasets", "io"])
def test_nothing_below_ros_imports_ros(folder):
    offences = [f"{path.relative_to(PACKAGE)} imports {name}" for path in modules_of(folder)
                for name in imported_modules(path) if name.split(".")[0] in ROS_MODULES]
    assert not offences, "\n".join(offences)


def test_the_checker_sees_relative_and_lazy_imports():
    assert "numpy" in imported_modules(PACKAGE / "core" / "camera.py")
    # relative imports from a nested package resolve to absolute names
    found = imported_modules(PACKAGE / "ros" / "ego" / "node.py")
    assert "hand_scene_perception.ros.node_base" in found and "rclpy.lifecycle" in found
    # and a function-level (lazy) import is seen
    assert "hand_scene_perception.backends.mediapipe_hands" in imported_modules(PACKAGE / "backends" / "registry.py")

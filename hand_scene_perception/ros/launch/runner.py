"""`hand-scene launch <system>`: a launch plan run in this process, for machines without `ros2 launch`.

The same plan (ros/launch/plan.py: ``ego_launch_plan``, ``multiview_launch_plan``) that ``launch/<system>.launch.py``
turns into launch_ros actions is turned here into node arguments for the system's node class, which then spins
until Ctrl-C or SIGTERM. Nodes that cannot run in this process (rviz2) are printed as a command to start beside it.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping, MutableMapping, Sequence
from typing import TextIO

from .plan import LAUNCH_SYSTEMS, NodeSpec, dds_profile_file, describe_plan

DISCOVERY_VARIABLE = "ROS_AUTOMATIC_DISCOVERY_RANGE"
DDS_PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
LOCAL_DISCOVERY = ("LOCALHOST", "OFF")
NETWORK_DISCOVERY = ("SUBNET", "SYSTEM_DEFAULT")


class DiscoveryRangeError(ValueError):
    """DDS discovery would reach beyond this machine without the user asking for it, or the value is unknown."""


def ensure_local_discovery(environ: MutableMapping[str, str], allow_network: bool = False) -> str:
    """Make DDS discovery stay on this machine unless the user opted in (ARCHITECTURE.md, Environment, README "Network
    safety").

    Unset or empty: set LOCALHOST. LOCALHOST/OFF: kept. SUBNET/SYSTEM_DEFAULT: refused unless ``allow_network``.
    Must run before rclpy initialises; returns the range in force.
    """
    value = environ.get(DISCOVERY_VARIABLE, "").strip()
    word = value.upper() or "LOCALHOST"
    if word in NETWORK_DISCOVERY and not allow_network:
        raise DiscoveryRangeError(
            f"{DISCOVERY_VARIABLE}={value} lets DDS discovery reach other machines on the network. Export "
            f"{DISCOVERY_VARIABLE}=LOCALHOST to stay on this machine, or pass --allow-network-discovery when the "
            "camera or the consumers run on other hosts."
        )
    if word not in LOCAL_DISCOVERY + NETWORK_DISCOVERY:
        raise DiscoveryRangeError(
            f"{DISCOVERY_VARIABLE}={value!r} is not one of {', '.join(LOCAL_DISCOVERY + NETWORK_DISCOVERY)}"
        )
    environ[DISCOVERY_VARIABLE] = word
    return word


def use_shipped_dds_profile(environ: MutableMapping[str, str]) -> str:
    """Point Fast DDS at config/fastdds_large_images.xml unless the user chose a profile (see that file: camera
    images larger than the default shared-memory segment get lost as UDP fragments). Must run before rclpy
    initialises; returns the profile file in force."""
    return environ.setdefault(DDS_PROFILE_VARIABLE, str(dds_profile_file()))


def parse_launch_arguments(items: Sequence[str]) -> dict[str, str]:
    """``name:=value`` items (the `ros2 launch` syntax) as a dict; a malformed or repeated item is an error."""
    values: dict[str, str] = {}
    for item in items:
        name, separator, value = item.partition(":=")
        if not separator or not name.strip():
            raise ValueError(f"launch arguments are NAME:=VALUE, got {item!r}")
        if name in values:
            raise ValueError(f"launch argument {name} given twice")
        values[name] = value
    return values


def launch_values(items: Sequence[str], params_file: str | None = None) -> dict[str, str]:
    """Launch-argument values from ``name:=value`` items plus ``--params FILE`` (the ``params_file`` argument)."""
    values = parse_launch_arguments(items)
    if params_file is not None:
        if "params_file" in values:
            raise ValueError("give the parameter file once: --params FILE or params_file:=FILE")
        values["params_file"] = params_file
    return values


def node_ros_arguments(spec: NodeSpec) -> list[str]:
    """The plan's parameters and remappings as ``--ros-args`` for one node, in launch_ros's order (files, then
    overrides); values are JSON, which the rcl YAML parser reads back with their types (strings stay strings)."""
    arguments = ["--ros-args"]
    for path in spec.parameter_files():
        arguments += ["--params-file", path]
    for name, value in spec.parameter_overrides().items():
        arguments += ["-p", f"{name}:={json.dumps(value)}"]
    for source, target in spec.remappings:
        arguments += ["-r", f"{source}:={target}"]
    return arguments


def ros2_run_command(spec: NodeSpec) -> str:
    """A shell command that starts ``spec`` as `ros2 run` would, for nodes this process cannot host (rviz2)."""
    names = ["-r", f"__node:={spec.name}"] + (["-r", f"__ns:={spec.namespace}"] if spec.namespace else [])
    plan_arguments = node_ros_arguments(spec)[1:]  # without the leading --ros-args
    return shlex.join(["ros2", "run", spec.package, spec.executable, *spec.arguments, "--ros-args", *names,
                       *plan_arguments])  # fmt: skip


def _node_class(system: str):
    """The node class the system's plan starts (imported late: rclpy starts only when a node runs)."""
    if system == "ego":
        from ..ego.node import EgoReconstructionNode

        return EgoReconstructionNode
    if system == "gaussian":
        from ..gaussian.node import GaussianHandsNode

        return GaussianHandsNode
    from ..multiview.node import MultiviewFusionNode

    return MultiviewFusionNode


def run_launch(
    system: str,
    values: Mapping[str, str],
    user_ros_arguments: Sequence[str] = (),
    *,
    allow_network_discovery: bool = False,
    print_plan: bool = False,
    out: TextIO | None = None,
) -> int:
    """Check the arguments, print or run the plan of ``system`` (ego, multiview, gaussian): its node spins here until
    Ctrl-C or SIGTERM, then shuts down cleanly (node_base.spin_node).

    ``user_ros_arguments`` (what follows ``--ros-args``) come after the plan's own, so they win, as on a robot.
    """
    if system not in LAUNCH_SYSTEMS:
        raise ValueError(f"no launch plan for {system!r}; systems: {', '.join(LAUNCH_SYSTEMS)}")
    _, plan_function, node_name = LAUNCH_SYSTEMS[system]
    plan = plan_function(values)
    if print_plan:
        print(describe_plan(plan), file=out)
        return 0
    ensure_local_discovery(os.environ, allow_network_discovery)
    use_shipped_dds_profile(os.environ)
    node_spec = next(spec for spec in plan if spec.name == node_name)
    for spec in plan:
        if spec is not node_spec:
            print(
                f"hand-scene launch: {spec.executable} is not started in-process; start it beside this process "
                f"(same {DISCOVERY_VARIABLE} and ROS_DOMAIN_ID):\n  {ros2_run_command(spec)}",
                file=out,
                flush=True,
            )

    from ..node_base import spin_node

    node_class = _node_class(system)
    user = list(user_ros_arguments)

    def announce(node) -> None:
        print(
            f"hand-scene launch: {node.get_fully_qualified_name()} running "
            f"({DISCOVERY_VARIABLE}={os.environ[DISCOVERY_VARIABLE]}); Ctrl-C or SIGTERM stops it",
            file=out,
            flush=True,
        )

    spin_node(
        lambda: node_class(node_name=node_spec.name, namespace=node_spec.namespace or None,
                           cli_args=node_ros_arguments(node_spec) + user),
        args=["hand-scene", "--ros-args", *user] if user else None,
        on_running=announce,
    )  # fmt: skip
    print("hand-scene launch: stopped", file=out, flush=True)
    return 0

"""launch_ros actions from a launch plan: what every ``launch/<system>.launch.py`` does, once.

Imported only by the launch files, on machines with ROS 2's `launch` and `launch_ros` (not on PyPI; ARCHITECTURE.md,
Environment).
The wiring itself (nodes, parameters, remappings, argument checks) is ros/launch/plan.py, shared with the in-process
runner `hand-scene launch <system>`; here the plan's argument table is declared and its node specs become Node
actions.
"""

from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from .plan import LAUNCH_SYSTEMS


def launch_description(system: str) -> LaunchDescription:
    """Every argument of the system's table, declared with its default, description and choices, then the planned
    nodes (built once the arguments' values are known, so the plan checks them)."""
    table, plan_function, _ = LAUNCH_SYSTEMS[system]

    def nodes_from_plan(context: LaunchContext) -> list[Node]:
        values = {argument.name: LaunchConfiguration(argument.name).perform(context) for argument in table}
        return [
            Node(
                package=spec.package,
                executable=spec.executable,
                name=spec.name,
                namespace=spec.namespace,
                parameters=[entry if isinstance(entry, str) else dict(entry) for entry in spec.parameters],
                remappings=list(spec.remappings),
                arguments=list(spec.arguments),
                output="screen",
            )
            for spec in plan_function(values)
        ]

    declared = [
        DeclareLaunchArgument(
            argument.name,
            default_value=argument.default,
            description=argument.description,
            **({"choices": list(argument.choices)} if argument.choices else {}),
        )
        for argument in table
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=nodes_from_plan)])

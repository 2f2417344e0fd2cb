"""Launch the ego reconstruction node (and rviz2 with rviz:=true) next to a camera driver.

    ros2 launch hand_scene_perception ego.launch.py camera_namespace:=/camera/camera \
        image_topic:=color/image_raw camera_info_topic:=color/camera_info \
        depth_topic:=aligned_depth_to_color/image_raw rviz:=true

The wiring (nodes, parameters, remappings, argument checks) lives in hand_scene_perception.ros.launch_plan, shared
with the in-process runner `hand-scene launch ego`; this file only declares its arguments and turns its node specs
into launch_ros Node actions. `ros2 launch hand_scene_perception ego.launch.py --show-args` lists the arguments.
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from hand_scene_perception.ros.launch_plan import EGO_LAUNCH_ARGUMENTS, ego_launch_plan


def _nodes_from_plan(context: LaunchContext) -> list[Node]:
    """Read the argument values, let the plan check them and build one Node action per planned node."""
    values = {argument.name: LaunchConfiguration(argument.name).perform(context) for argument in EGO_LAUNCH_ARGUMENTS}
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
        for spec in ego_launch_plan(values)
    ]


def generate_launch_description() -> LaunchDescription:
    """Every argument of the plan's table, declared with its default and description, then the planned nodes."""
    declared = [
        DeclareLaunchArgument(
            argument.name,
            default_value=argument.default,
            description=argument.description,
            **({"choices": list(argument.choices)} if argument.choices else {}),
        )
        for argument in EGO_LAUNCH_ARGUMENTS
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_nodes_from_plan)])

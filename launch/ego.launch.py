"""Launch the ego reconstruction node (and rviz2 with rviz:=true) next to a camera driver.

    ros2 launch hand_scene_perception ego.launch.py camera_namespace:=/camera/camera \
        image_topic:=color/image_raw camera_info_topic:=color/camera_info \
        depth_topic:=aligned_depth_to_color/image_raw rviz:=true

The wiring (nodes, parameters, remappings, argument checks) lives in hand_scene_perception.ros.launch.plan, shared
with the in-process runner `hand-scene launch ego`; this file only declares its arguments and turns its node specs
into launch_ros Node actions (hand_scene_perception.ros.launch.actions). `ros2 launch hand_scene_perception
ego.launch.py --show-args` lists the arguments.
"""

from launch import LaunchDescription

from hand_scene_perception.ros.launch.actions import launch_description


def generate_launch_description() -> LaunchDescription:
    """The ego plan's arguments and nodes."""
    return launch_description("ego")

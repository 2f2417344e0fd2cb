"""Launch the gaussian hands node (and rviz2 with rviz:=true) next to the ego node.

    ros2 launch hand_scene_perception gaussian.launch.py avatar_files:=avatars/right.avatar.pt \
        hands_topic:=/hands image_topic:=/camera/image_raw camera_info_topic:=/camera/camera_info rviz:=true

The wiring (nodes, parameters, remappings, argument checks) lives in hand_scene_perception.ros.launch.plan, shared
with the in-process runner `hand-scene launch gaussian`; this file only declares its arguments and turns its node
specs into launch_ros Node actions (hand_scene_perception.ros.launch.actions). `ros2 launch hand_scene_perception
gaussian.launch.py --show-args` lists the arguments.
"""

from launch import LaunchDescription

from hand_scene_perception.ros.launch.actions import launch_description


def generate_launch_description() -> LaunchDescription:
    """The gaussian plan's arguments and nodes."""
    return launch_description("gaussian")

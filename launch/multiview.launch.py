"""Launch the multiview fusion node (and rviz2 with rviz:=true) next to 1-8 camera drivers.

    ros2 launch hand_scene_perception multiview.launch.py cameras:=cam0,cam1,cam2 \
        image_topic:=/{camera}/color/image_raw camera_info_topic:=/{camera}/color/camera_info rviz:=true

{camera} in a topic argument stands for each camera's name. The wiring (nodes, parameters, remappings, argument
checks) lives in hand_scene_perception.ros.launch.plan, shared with the in-process runner `hand-scene launch
multiview`; this file only declares its arguments and turns its node specs into launch_ros Node actions
(hand_scene_perception.ros.launch.actions). `ros2 launch hand_scene_perception multiview.launch.py --show-args`
lists the arguments.
"""

from launch import LaunchDescription

from hand_scene_perception.ros.launch.actions import launch_description


def generate_launch_description() -> LaunchDescription:
    """The multiview plan's arguments and nodes."""
    return launch_description("multiview")

"""Where frames come from outside ROS: videos, image folders and their depth images."""

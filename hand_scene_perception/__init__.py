"""hand_scene_perception: hands and scenes for robot teleoperation and grasp learning.

Sub-packages (DESIGN.md §2): core (ROS-free geometry, hand models, metrics), models (torch
networks), backends (ways of estimating behind small protocols), pipelines (frames in, typed
results out), ros (nodes and message conversions), synth (synthetic data with ground truth).
"""

__version__ = "0.1.0"

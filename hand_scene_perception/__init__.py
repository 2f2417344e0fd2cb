"""hand_scene_perception: hands and scenes for robot teleoperation and grasp learning.

Sub-packages (ARCHITECTURE.md, Layers): core (ROS-free geometry, hand models, metrics), backends (hand experts
behind one protocol), pipelines (frames in, typed results out), synth (synthetic data with ground truth), datasets
(real ground truth), ros (nodes, message conversions, launch wiring, bags), eval (benchmarks and evaluations).
"""

__version__ = "0.1.0"

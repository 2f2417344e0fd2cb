"""ROS-free building blocks: cameras, transforms, hand models, fitting, metrics."""

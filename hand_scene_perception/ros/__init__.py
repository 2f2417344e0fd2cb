"""ROS 2 layer: thin nodes and pure numpy <-> message conversions; the only place importing rclpy."""

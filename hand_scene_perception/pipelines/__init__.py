"""ego / multiview / gaussian pipelines: frames in, plain dataclass results out, no ROS."""

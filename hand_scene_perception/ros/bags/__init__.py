"""rosbag2 files: reading and writing (rosbags), play and record over DDS, offline processing of a bag."""

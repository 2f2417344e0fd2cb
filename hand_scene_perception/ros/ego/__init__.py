"""The ego node (Hand3R-style online hand-scene reconstruction) and its message processor."""

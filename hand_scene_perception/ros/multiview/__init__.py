"""The multiview node (HGGT-style uncalibrated multi-camera hand fusion) and its message processor."""

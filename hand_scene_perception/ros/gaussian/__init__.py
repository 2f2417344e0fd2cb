"""The Gaussian hands node (Hand-4DGS-style avatars rendered from the tracked meshes) and its message processor."""

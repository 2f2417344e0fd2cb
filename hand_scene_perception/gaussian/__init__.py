"""Gaussian hands (the Hand-4DGS system): 3D Gaussians anchored on the tracked hand mesh (gaussian/README.md)."""

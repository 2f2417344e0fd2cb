"""Synthetic scenes, hand animation and rendering with ground truth for demos, tests and benchmarks."""

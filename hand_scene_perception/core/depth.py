"""Depth images in, one convention out: float32 metres aligned with the colour image, 0 = no depth.

Cameras and bags deliver depth as uint16 millimetres (16UC1) or float32 metres (32FC1),
often at another resolution than colour, with holes encoded as 0, NaN or inf. Everything
downstream (placement, odometry, mapping) reads only the normalised form.
"""

from __future__ import annotations

import numpy as np

MM_PER_M = 1000.0
# Relative aspect-ratio difference still taken as the same view (rounding of odd resolutions).
DEPTH_ASPECT_TOLERANCE = 0.01


def depth_to_metres(depth: np.ndarray, max_range_m: float = 10.0) -> np.ndarray:
    """float32 metres from uint16 millimetres or float metres; invalid and out-of-range samples become 0."""
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise ValueError(f"depth must be a single-channel (H, W) image, got shape {depth.shape}")
    if depth.dtype == np.uint16:
        metres = depth.astype(np.float32) / MM_PER_M
    elif np.issubdtype(depth.dtype, np.floating):
        metres = depth.astype(np.float32, copy=True)
    else:
        raise ValueError(f"depth must be uint16 millimetres or float metres, got dtype {depth.dtype}")
    valid = np.isfinite(metres) & (metres > 0) & (metres <= max_range_m)
    metres[~valid] = 0.0
    return metres


def resample_depth(depth_m: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resample of metric depth to (height, width).

    Nearest, not interpolation: averaging across a depth edge invents surfaces between
    foreground and background, and averaging with holes (0) drags depths toward the camera.
    Assumes the depth image is registered to the colour image (same field of view).
    """
    if depth_m.shape == (height, width):
        return depth_m
    src_h, src_w = depth_m.shape
    rows = np.minimum(((np.arange(height) + 0.5) * src_h / height).astype(np.int64), src_h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * src_w / width).astype(np.int64), src_w - 1)
    return depth_m[rows[:, None], cols[None, :]]


def check_depth_registered(depth_height: int, depth_width: int, height: int, width: int) -> None:
    """ValueError unless the depth image can be registered to the (height, width) colour image: any resolution,
    but the same aspect (a depth image of another aspect shows another view, and resampling would misplace it)."""
    if depth_height <= 0 or depth_width <= 0 or abs((depth_width / depth_height) / (width / height) - 1.0) > (
        DEPTH_ASPECT_TOLERANCE
    ):
        raise ValueError(
            f"depth is {depth_width}x{depth_height} but the image is {width}x{height}: "
            "depth must be registered to the colour image (same view, any resolution of the same aspect)"
        )


def aligned_depth_metres(depth: np.ndarray, height: int, width: int, max_range_m: float = 10.0) -> np.ndarray:
    """The normalised depth the pipelines consume: metres, float32, colour resolution, 0 = invalid."""
    metres = depth_to_metres(depth, max_range_m)
    check_depth_registered(*metres.shape, height, width)
    return resample_depth(metres, height, width)

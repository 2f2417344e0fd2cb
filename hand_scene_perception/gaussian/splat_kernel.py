"""Front-to-back compositing of projected Gaussians as one compiled loop (numba): the rasteriser's forward-only path.

Why: the differentiable PyTorch path (raster.py) builds every (Gaussian, pixel) pair as tensors and sorts them, which
is interpreter- and memory-bound (two hands at 256x256: ~170 ms on one core). Without gradients the same image is
one pass over the Gaussians in depth order, each adding itself to the pixels of its footprint under their running
transmittance: per pixel that is exactly front-to-back compositing. A pixel whose transmittance fell below
``EARLY_STOP`` takes nothing more (3DGS's early termination; the differentiable path composites everything, so the
two differ by at most that in coverage). Compiled once per machine (``cache=True``) and run without the interpreter
lock, so a node's other threads go on while it renders.
"""

from __future__ import annotations

import numba
import numpy as np

EARLY_STOP = 1e-4


@numba.njit(cache=True, nogil=True)
def composite(centre: np.ndarray, conic: np.ndarray, opacity: np.ndarray, colors: np.ndarray, depth: np.ndarray,
              nearest: np.ndarray, radius: np.ndarray, extent: np.ndarray, width: int, height: int,
              min_alpha: float, max_alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(rgb (H*W, 3), coverage (H*W,), alpha-weighted depth (H*W,)) of Gaussians given front to back: centres
    (N, 2) px, conics (N, 3) (the inverse screen covariance's xx, xy, yy), opacities, colours (N, 3), depths,
    footprints (the nearest pixel (N, 2), integer radius and disc extent in px)."""
    pixels = width * height
    rgb = np.zeros((pixels, 3))
    coverage = np.zeros(pixels)
    weighted_depth = np.zeros(pixels)
    transmittance = np.ones(pixels)
    for i in range(len(opacity)):
        r = radius[i]
        cu, cv = nearest[i, 0], nearest[i, 1]
        limit = extent[i] * extent[i]
        xx, xy, yy = conic[i, 0], conic[i, 1], conic[i, 2]
        for dy in range(-r, r + 1):
            y = cv + dy
            if y < 0 or y >= height:
                continue
            for dx in range(-r, r + 1):
                x = cu + dx
                if x < 0 or x >= width or dx * dx + dy * dy > limit:
                    continue
                p = y * width + x
                t = transmittance[p]
                if t < EARLY_STOP:
                    continue
                du, dv = x - centre[i, 0], y - centre[i, 1]
                power = min(-0.5 * (xx * du * du + 2.0 * xy * du * dv + yy * dv * dv), 0.0)
                alpha = min(opacity[i] * np.exp(power), max_alpha)
                if alpha < min_alpha:
                    continue
                weight = alpha * t
                rgb[p, 0] += weight * colors[i, 0]
                rgb[p, 1] += weight * colors[i, 1]
                rgb[p, 2] += weight * colors[i, 2]
                coverage[p] += weight
                weighted_depth[p] += weight * depth[i]
                transmittance[p] = t * (1.0 - alpha)
    return rgb, coverage, weighted_depth

"""Least-squares similarity / rigid alignment of point sets (Umeyama 1991).

Used by the evaluation metrics (PA-MPJPE, W-/WA-MPJPE, ATE) and by anything that has to
bring two reconstructions into one frame. All functions batch over leading axes.
"""

from __future__ import annotations

import numpy as np

# relative size of the second singular value below which the rotation is not unique
_RANK_TOL = 1e-10


def umeyama(
    src: np.ndarray, dst: np.ndarray, with_scale: bool = True, *, strict: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising sum ||dst_i - (s R src_i + t)||² over points i.

    ``src`` and ``dst`` are (..., N, 3) with corresponding rows; returns s (...), R (..., 3, 3)
    with det(R) = +1 (a reflection in the data gives the best proper rotation, never a
    mirror) and t (..., 3). ``with_scale=False`` fixes s = 1 (rigid fit).

    Raises ValueError for mismatched shapes, non-finite values, fewer than 2 points, a
    source whose points all coincide, or (with ``strict``) a rank-deficient configuration
    (e.g. collinear points) where the rotation is not unique. With ``strict=False`` such
    inputs return one of the equally good minimisers, which is all a residual metric needs.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim < 2 or src.shape[-1] != 3:
        raise ValueError(f"src and dst must both have shape (..., N, 3), got {src.shape} and {dst.shape}")
    if src.shape[-2] < 2:
        raise ValueError(f"need at least 2 corresponding points, got {src.shape[-2]}")
    if not (np.all(np.isfinite(src)) and np.all(np.isfinite(dst))):
        raise ValueError("src and dst must be finite")
    n = src.shape[-2]
    mu_src = src.mean(axis=-2)
    mu_dst = dst.mean(axis=-2)
    src_c = src - mu_src[..., None, :]
    dst_c = dst - mu_dst[..., None, :]
    var_src = np.sum(src_c * src_c, axis=(-2, -1)) / n
    # a spread at the level of floating-point rounding of the coordinates is no spread at all
    magnitude = np.max(np.abs(src), axis=(-2, -1))
    if np.any(np.sqrt(var_src) <= 1e-12 * magnitude) or np.any(var_src == 0):
        raise ValueError("degenerate alignment: the source points all coincide")
    cov = np.swapaxes(dst_c, -1, -2) @ src_c / n  # (..., 3, 3) = Σ_xy in Umeyama's notation
    u, sing, vt = np.linalg.svd(cov)
    if strict and np.any(sing[..., 1] <= _RANK_TOL * sing[..., 0]):
        raise ValueError("degenerate alignment: points are collinear (or dst collapses), rotation is not unique")
    sign = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    sign = np.where(sign == 0, 1.0, sign)
    d = np.ones(sing.shape)
    d[..., 2] = sign
    rot = (u * d[..., None, :]) @ vt
    s = np.sum(sing * d, axis=-1) / var_src if with_scale else np.ones(var_src.shape)
    t = mu_dst - s[..., None] * (rot @ mu_src[..., None])[..., 0]
    return s, rot, t


def apply_similarity(s: np.ndarray, rot: np.ndarray, t: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``s R p + t`` for (..., N, 3) points with batched (s, R, t) as returned by :func:`umeyama`."""
    s = np.asarray(s, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    return s[..., None, None] * (p @ np.swapaxes(rot, -1, -2)) + np.asarray(t)[..., None, :]


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred`` (..., J, 3) after the similarity that best maps it onto ``gt`` (per leading index).

    This is the alignment of PA-MPJPE: scale, rotation and translation are removed so
    only the articulated shape error remains.
    """
    s, rot, t = umeyama(pred, gt, with_scale=True)
    return apply_similarity(s, rot, t, pred)

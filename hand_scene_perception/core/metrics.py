"""Evaluation metrics of the reference protocols (ARCHITECTURE.md, Metrics), numpy/scipy only.

Units: 3D inputs are in metres (the product's unit); joint errors are returned in
millimetres (functions named ``*_mm``), trajectory and map errors in metres (``*_m``).
Joint arrays are (..., J, 3) with matching shapes for prediction and ground truth.

Missing data: every function raises ValueError on non-finite input rather than silently
skipping frames, so a benchmark decides explicitly which frames it evaluates (mask them
out before calling).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from .alignment import apply_similarity, procrustes_align, umeyama
from .transforms import check_rigid_matrices, inverse_matrices

M_TO_MM = 1000.0

Alignment = Literal["se3", "sim3", "none"]


def _finite(array: object, name: str) -> np.ndarray:
    out = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} contains non-finite values")
    return out


def _joint_pair(pred: object, gt: object, min_ndim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    p = _finite(pred, "pred")
    g = _finite(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred and gt shapes differ: {p.shape} vs {g.shape}")
    if p.ndim < min_ndim or p.shape[-1] != 3 or p.size == 0:
        lead = "T, " if min_ndim == 3 else "..., "
        raise ValueError(f"joints must have shape ({lead}J, 3) and be non-empty, got {p.shape}")
    return p, g


# ---------------------------------------------------------------------------- per-frame joint errors


def joint_errors_mm(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Euclidean error of every joint, (..., J) in mm, for (..., J, 3) inputs in metres (feeds PCK)."""
    p, g = _joint_pair(pred, gt)
    return np.linalg.norm(p - g, axis=-1) * M_TO_MM


def mpjpe_mm(pred: np.ndarray, gt: np.ndarray) -> float:
    """MPJPE: mean over all frames and joints of ||pred - gt||, in mm (inputs in metres)."""
    return float(joint_errors_mm(pred, gt).mean())


def c_mpjpe_mm(pred_cam: np.ndarray, gt_cam: np.ndarray) -> float:
    """C-MPJPE: absolute MPJPE of joints expressed in the camera (optical) frame, in mm, no alignment."""
    return mpjpe_mm(pred_cam, gt_cam)


def rr_mpjpe_mm(pred: np.ndarray, gt: np.ndarray, root: int = 0) -> float:
    """Root-relative MPJPE in mm: joint ``root`` (0 = wrist) is subtracted from both before MPJPE."""
    p, g = _joint_pair(pred, gt)
    if not -p.shape[-2] <= root < p.shape[-2]:
        raise ValueError(f"root index {root} out of range for {p.shape[-2]} joints")
    return mpjpe_mm(p - p[..., root : root + 1, :], g - g[..., root : root + 1, :])


def pa_mpjpe_mm(pred: np.ndarray, gt: np.ndarray) -> float:
    """PA-MPJPE in mm: MPJPE after a per-frame similarity Procrustes fit of pred onto gt."""
    p, g = _joint_pair(pred, gt)
    return mpjpe_mm(procrustes_align(p, g), g)


def pck_curve(errors_mm: np.ndarray, thresholds_mm: np.ndarray) -> np.ndarray:
    """PCK at each threshold: the fraction of errors ``<=`` the threshold (same units)."""
    e = _finite(errors_mm, "errors_mm").reshape(-1)
    t = _finite(thresholds_mm, "thresholds_mm")
    if e.size == 0:
        raise ValueError("errors_mm is empty")
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"thresholds_mm must be a non-empty 1-D array, got shape {t.shape}")
    return np.mean(e[None, :] <= t[:, None], axis=1)


def auc_pck(errors_mm: np.ndarray, max_mm: float = 50.0, steps: int = 100) -> float:
    """Area under the PCK curve over thresholds ``linspace(0, max_mm, steps)``, normalised to [0, 1].

    Trapezoidal integral of :func:`pck_curve` divided by ``max_mm``: all errors 0 gives 1,
    all errors above ``max_mm`` gives 0. DexYCB reports 0–50 mm, POEM/HGGT 0–20 mm.
    """
    if not max_mm > 0 or steps < 2:
        raise ValueError(f"need max_mm > 0 and steps >= 2, got {max_mm}, {steps}")
    thresholds = np.linspace(0.0, float(max_mm), int(steps))
    pck = pck_curve(errors_mm, thresholds)
    area = np.sum(0.5 * (pck[1:] + pck[:-1]) * np.diff(thresholds))
    return float(area / max_mm)


# ---------------------------------------------------------------------------- world-frame sequences


def _chunked_aligned_mean(pred: object, gt: object, chunk: int, first_two: bool) -> float:
    p, g = _joint_pair(pred, gt, min_ndim=3)
    if p.ndim != 3:
        raise ValueError(f"world joints must have shape (T, J, 3), got {p.shape}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    errors = []
    for start in range(0, p.shape[0], chunk):
        p_c, g_c = p[start : start + chunk], g[start : start + chunk]
        fit = slice(0, 2) if first_two else slice(None)
        s, rot, t = umeyama(p_c[fit].reshape(-1, 3), g_c[fit].reshape(-1, 3), with_scale=True)
        aligned = apply_similarity(s, rot, t, p_c.reshape(-1, 3))
        errors.append(np.linalg.norm(aligned - g_c.reshape(-1, 3), axis=-1))
    return float(np.concatenate(errors).mean() * M_TO_MM)


def w_mpjpe_mm(pred_world: np.ndarray, gt_world: np.ndarray, chunk: int = 100) -> float:
    """W-MPJPE in mm (HaWoR / WHAM / SLAHMR protocol) for (T, J, 3) world joints in metres.

    The sequence is cut into consecutive chunks of ``chunk`` frames (the last chunk keeps
    whatever frames remain, even one); per chunk a similarity (Umeyama with scale) is fitted
    from the prediction to the ground truth on the joints of the chunk's first two frames
    only and applied to the whole chunk. The result is the mean joint error over all
    frames, so every frame weighs the same whatever its chunk. Drift after the start of a
    chunk is therefore penalised. HaWoR reports chunks of 100 and 30 frames.
    """
    return _chunked_aligned_mean(pred_world, gt_world, chunk, first_two=True)


def wa_mpjpe_mm(pred_world: np.ndarray, gt_world: np.ndarray, chunk: int = 100) -> float:
    """WA-MPJPE in mm: as :func:`w_mpjpe_mm` but the similarity is fitted on all of the chunk's joints."""
    return _chunked_aligned_mean(pred_world, gt_world, chunk, first_two=False)


def acc_err_mm(pred: np.ndarray, gt: np.ndarray, fps: float | None = None) -> float:
    """Acceleration error: mean over frames and joints of ||a_pred - a_gt||.

    a is the second difference x[t-1] - 2 x[t] + x[t+1] of (T, ..., 3) positions in metres
    (T >= 3), so the result is in mm/frame²; with ``fps`` it is multiplied by fps² (mm/s²).
    """
    p, g = _joint_pair(pred, gt)
    if p.shape[0] < 3:
        raise ValueError(f"acceleration error needs at least 3 frames, got {p.shape[0]}")
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    diff = p - g
    acc = diff[:-2] - 2.0 * diff[1:-1] + diff[2:]
    value = float(np.linalg.norm(acc, axis=-1).mean() * M_TO_MM)
    return value * float(fps) ** 2 if fps is not None else value


# ---------------------------------------------------------------------------- camera trajectories


def _pose_pair(pred_poses: object, gt_poses: object) -> tuple[np.ndarray, np.ndarray]:
    p = check_rigid_matrices(pred_poses, "pred_poses", tol=1e-5)
    g = check_rigid_matrices(gt_poses, "gt_poses", tol=1e-5)
    if p.shape != g.shape or p.ndim != 3 or p.shape[0] == 0:
        raise ValueError(f"poses must both have shape (T, 4, 4), got {p.shape} and {g.shape}")
    return p, g


def align_trajectory(pred_poses: np.ndarray, gt_poses: np.ndarray, align: Alignment = "se3") -> np.ndarray:
    """``pred_poses`` (T, 4, 4) moved by the transform that best fits their positions to gt's.

    Poses are camera-to-world (T_world_camera), position = translation column. The fit is
    Umeyama on positions: rigid for 'se3', with scale for 'sim3' (monocular methods),
    none for 'none'. Each pose becomes [R_a R_i | s R_a t_i + t_a]. Collinear trajectories
    are accepted (the residual is still minimal, only the rotation about the line is free).
    """
    p, g = _pose_pair(pred_poses, gt_poses)
    if align == "none":
        return p.copy()
    if align not in ("se3", "sim3"):
        raise ValueError(f"align must be 'se3', 'sim3' or 'none', got {align!r}")
    if p.shape[0] < 2:
        raise ValueError("trajectory alignment needs at least 2 poses")
    s, rot, t = umeyama(p[:, :3, 3], g[:, :3, 3], with_scale=align == "sim3", strict=False)
    out = p.copy()
    out[:, :3, :3] = rot @ p[:, :3, :3]
    out[:, :3, 3] = s * p[:, :3, 3] @ rot.T + t
    return out


def ate_m(pred_poses: np.ndarray, gt_poses: np.ndarray, align: Alignment = "se3") -> float:
    """Absolute trajectory error in metres: RMSE of camera-position error after alignment.

    sqrt(mean_i ||t_gt_i - t_aligned_i||²) with the alignment of :func:`align_trajectory`.
    """
    aligned = align_trajectory(pred_poses, gt_poses, align)
    g = np.asarray(gt_poses, dtype=np.float64)
    return float(np.sqrt(np.mean(np.sum((aligned[:, :3, 3] - g[:, :3, 3]) ** 2, axis=-1))))


def rpe(pred_poses: np.ndarray, gt_poses: np.ndarray, delta: int = 1, align: Alignment = "none") -> tuple[float, float]:
    """Relative pose error over frame pairs (i, i + delta): (translation RMSE in m, rotation RMSE in degrees).

    E_i = (G_i⁻¹ G_{i+δ})⁻¹ (P_i⁻¹ P_{i+δ}) for camera-to-world poses; the translation error
    is ||trans(E_i)||, the rotation error the angle of rot(E_i); both are reported as RMSE
    over i (TUM RGB-D / evo convention). A rigid alignment cannot change RPE; 'sim3' matters
    for monocular predictions because it rescales their translations.
    """
    p, g = _pose_pair(pred_poses, gt_poses)
    if delta < 1 or delta >= p.shape[0]:
        raise ValueError(f"delta must be in [1, T-1] = [1, {p.shape[0] - 1}], got {delta}")
    p = align_trajectory(p, g, align)
    rel_p = inverse_matrices(p[:-delta]) @ p[delta:]
    rel_g = inverse_matrices(g[:-delta]) @ g[delta:]
    err = inverse_matrices(rel_g) @ rel_p
    trans = np.linalg.norm(err[:, :3, 3], axis=-1)
    angles = np.degrees(Rotation.from_matrix(err[:, :3, :3]).magnitude())
    return float(np.sqrt(np.mean(trans**2))), float(np.sqrt(np.mean(angles**2)))


# ---------------------------------------------------------------------------- maps


def _nn_mean(query: np.ndarray, reference: np.ndarray) -> float:
    distances, _ = cKDTree(reference).query(query, k=1)
    return float(np.mean(distances))


def _cloud(points: object, name: str) -> np.ndarray:
    c = _finite(points, name)
    if c.ndim != 2 or c.shape[1] != 3 or c.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, 3) with N >= 1, got {c.shape}")
    return c


def accuracy_m(pred_points: np.ndarray, gt_points: np.ndarray) -> float:
    """Accuracy in metres: mean distance from each predicted point to its nearest ground-truth point."""
    return _nn_mean(_cloud(pred_points, "pred_points"), _cloud(gt_points, "gt_points"))


def completeness_m(pred_points: np.ndarray, gt_points: np.ndarray) -> float:
    """Completeness in metres: mean distance from each ground-truth point to its nearest predicted point."""
    return _nn_mean(_cloud(gt_points, "gt_points"), _cloud(pred_points, "pred_points"))


def chamfer_m(points_a: np.ndarray, points_b: np.ndarray) -> float:
    """Symmetric chamfer distance in metres: the average of the two directions' mean NN distances.

    (mean_a min_b ||a - b|| + mean_b min_a ||a - b||) / 2, i.e. (accuracy + completeness) / 2,
    with plain (not squared) distances.
    """
    return 0.5 * (accuracy_m(points_a, points_b) + completeness_m(points_a, points_b))


# ---------------------------------------------------------------------------- images

_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5  # 11x11 window


def _image_pair(
    img_pred: object, img_gt: object, mask: object, data_range: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    a = np.asarray(img_pred)
    b = np.asarray(img_gt)
    m = np.asarray(mask)
    if a.shape != b.shape or a.ndim not in (2, 3):
        raise ValueError(f"images must share shape (H, W) or (H, W, C), got {a.shape} and {b.shape}")
    if m.shape != a.shape[:2]:
        raise ValueError(f"mask must have shape {a.shape[:2]}, got {m.shape}")
    if data_range is None:
        data_range = 255.0 if np.issubdtype(a.dtype, np.integer) else 1.0
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    m = m.astype(bool)
    if not m.any():
        raise ValueError("mask selects no pixels")
    a = _finite(a, "img_pred")
    b = _finite(b, "img_gt")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    return a, b, m, float(data_range)


def psnr_masked(img_pred: np.ndarray, img_gt: np.ndarray, mask: np.ndarray, data_range: float | None = None) -> float:
    """PSNR in dB over the mask's pixels: 10 log10(L² / MSE), MSE over masked pixels and all channels.

    ``L`` (data_range) defaults to 255 for integer images and 1.0 for float images. Identical
    images give +inf.
    """
    a, b, m, peak = _image_pair(img_pred, img_gt, mask, data_range)
    mse = float(np.mean((a[m] - b[m]) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(peak * peak / mse))


def ssim_bbox(img_pred: np.ndarray, img_gt: np.ndarray, mask: np.ndarray, data_range: float | None = None) -> float:
    """SSIM (Wang et al. 2004) on the crop to the mask's bounding box, averaged over channels.

    Gaussian 11x11 window (σ = 1.5), K1 = 0.01, K2 = 0.03, population statistics, reflect
    padding, and the mean taken over the crop minus a 5-pixel border (where the window fits,
    as scikit-image does). The bounding box must therefore be at least 11x11 pixels.
    ``data_range`` as in :func:`psnr_masked`.
    """
    a, b, m, peak = _image_pair(img_pred, img_gt, mask, data_range)
    rows = np.flatnonzero(m.any(axis=1))
    cols = np.flatnonzero(m.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    a, b = a[box], b[box]
    win = 2 * _SSIM_RADIUS + 1
    if a.shape[0] < win or a.shape[1] < win:
        raise ValueError(f"mask bounding box {a.shape[:2]} is smaller than the {win}x{win} SSIM window")
    c1 = (_SSIM_K1 * peak) ** 2
    c2 = (_SSIM_K2 * peak) ** 2
    truncate = _SSIM_RADIUS / _SSIM_SIGMA

    def blur(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, sigma=_SSIM_SIGMA, truncate=truncate, mode="reflect")

    inner = (slice(_SSIM_RADIUS, -_SSIM_RADIUS), slice(_SSIM_RADIUS, -_SSIM_RADIUS))
    values = []
    for ch in range(a.shape[2]):
        x, y = a[..., ch], b[..., ch]
        mu_x, mu_y = blur(x), blur(y)
        var_x = blur(x * x) - mu_x * mu_x
        var_y = blur(y * y) - mu_y * mu_y
        cov = blur(x * y) - mu_x * mu_y
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        values.append(ssim_map[inner].mean())
    return float(np.mean(values))

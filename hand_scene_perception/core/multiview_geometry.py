"""Geometry of a rig of pinhole cameras that see the same points: projection, triangulation, robust rotation
averaging and bundle adjustment.

Conventions: a rig of V cameras is ``intrinsics`` (V, 4) = fx, fy, cx, cy in pixels of undistorted images
and ``T_cam_ref`` (V, 4, 4), the rigid map from the reference frame into each camera's optical frame (camera 0
is usually the reference, T = identity). Observations are (V, N, 2) pixels with NaN where a camera did not see
a point. Lens distortion is removed before (core/camera.py ``undistort_points``): everything here is pinhole.

Bundle adjustment runs in pycolmap (COLMAP's Ceres-based adjuster, Schur complement, Huber loss). A static
camera of the rig is one COLMAP image whose 2D points are all its joint observations over the kept frames; every
joint of every kept hand is one 3D point. scipy's ``least_squares`` was measured first on the same problem
(4 cameras, 840 points, 2 px noise, a 3 deg / 10 % start): its sparse trust-region solver had not converged
after 200 evaluations (4 s; rotations still 1.1-1.6 deg off, focal lengths 6-14 %), where pycolmap converges in
0.18 s to 0.06-0.19 deg and under 1.5 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pycolmap
from scipy.spatial.transform import Rotation

_MIN_DEPTH_M = 1e-3
# A point whose viewing rays meet at a smaller angle is not triangulated: its depth is not determined by the pixels
# (identical or co-located cameras give 0; 2 px of noise at f = 500 px is 0.23 deg, a 25 % depth error at 1 deg).
MIN_PARALLAX_DEG = 1.0
# A Gauss-Newton normal matrix whose smallest/largest eigenvalue ratio is below this does not determine its point.
_MIN_NORMAL_CONDITION = 1e-9
# Ceres logs a warning each time a damped step fails and it retries with more damping (routine, not a problem);
# keep COLMAP's log to errors so these do not flood the node's console.
pycolmap.logging.minloglevel = max(pycolmap.logging.minloglevel, int(pycolmap.logging.Level.ERROR))


def project_points(intrinsics: np.ndarray, T_cam_ref: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(V, N, 2) pixels of reference-frame points (N, 3) in every camera; NaN behind a camera."""
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    cam = np.einsum("vij,nj->vni", T_cam_ref[:, :3, :3], points) + T_cam_ref[:, None, :3, 3]
    z = cam[..., 2]
    safe = np.where(z > _MIN_DEPTH_M, z, np.nan)
    u = intrinsics[:, None, 0] * cam[..., 0] / safe + intrinsics[:, None, 2]
    v = intrinsics[:, None, 1] * cam[..., 1] / safe + intrinsics[:, None, 3]
    return np.stack([u, v], axis=-1)


def reprojection_errors(
    intrinsics: np.ndarray, T_cam_ref: np.ndarray, points: np.ndarray, pixels: np.ndarray
) -> np.ndarray:
    """(V, N) pixel distances between observations and projected points; NaN where either is missing."""
    return np.linalg.norm(project_points(intrinsics, T_cam_ref, points) - pixels, axis=-1)


def median_finite(values: np.ndarray) -> float:
    """Median of the finite values (NaN marks a joint a camera did not see), NaN when there are none."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(np.median(finite)) if finite.size else float("nan")


def triangulate_points(
    intrinsics: np.ndarray,
    T_cam_ref: np.ndarray,
    pixels: np.ndarray,
    *,
    refine_iterations: int = 2,
    min_parallax_deg: float = MIN_PARALLAX_DEG,
) -> np.ndarray:
    """(N, 3) reference-frame points from (V, N, 2) observations; NaN for points the observations do not
    determine: seen by fewer than 2 cameras, or whose rays meet at less than ``min_parallax_deg`` (identical or
    co-located cameras: the linear system is rank-deficient there, and any depth would fit the pixels).

    Linear triangulation (DLT on normalised coordinates, batched SVD) followed by a few Gauss-Newton steps on
    the pixel reprojection error, which the DLT's algebraic error only approximates for far or oblique views.
    """
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    pixels = np.asarray(pixels, dtype=np.float64)
    seen = np.all(np.isfinite(pixels), axis=-1)  # (V, N)
    xn = (pixels[..., 0] - intrinsics[:, None, 2]) / intrinsics[:, None, 0]
    yn = (pixels[..., 1] - intrinsics[:, None, 3]) / intrinsics[:, None, 1]
    seen &= ray_parallax_deg(T_cam_ref, xn, yn, seen) >= min_parallax_deg
    proj = T_cam_ref[:, :3, :]  # (V, 3, 4)
    rows_x = xn[..., None] * proj[:, None, 2] - proj[:, None, 0]
    rows_y = yn[..., None] * proj[:, None, 2] - proj[:, None, 1]
    design = np.concatenate([rows_x, rows_y], axis=0)  # (2V, N, 4)
    design = np.where(np.concatenate([seen, seen])[..., None], design, 0.0)
    design = np.nan_to_num(design).transpose(1, 0, 2)
    design /= np.maximum(np.linalg.norm(design, axis=-1, keepdims=True), 1e-12)
    _, _, vt = np.linalg.svd(design)
    homogeneous = vt[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        points = homogeneous[:, :3] / homogeneous[:, 3:]
    points[seen.sum(axis=0) < 2] = np.nan
    for _ in range(refine_iterations):
        points = _gauss_newton_step(intrinsics, T_cam_ref, pixels, seen, points)
    return points


def ray_parallax_deg(T_cam_ref: np.ndarray, xn: np.ndarray, yn: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(N,) largest angle between the viewing rays of each point over the cameras that see it (0 when fewer than
    two do); xn, yn (V, N) normalised image coordinates, seen (V, N)."""
    rays = np.stack([xn, yn, np.ones_like(xn)], axis=-1)
    rays = np.einsum("vji,vnj->vni", np.nan_to_num(T_cam_ref[:, :3, :3]), np.nan_to_num(rays))  # reference frame
    rays /= np.maximum(np.linalg.norm(rays, axis=-1, keepdims=True), 1e-12)
    cosines = np.einsum("vni,wni->nvw", rays, rays)
    pairs = seen.T[:, :, None] & seen.T[:, None, :]
    smallest = np.where(pairs, cosines, 1.0).min(axis=(1, 2))
    return np.degrees(np.arccos(np.clip(smallest, -1.0, 1.0)))


def _gauss_newton_step(
    intrinsics: np.ndarray, T_cam_ref: np.ndarray, pixels: np.ndarray, seen: np.ndarray, points: np.ndarray
) -> np.ndarray:
    """One batched Gauss-Newton update of each point's pixel reprojection error."""
    rot, trans = T_cam_ref[:, :3, :3], T_cam_ref[:, :3, 3]
    cam = np.einsum("vij,nj->vni", rot, points) + trans[:, None]
    z = cam[..., 2]
    ok = seen & (z > _MIN_DEPTH_M) & np.isfinite(z)
    z = np.where(ok, z, 1.0)
    fx, fy = intrinsics[:, None, 0], intrinsics[:, None, 1]
    residual = project_points(intrinsics, T_cam_ref, points) - pixels
    # d(u, v)/d(camera point), then through the rotation to the reference-frame point: (V, N, 2, 3)
    d_proj = np.zeros(cam.shape[:2] + (2, 3))
    d_proj[..., 0, 0] = fx / z
    d_proj[..., 0, 2] = -fx * cam[..., 0] / z**2
    d_proj[..., 1, 1] = fy / z
    d_proj[..., 1, 2] = -fy * cam[..., 1] / z**2
    jac = np.where(ok[..., None, None], np.nan_to_num(d_proj @ rot[:, None]), 0.0)
    residual = np.where(ok[..., None], np.nan_to_num(residual), 0.0)
    normal = np.einsum("vnki,vnkj->nij", jac, jac)
    gradient = np.einsum("vnki,vnk->ni", jac, residual)
    eigenvalues = np.linalg.eigvalsh(normal)  # ascending; symmetric positive semi-definite
    determined = eigenvalues[:, 0] > _MIN_NORMAL_CONDITION * np.maximum(eigenvalues[:, -1], 1e-300)
    valid = np.isfinite(points).all(axis=1) & determined
    step = np.zeros_like(points)
    step[valid] = np.linalg.solve(normal[valid], gradient[valid][..., None])[..., 0]
    # a point whose reprojection errors do not pin it (e.g. behind one of its two cameras) is not a triangulation
    return np.where(determined[:, None], points - step, np.nan)


def robust_rotation_mean(
    rotations: np.ndarray, *, max_outlier_deg: float = 15.0, iterations: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Chordal L2 mean of (N, 3, 3) rotations after rejecting outliers; returns (mean, inlier mask).

    Each pass keeps the rotations within max(3 x median angle, 1 deg), capped at ``max_outlier_deg``, of the
    current mean: a frame where one view's hand placement flipped or matched the wrong hand cannot pull it.
    The first estimate is the sample with the most others within ``max_outlier_deg`` (a consensus start, so
    up to half the samples may be wrong).
    """
    rotations = Rotation.from_matrix(np.asarray(rotations, dtype=np.float64))
    count = len(rotations)
    if count == 0:
        raise ValueError("robust_rotation_mean needs at least one rotation")
    quats = rotations.as_quat()
    cos_half = np.abs(quats @ quats.T).clip(0.0, 1.0)
    agree = (2 * np.degrees(np.arccos(cos_half)) <= max_outlier_deg).sum(axis=1)
    mean = rotations[int(np.argmax(agree))]
    inliers = np.ones(count, dtype=bool)
    for _ in range(iterations):
        angles = np.degrees((mean.inv() * rotations).magnitude())
        gate = min(max(3.0 * float(np.median(angles)), 1.0), max_outlier_deg)
        inliers = angles <= gate
        if not inliers.any():
            inliers = angles <= angles.min()
        mean = rotations[inliers].mean()
    return mean.as_matrix(), inliers


@dataclass(frozen=True)
class BundleResult:
    """Refined rig and points. rms_px: (V,) RMS reprojection error per camera over its observations (NaN for a
    camera with none); observations: (V,) observations per camera; used: (V, N) the observations adjusted."""

    intrinsics: np.ndarray
    T_cam_ref: np.ndarray
    points: np.ndarray
    rms_px: np.ndarray
    observations: np.ndarray
    used: np.ndarray
    converged: bool


def bundle_adjust(
    intrinsics: np.ndarray,
    T_cam_ref: np.ndarray,
    points: np.ndarray,
    pixels: np.ndarray,
    image_sizes: np.ndarray,
    *,
    optimize_focal: np.ndarray,
    huber_px: float = 3.0,
    outlier_px: float = np.inf,
    max_iterations: int = 100,
) -> BundleResult:
    """Jointly refine camera poses, unknown focal lengths (square pixels, fixed principal point) and points.

    intrinsics (V, 4), T_cam_ref (V, 4, 4): the starting rig, camera 0 the reference (held fixed); points (N, 3)
    starting points (NaN rows left out); pixels (V, N, 2) observations (NaN = not seen); image_sizes (V, 2)
    width, height. optimize_focal (V,) bool: cameras whose focal length is unknown (others keep theirs).
    Observations further than ``outlier_px`` from their starting projection are left out, and points then seen
    by fewer than two cameras. The rig's scale is a gauge freedom: the result keeps the starting mean distance of
    the cameras from the reference (callers rescale from a metric cue, e.g. the hand's size).
    """
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    T_cam_ref = np.asarray(T_cam_ref, dtype=np.float64)
    pixels = np.asarray(pixels, dtype=np.float64)
    num_views = len(intrinsics)
    errors = reprojection_errors(intrinsics, T_cam_ref, points, pixels)
    used = np.isfinite(errors) & (errors <= outlier_px)
    used &= used.sum(axis=0) >= 2
    reconstruction = pycolmap.Reconstruction()
    for view in range(num_views):
        fx, fy, cx, cy = intrinsics[view]
        # unknown focal: one focal length (square pixels); known intrinsics keep fx and fy as given
        model, params = ("SIMPLE_PINHOLE", [fx, cx, cy]) if optimize_focal[view] else ("PINHOLE", [fx, fy, cx, cy])
        camera = pycolmap.Camera(
            model=model,
            width=int(image_sizes[view][0]),
            height=int(image_sizes[view][1]),
            params=params,
            camera_id=view + 1,
        )
        reconstruction.add_camera_with_trivial_rig(camera)
        keypoints = np.where(used[view][:, None], pixels[view], 0.0)
        image = pycolmap.Image(name=f"view{view}", keypoints=keypoints, camera_id=view + 1, image_id=view + 1)
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(T_cam_ref[view, :3, :3]), T_cam_ref[view, :3, 3])
        reconstruction.add_image_with_trivial_frame(image, pose)
    point_ids = {}
    for index in np.flatnonzero(used.any(axis=0)):
        track = pycolmap.Track([pycolmap.TrackElement(int(v) + 1, int(index)) for v in np.flatnonzero(used[:, index])])
        point_ids[int(index)] = reconstruction.add_point3D(points[index], track)
    config = pycolmap.BundleAdjustmentConfig()
    for view in range(num_views):
        config.add_image(view + 1)
        if not optimize_focal[view]:
            config.set_constant_cam_intrinsics(view + 1)
    config.set_constant_rig_from_world_pose(1)
    config.fix_gauge(pycolmap.BundleAdjustmentGauge.TWO_CAMS_FROM_WORLD)
    options = pycolmap.BundleAdjustmentOptions()
    options.refine_principal_point = False
    options.refine_extra_params = False
    options.refine_focal_length = True
    options.print_summary = False
    options.ceres.loss_function_type = pycolmap.LossFunctionType.HUBER
    options.ceres.loss_function_scale = float(huber_px)
    options.ceres.solver_options.max_num_iterations = int(max_iterations)
    options.ceres.solver_options.num_threads = 1
    summary = pycolmap.create_default_bundle_adjuster(options, config, reconstruction).solve()

    rig = np.tile(np.eye(4), (num_views, 1, 1))
    refined_intrinsics = intrinsics.copy()
    for view in range(num_views):
        rig[view, :3, :4] = reconstruction.image(view + 1).cam_from_world().matrix()
        if optimize_focal[view]:
            refined_intrinsics[view, :2] = reconstruction.camera(view + 1).params[0]
    refined_points = np.full_like(np.asarray(points, dtype=np.float64), np.nan)
    for index, point_id in point_ids.items():
        refined_points[index] = reconstruction.point3D(point_id).xyz
    rig, refined_points = _keep_scale(T_cam_ref, rig, refined_points)
    errors = np.where(used, reprojection_errors(refined_intrinsics, rig, refined_points, pixels), np.nan)
    counts = used.sum(axis=1)
    rms = np.sqrt(np.nansum(errors**2, axis=1) / np.maximum(counts, 1))
    return BundleResult(
        intrinsics=refined_intrinsics,
        T_cam_ref=rig,
        points=refined_points,
        rms_px=np.where(counts > 0, rms, np.nan),
        observations=counts,
        used=used,
        converged=summary.termination_type == pycolmap.BundleAdjustmentTerminationType.CONVERGENCE,
    )


def camera_centres(T_cam_ref: np.ndarray) -> np.ndarray:
    """(V, 3) optical centres of the cameras in the reference frame."""
    return -np.einsum("vji,vj->vi", T_cam_ref[:, :3, :3], T_cam_ref[:, :3, 3])


def scale_rig(T_cam_ref: np.ndarray, points: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """The same rig and points ``factor`` times larger about the reference origin (a gauge change)."""
    rig = np.array(T_cam_ref, dtype=np.float64, copy=True)
    rig[:, :3, 3] *= factor
    return rig, np.asarray(points, dtype=np.float64) * factor


def _keep_scale(start: np.ndarray, rig: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undo the adjuster's scale drift: the mean camera distance from the reference origin as it started."""
    before = np.linalg.norm(camera_centres(start)[1:], axis=1).mean() if len(start) > 1 else 0.0
    after = np.linalg.norm(camera_centres(rig)[1:], axis=1).mean() if len(rig) > 1 else 0.0
    if before > 0 and after > 0:
        return scale_rig(rig, points, before / after)
    return rig, points

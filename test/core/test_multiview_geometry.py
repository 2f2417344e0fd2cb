"""Rig geometry: projection, triangulation, robust rotation averaging, bundle adjustment (pycolmap)."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.multiview_geometry import (
    bundle_adjust,
    camera_centres,
    project_points,
    reprojection_errors,
    robust_rotation_mean,
    triangulate_points,
)
from hand_scene_perception.core.raster import look_at


def make_rig(rng: np.random.Generator, views: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cameras around the world origin looking at it, camera 0 the reference: (intrinsics, T_cam_ref, T_ref_world)."""
    world_to_cam = []
    for k in range(views):
        azimuth = 2 * np.pi * k / views + rng.uniform(-0.3, 0.3)
        elevation = np.radians(rng.uniform(15, 60))
        eye = rng.uniform(0.45, 0.9) * np.array(
            [np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation), np.sin(elevation)]
        )
        world_to_cam.append(look_at(eye, rng.normal(0, 0.02, 3), up=(0.0, 0.0, 1.0)))
    world_to_cam = np.array(world_to_cam)
    T_cam_ref = world_to_cam @ np.linalg.inv(world_to_cam[0])
    focal = 0.5 * 640 / np.tan(np.radians(rng.uniform(50, 85, views)) / 2)
    intrinsics = np.stack([focal, focal, np.full(views, 319.5), np.full(views, 239.5)], axis=1)
    return intrinsics, T_cam_ref, world_to_cam[0]


def points_in_reference(rng: np.random.Generator, T_ref_world: np.ndarray, count: int, half: float = 0.12):
    """Points in a box around the cameras' common target (the world origin), in the reference frame."""
    world = rng.uniform(-half, half, (count, 3))
    return world @ T_ref_world[:3, :3].T + T_ref_world[:3, 3]


def rotation_errors_deg(estimated: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.degrees(Rotation.from_matrix(estimated[:, :3, :3] @ np.swapaxes(truth[:, :3, :3], 1, 2)).magnitude())


def test_triangulation_inverts_projection_and_needs_two_views():
    rng = np.random.default_rng(0)
    intrinsics, rig, ref_from_world = make_rig(rng)
    points = points_in_reference(rng, ref_from_world, 50, half=0.1)
    pixels = project_points(intrinsics, rig, points)
    pixels[1:, 0] = np.nan  # point 0 seen by camera 0 only
    triangulated = triangulate_points(intrinsics, rig, pixels)
    assert np.all(np.isnan(triangulated[0]))
    np.testing.assert_allclose(triangulated[1:], points[1:], atol=1e-7)
    errors = reprojection_errors(intrinsics, rig, triangulated, pixels)
    assert np.nanmax(errors) < 1e-6


def test_triangulation_refinement_lowers_reprojection_error_with_noise():
    rng = np.random.default_rng(1)
    intrinsics, rig, ref_from_world = make_rig(rng)
    points = points_in_reference(rng, ref_from_world, 200)
    pixels = project_points(intrinsics, rig, points) + rng.normal(0, 2.0, (4, 200, 2))
    linear = triangulate_points(intrinsics, rig, pixels, refine_iterations=0)
    refined = triangulate_points(intrinsics, rig, pixels)
    linear_error = np.nanmean(reprojection_errors(intrinsics, rig, linear, pixels) ** 2)
    refined_error = np.nanmean(reprojection_errors(intrinsics, rig, refined, pixels) ** 2)
    assert refined_error <= linear_error
    assert np.mean(np.linalg.norm(refined - points, axis=1)) < 0.003


def test_robust_rotation_mean_ignores_a_third_of_outliers():
    rng = np.random.default_rng(2)
    truth = Rotation.from_rotvec([0.3, -0.5, 1.0])
    good = truth * Rotation.from_rotvec(rng.normal(0, np.radians(1.0), (40, 3)))
    bad = Rotation.random(20, random_state=3)
    samples = np.concatenate([good.as_matrix(), bad.as_matrix()])
    mean, inliers = robust_rotation_mean(samples)
    error = np.degrees((Rotation.from_matrix(mean) * truth.inv()).magnitude())
    assert error < 0.5
    assert inliers[:40].mean() > 0.9
    assert inliers[40:].mean() < 0.1
    with pytest.raises(ValueError, match="at least one"):
        robust_rotation_mean(np.zeros((0, 3, 3)))


def test_bundle_adjustment_recovers_poses_and_unknown_focal_lengths():
    rng = np.random.default_rng(4)
    intrinsics, rig, ref_from_world = make_rig(rng)
    points = points_in_reference(rng, ref_from_world, 840)
    pixels = project_points(intrinsics, rig, points) + rng.normal(0, 2.0, (4, 840, 2))
    start_rig = rig.copy()
    for k in range(1, 4):
        start_rig[k, :3, :3] = Rotation.from_rotvec(rng.normal(0, 0.05, 3)).as_matrix() @ rig[k, :3, :3]
        start_rig[k, :3, 3] = rig[k, :3, 3] * 1.1 + rng.normal(0, 0.03, 3)
    start_intrinsics = intrinsics.copy()
    start_intrinsics[:, :2] = 0.5 * 640 / np.tan(np.radians(65) / 2)
    start_intrinsics[0] = intrinsics[0]  # camera 0's focal length is known (CameraInfo)
    start_points = triangulate_points(start_intrinsics, start_rig, pixels)
    sizes = np.tile([640, 480], (4, 1))
    before = rotation_errors_deg(start_rig, rig)
    result = bundle_adjust(
        start_intrinsics, start_rig, start_points, pixels, sizes, optimize_focal=np.array([False, True, True, True])
    )
    assert result.converged
    after = rotation_errors_deg(result.T_cam_ref, rig)
    assert after[0] == pytest.approx(0.0, abs=1e-9)  # the reference stays put
    assert after.max() < 0.5 < before.max()
    assert result.intrinsics[0, 0] == intrinsics[0, 0]  # known focal length untouched
    # within a few percent: a wide-angle camera that sees the points small cannot pin its focal length tighter
    # at 2 px noise (started from the truth, the adjustment lands on the same optimum)
    np.testing.assert_allclose(result.intrinsics[1:, 0], intrinsics[1:, 0], rtol=0.07)
    assert (
        np.abs(result.intrinsics[1:, 0] / intrinsics[1:, 0] - 1).max()
        < np.abs(start_intrinsics[1:, 0] / intrinsics[1:, 0] - 1).max()
    )
    assert np.all(result.rms_px < 3.5)
    assert np.all(result.observations == 840)
    # the scale gauge keeps the starting mean camera distance
    start_spread = np.linalg.norm(camera_centres(start_rig)[1:], axis=1).mean()
    assert np.linalg.norm(camera_centres(result.T_cam_ref)[1:], axis=1).mean() == pytest.approx(start_spread)


def test_bundle_adjustment_leaves_out_observations_beyond_the_outlier_gate():
    rng = np.random.default_rng(5)
    intrinsics, rig, ref_from_world = make_rig(rng)
    points = points_in_reference(rng, ref_from_world, 300)
    pixels = project_points(intrinsics, rig, points) + rng.normal(0, 1.0, (4, 300, 2))
    pixels[2, :30] += 80.0  # camera 2 matched the wrong hand in 30 observations
    start = triangulate_points(intrinsics, rig, pixels)
    result = bundle_adjust(
        intrinsics, rig, start, pixels, np.tile([640, 480], (4, 1)), optimize_focal=np.zeros(4, bool), outlier_px=30.0
    )
    assert not result.used[2, :30].any()
    assert result.observations[2] == 270
    assert rotation_errors_deg(result.T_cam_ref, rig).max() < 0.3


def test_triangulation_leaves_points_without_parallax_undetermined():
    """Identical or co-located cameras (the same image on two cameras, cameras 1 mm apart) make the linear system
    rank-deficient: those points are NaN, not an exception or an arbitrary depth; a third distinct view fixes them."""
    rng = np.random.default_rng(2)
    intrinsics, rig, ref_from_world = make_rig(rng, views=2)
    points = points_in_reference(rng, ref_from_world, 30)
    near = rig[[0, 0]].copy()
    near[1, 0, 3] -= 0.001  # the second camera 1 mm to the side of the first
    for pair in (rig[[0, 0]], near):
        pixels = project_points(intrinsics[[0, 0]], pair, points) + rng.normal(0, 0.5, (2, 30, 2))
        assert np.isnan(triangulate_points(intrinsics[[0, 0]], pair, pixels)).all()
    same = project_points(intrinsics[[0, 0]], rig[[0, 0]], points)  # exactly the same pixels twice
    assert np.isnan(triangulate_points(intrinsics[[0, 0]], rig[[0, 0]], same)).all()
    three = np.concatenate([rig[[0, 0]], rig[[1]]])
    pixels = project_points(intrinsics[[0, 0, 1]], three, points)
    np.testing.assert_allclose(triangulate_points(intrinsics[[0, 0, 1]], three, pixels), points, atol=1e-7)

"""Metric hand placement: exact on noiseless projections, bounded under noise, robust depth refinement."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.core.fitting import PALM_JOINTS, HandFitter
from hand_scene_perception.core.hand_model import create_hand_model
from hand_scene_perception.core.hand_model.wrist_frame import wrist_frame_from_joints
from hand_scene_perception.core.placement import (
    DEPTH_JOINTS,
    HAND_SIZE_SIGMA,
    LIFT_PIP_JOINTS,
    MEAN_PALM_SIZE_M,
    lift_joints_to_depth,
    palm_size_m,
    place_hand,
    sample_depth,
)
from hand_scene_perception.core.raster import render_mesh

CAMERA = PinholeCamera.from_intrinsics(600.0, 610.0, 322.0, 238.0, 640, 480)
ROTATION = Rotation.from_rotvec([0.3, -0.4, 0.2]).as_matrix()
TRANSLATION = np.array([0.05, -0.03, 0.45])


@pytest.fixture(scope="module")
def local_joints() -> np.ndarray:
    """The open hand model's flat right hand, centred on its joints' mean (like MediaPipe world landmarks)."""
    joints = create_hand_model("open").forward(np.zeros((16, 3)), side="right").joints[0].astype(np.float64)
    return joints - joints.mean(axis=0)


def test_recovers_rotation_and_translation_exactly(local_joints):
    truth = local_joints @ ROTATION.T + TRANSLATION
    placed = place_hand(CAMERA, CAMERA.project(truth), local_joints, "right")
    np.testing.assert_allclose(placed.joints_cam_m, truth, atol=1e-9)
    np.testing.assert_allclose(placed.rotation, ROTATION, atol=1e-9)
    np.testing.assert_allclose(placed.translation, TRANSLATION, atol=1e-9)
    np.testing.assert_allclose(placed.wrist_pose, wrist_frame_from_joints(truth, "right"), atol=1e-8)
    assert placed.reprojection_error_px < 1e-6
    assert placed.scale == 1.0 and placed.depth_inliers == 0


def test_closed_form_translation_is_exact_for_camera_aligned_joints(local_joints):
    truth = local_joints + TRANSLATION
    placed = place_hand(CAMERA, CAMERA.project(truth), local_joints, "left", refine_rotation=False)
    np.testing.assert_allclose(placed.joints_cam_m, truth, atol=1e-12)
    np.testing.assert_allclose(placed.rotation, np.eye(3))


def test_exact_through_lens_distortion(local_joints):
    camera = PinholeCamera.from_intrinsics(600.0, 600.0, 320.0, 240.0, 640, 480, d=(-0.25, 0.08, 0.001, -0.0005, 0.0))
    truth = local_joints @ ROTATION.T + np.array([-0.12, 0.08, 0.5])
    placed = place_hand(camera, camera.project(truth), local_joints, "right")
    np.testing.assert_allclose(placed.joints_cam_m, truth, atol=1e-8)


def test_pixel_noise_gives_bounded_error(local_joints):
    # measured: 2 px noise at 0.45 m, f = 600 px -> 3.2 mm mean joint error over 100 trials (9 mm worst trial)
    truth = local_joints @ ROTATION.T + TRANSLATION
    pixels = CAMERA.project(truth)
    rng = np.random.default_rng(7)
    errors = [
        np.linalg.norm(place_hand(CAMERA, pixels + rng.normal(0, 2.0, pixels.shape), local_joints, "right")
                       .joints_cam_m - truth, axis=1).mean()
        for _ in range(40)
    ]  # fmt: skip
    assert np.mean(errors) < 0.006
    assert np.max(errors) < 0.015


def test_huber_weights_resist_a_few_bad_landmarks(local_joints):
    truth = local_joints @ ROTATION.T + TRANSLATION
    pixels = CAMERA.project(truth)
    pixels[[4, 8, 20]] += [30.0, -25.0]
    robust = place_hand(CAMERA, pixels, local_joints, "right")
    plain = place_hand(CAMERA, pixels, local_joints, "right", huber_px=1e9)
    robust_mm = 1000 * np.linalg.norm(robust.joints_cam_m - truth, axis=1).mean()
    plain_mm = 1000 * np.linalg.norm(plain.joints_cam_m - truth, axis=1).mean()
    assert robust_mm < 3.0 < 2 * robust_mm < plain_mm  # measured 1.8 mm vs 11.6 mm


def test_missing_landmarks_are_ignored_but_too_few_is_an_error(local_joints):
    truth = local_joints @ ROTATION.T + TRANSLATION
    pixels = CAMERA.project(truth)
    pixels[[1, 2, 3, 4]] = np.nan
    placed = place_hand(CAMERA, pixels, local_joints, "right")
    np.testing.assert_allclose(placed.joints_cam_m, truth, atol=1e-8)
    pixels[4:] = np.nan
    with pytest.raises(ValueError, match="at least 4"):
        place_hand(CAMERA, pixels, local_joints, "right")
    with pytest.raises(ValueError, match="landmarks_px"):
        place_hand(CAMERA, pixels[:20], local_joints, "right")
    with pytest.raises(ValueError, match="local_joints_m"):
        place_hand(CAMERA, CAMERA.project(truth), local_joints[:, :2], "right")


@pytest.fixture(scope="module")
def hand_mesh() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The flat right hand's vertices, faces and joints, centred like ``local_joints``."""
    out = create_hand_model("open").forward(np.zeros((16, 3)), side="right")
    centre = out.joints[0].astype(np.float64).mean(axis=0)
    return out.vertices[0].astype(np.float64) - centre, out.faces, out.joints[0].astype(np.float64) - centre


def _rendered_depth(vertices: np.ndarray, faces: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """What a depth sensor sees: the hand's skin (rendered mesh) in front of a wall at 1.5 m."""
    depth = render_mesh(vertices @ rotation.T + TRANSLATION, faces, CAMERA).depth.astype(np.float64)
    depth[depth == 0] = 1.5
    return depth


def _view_rotation(view: str) -> np.ndarray:
    """A slightly turned hand; "back": the dorsal side (+z of the wrist frame) faces the camera, "palm": turned over."""
    flip = Rotation.from_rotvec([np.pi, 0, 0]) if view == "back" else Rotation.identity()
    return (Rotation.from_rotvec([0.3, -0.2, 0.1]) * flip).as_matrix()


@pytest.mark.parametrize("view", ["back", "palm"])
def test_depth_sees_the_skin_not_the_joint_centres(hand_mesh, view):
    vertices, faces, joints = hand_mesh
    rotation = _view_rotation(view)
    truth = joints @ rotation.T + TRANSLATION
    placed = place_hand(CAMERA, CAMERA.project(truth), joints, "right", depth_m=_rendered_depth(vertices, faces,
                                                                                             rotation))
    assert placed.depth_inliers >= 4
    assert np.abs(placed.joints_cam_m - truth).max() < 0.006, "skin-depth model off by more than 6 mm"


@pytest.mark.parametrize("view", ["back", "palm"])
def test_depth_corrects_a_wrist_the_landmarks_put_too_near(hand_mesh, view):
    # The detector's palm is tilted: its wrist sits 4 cm nearer the camera than the knuckles say. The skin
    # over the metacarpals shows the tilt; the wrist slides back along its ray, its pixel unchanged.
    vertices, faces, joints = hand_mesh
    rotation = _view_rotation(view)
    truth = joints @ rotation.T + TRANSLATION
    pixels = CAMERA.project(truth)
    tilted = joints.copy()
    tilted[0] -= 0.04 * rotation[2]  # 4 cm toward the camera
    depth = _rendered_depth(vertices, faces, rotation)
    rgb_only = place_hand(CAMERA, pixels, tilted, "right")
    placed = place_hand(CAMERA, pixels, tilted, "right", depth_m=depth)
    before = np.linalg.norm(rgb_only.joints_cam_m[0] - truth[0])
    after = np.linalg.norm(placed.joints_cam_m[0] - truth[0])
    assert after < 0.6 * before
    np.testing.assert_allclose(CAMERA.project(placed.joints_cam_m[:1]), CAMERA.project(rgb_only.joints_cam_m[:1]),
                               atol=1e-6)


def test_depth_fixes_a_wrong_hand_size_despite_holes_and_an_occluder(hand_mesh):
    vertices, faces, joints = hand_mesh
    rotation = Rotation.from_rotvec([np.pi, 0.0, 0.0]).as_matrix()
    truth = joints @ rotation.T + TRANSLATION
    pixels = CAMERA.project(truth)
    small = 0.85 * joints  # the landmark model thinks the hand is 15 % smaller than it is
    rgb_only = place_hand(CAMERA, pixels, small, "right")
    assert abs(rgb_only.joints_cam_m[:, 2].mean() - 0.85 * truth[:, 2].mean()) < 1e-6
    depth = _rendered_depth(vertices, faces, rotation)
    centres = np.round(pixels).astype(int)
    for joint, value in ((5, 0.0), (0, np.nan)):  # holes (the wrist is not sampled anyway)
        u, v = centres[joint]
        depth[v - 3 : v + 4, u - 3 : u + 4] = value
    u, v = centres[9]
    depth[v - 3 : v + 4, u - 3 : u + 4] = 0.2  # a mug in front of the middle knuckle
    placed = place_hand(CAMERA, pixels, small, "right", depth_m=depth)
    assert placed.depth_inliers == 2
    assert placed.scale == pytest.approx(1 / 0.85, rel=0.02)
    assert np.abs(placed.joints_cam_m - truth).max() < 0.008
    assert placed.reprojection_error_px < 1e-6  # scaling about the camera centre keeps the projections


def test_an_unreliable_detector_size_is_fused_with_the_average_hand(local_joints):
    # The flat open-model hand is the average hand; its true size puts it at 0.45 m.
    assert palm_size_m(local_joints) == pytest.approx(MEAN_PALM_SIZE_M)
    truth = local_joints @ ROTATION.T + TRANSLATION
    pixels = CAMERA.project(truth)
    big = 1.3 * local_joints  # the detector says the hand is 30 % larger than it is
    trusted = place_hand(CAMERA, pixels, big, "right")
    assert trusted.size_scale == 1.0
    assert trusted.joints_cam_m[:, 2].mean() == pytest.approx(1.3 * truth[:, 2].mean())
    fused = place_hand(CAMERA, pixels, big, "right", size_sigma=0.3)
    # inverse-variance weights in log size: the detector's 1/0.3², the population's 1/HAND_SIZE_SIGMA²
    w = (1 / 0.3**2) / (1 / 0.3**2 + 1 / HAND_SIZE_SIGMA**2)
    assert fused.size_scale * 1.3 == pytest.approx(1.3**w)
    assert abs(fused.joints_cam_m[:, 2].mean() / truth[:, 2].mean() - 1.0) < 0.02
    assert fused.reprojection_error_px < 1e-6
    with pytest.raises(ValueError, match="size_sigma"):
        place_hand(CAMERA, pixels, big, "right", size_sigma=-1.0)


def test_depth_without_usable_samples_falls_back_to_rgb(local_joints):
    truth = local_joints @ ROTATION.T + TRANSLATION
    pixels = CAMERA.project(truth)
    for unusable in (np.full((480, 640), np.nan), np.zeros((480, 640))):
        placed = place_hand(CAMERA, pixels, local_joints, "right", depth_m=unusable)
        assert placed.scale == 1.0 and placed.depth_inliers == 0
        np.testing.assert_allclose(placed.joints_cam_m, truth, atol=1e-9)
    with pytest.raises(ValueError, match="aligned"):
        place_hand(CAMERA, pixels, local_joints, "right", depth_m=np.ones((240, 320)))


def test_sample_depth_handles_borders_and_outside_pixels():
    depth = np.arange(12.0).reshape(3, 4) + 1.0
    depth[1, 1] = np.nan
    samples = sample_depth(depth, np.array([[0.0, 0.0], [1.0, 1.0], [-5.0, 1.0], [np.nan, 1.0], [3.4, 2.4]]))
    assert samples[0] == pytest.approx(np.median([1, 1, 2, 1, 1, 2, 5, 5]))  # edge pixels repeat at the corner
    assert samples[1] == pytest.approx(np.median([1, 2, 3, 5, 7, 9, 10, 11]))  # the NaN centre is skipped
    assert np.isnan(samples[2]) and np.isnan(samples[3])
    assert np.isfinite(samples[4])


# Digit joints beyond the knuckles (thumb MCP/IP/tip, finger PIP/DIP/tip): their depths are MediaPipe's weak point.
DIGITS = [j for j in range(21) if j not in (*PALM_JOINTS, 1)]


@pytest.fixture(scope="module")
def curled_hand():
    """A right hand curled as in a grasp, its back toward the camera, rendered with depth; and a detector's view of
    it: exact landmarks, hand-centred joints whose digits sit 3 cm too near the camera (as MediaPipe's do)."""
    model = create_hand_model("open")
    axes = HandFitter(model).joint_axes("right")
    local = np.zeros((16, 3))
    local[1:13, 0] = np.tile([0.5, 0.6, 0.4], 4)  # finger MCP, PIP, DIP flexion (MANO order: thumb last)
    local[13:, 0] = 0.2
    pose = np.einsum("jab,jb->ja", axes, local)
    pose[0] = (Rotation.from_rotvec([-0.7, 0, 0]) * Rotation.from_rotvec([np.pi, 0, 0])
               * Rotation.from_rotvec([0, 0, -np.pi / 2])).as_rotvec()
    out = model.forward(pose, side="right", transl=np.array([0.0, -0.05, 0.4]))
    joints = out.joints[0].astype(np.float64)
    depth = render_mesh(out.vertices[0].astype(np.float64), out.faces, CAMERA).depth.astype(np.float64)
    depth[depth == 0] = 1.5
    detected = joints - joints.mean(axis=0)
    detected[DIGITS, 2] -= 0.03
    pixels = CAMERA.project(joints)
    assert np.all((pixels >= 0) & (pixels < [640, 480]))
    return model, joints, depth, pixels, detected


def test_lifting_puts_knuckles_and_pips_on_the_depth(curled_hand):
    _, truth, depth, pixels, detected = curled_hand
    placed = place_hand(CAMERA, pixels, detected, "right", depth_m=depth, size_sigma=0.3)
    lifted, mask = lift_joints_to_depth(CAMERA, pixels, placed.joints_cam_m, depth, "right")
    rows = [0, *DEPTH_JOINTS, *LIFT_PIP_JOINTS]
    assert np.array_equal(np.flatnonzero(mask), sorted(rows))
    pips = list(LIFT_PIP_JOINTS)
    assert np.linalg.norm(placed.joints_cam_m[pips] - truth[pips], axis=1).min() > 0.02  # the detector's error
    assert np.linalg.norm(lifted[[*DEPTH_JOINTS, *pips]] - truth[[*DEPTH_JOINTS, *pips]], axis=1).max() < 0.004
    assert np.linalg.norm(lifted[0] - truth[0]) < 0.012  # no forearm here: the heel is thinner than a wrist
    np.testing.assert_allclose(CAMERA.project(lifted[mask]), pixels[mask], atol=1e-6)  # on the landmarks' rays
    np.testing.assert_array_equal(lifted[~mask], placed.joints_cam_m[~mask])


def test_lifting_skips_occluders_and_holes(curled_hand):
    _, _, depth, pixels, detected = curled_hand
    placed = place_hand(CAMERA, pixels, detected, "right", depth_m=depth, size_sigma=0.3)
    blocked = depth.copy()
    for joint, value in ((10, 0.25), (13, 0.0), (6, np.nan)):  # a mug in front of the middle PIP, two holes
        u, v = np.round(pixels[joint]).astype(int)
        blocked[v - 3 : v + 4, u - 3 : u + 4] = value
    _, mask = lift_joints_to_depth(CAMERA, pixels, placed.joints_cam_m, blocked, "right")
    assert not mask[[10, 13, 6]].any()
    assert mask[[0, 5, 9, 17, 14, 18]].all()
    _, none = lift_joints_to_depth(CAMERA, pixels, placed.joints_cam_m, np.zeros_like(depth), "right")
    assert not none.any()
    with pytest.raises(ValueError, match="aligned"):
        lift_joints_to_depth(CAMERA, pixels, placed.joints_cam_m, depth[::2, ::2], "right")


def test_depth_lifted_fit_beats_the_fit_without_it(curled_hand):
    model, truth, depth, pixels, detected = curled_hand
    fitter = HandFitter(model, fit_shape=False)
    placed = place_hand(CAMERA, pixels, detected, "right", depth_m=depth, size_sigma=0.3)
    plain = fitter.fit(placed.joints_cam_m, "right", pixels, CAMERA, with_mesh=False)
    lifted, mask = lift_joints_to_depth(CAMERA, pixels, placed.joints_cam_m, depth, "right")
    ray_sigma = np.where(mask, 0.003, fitter.sigma_ray_m)
    ray_sigma[DIGITS] = np.where(mask[DIGITS], 0.003, np.inf)  # the detector's digit depths are not trusted
    fit = fitter.fit(lifted, "right", pixels, CAMERA, with_mesh=False, ray_sigma_m=ray_sigma)
    before = np.linalg.norm(plain.joints_cam - truth, axis=1).mean()
    after = np.linalg.norm(fit.joints_cam - truth, axis=1).mean()
    assert before > 0.012
    assert after < 0.005 and after < 0.35 * before


def test_mean_palm_size_is_the_open_models_rest_palm():
    from hand_scene_perception.core.hand_model import model_to_mediapipe
    from hand_scene_perception.core.hand_model.open_model import rest_skeleton
    from hand_scene_perception.core.placement import MEAN_PALM_SIZE_M, palm_size_m

    assert palm_size_m(model_to_mediapipe(rest_skeleton())) == pytest.approx(MEAN_PALM_SIZE_M, rel=1e-12)

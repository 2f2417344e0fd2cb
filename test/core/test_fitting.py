"""Hand-model fitting: round trips through the model, noise, missing joints, warm start, limits, other rest frames."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.core.fitting import FitResult, HandFitter, random_pose
from hand_scene_perception.core.hand_model import HandModelOutput, HandSide, create_hand_model
from hand_scene_perception.core.hand_model.wrist_frame import wrist_frame_from_joints
from hand_scene_perception.eval.fit import benchmark_fit

CAMERA = PinholeCamera.from_intrinsics(600.0, 600.0, 320.0, 240.0, 640, 480)
SIDES = ("right", "left")


class RotatedFrameModel:
    """The open model expressed in another rest frame (rotated, wrist off the origin), like MANO's.

    It offers neither ``joint_axes`` nor ``joint_limits``, so the fitter must derive everything from the
    model's outputs, as it does for MANO.
    """

    name = "rotated_open"

    def __init__(self, inner, rotation: np.ndarray, offset: np.ndarray) -> None:
        self.inner, self.rotation, self.offset = inner, rotation, offset
        self.num_vertices, self.num_shape_params = inner.num_vertices, inner.num_shape_params

    def faces(self, side):
        return self.inner.faces(side)

    def forward(self, pose, shape=None, side=HandSide.RIGHT, transl=None) -> HandModelOutput:
        # axis-angle rows are vectors in the rest frame: rotate them into the inner model's frame
        out = self.inner.forward(np.asarray(pose, dtype=np.float64) @ self.rotation, shape, side)
        shift = self.offset + (0.0 if transl is None else np.asarray(transl))

        def move(points):
            return (np.asarray(points, dtype=np.float64) @ self.rotation.T + shift).astype(np.float32)

        return HandModelOutput(vertices=move(out.vertices), joints=move(out.joints), faces=out.faces)


@pytest.fixture(scope="module")
def model():
    return create_hand_model("open")


@pytest.fixture(scope="module")
def fitter(model):
    return HandFitter(model)


def _hand(model, fitter, side, rng, spread=1.0, shape_sigma=0.03):
    """Ground-truth joints of a random hand about 0.45 m in front of the camera."""
    pose = random_pose(fitter, side, rng, spread)
    shape = rng.normal(0.0, shape_sigma, model.num_shape_params)
    transl = np.array([rng.uniform(-0.08, 0.08), rng.uniform(-0.06, 0.06), rng.uniform(0.4, 0.5)])
    return model.forward(pose, shape, side, transl).joints[0].astype(np.float64)


def _local_angles(fitter, result: FitResult) -> np.ndarray:
    return np.einsum("jba,jb->ja", fitter.joint_axes(result.side), result.pose)


def _round_trip_errors(model, fitter, side, n, seed):
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(n):
        truth = _hand(model, fitter, side, rng)
        result = fitter.fit(truth, side)
        errors.append(np.linalg.norm(result.joints_cam - truth, axis=1))
    return np.array(errors)


@pytest.mark.parametrize("side", SIDES)
def test_round_trip_recovers_joints(model, fitter, side):
    # 3D targets only, full joint ranges including twist, shape σ 0.03: see the report for measured values
    errors = _round_trip_errors(model, fitter, side, 20, seed=SIDES.index(side) + 1)
    print(f"round trip {side}: mean {1e3 * errors.mean():.2f} mm, median per-hand max "
          f"{1e3 * np.median(errors.max(axis=1)):.2f} mm, max {1e3 * errors.max():.2f} mm")  # fmt: skip
    assert errors.mean() < 1e-3
    assert np.median(errors.max(axis=1)) < 5e-3
    assert errors.max() < 0.02


@pytest.mark.parametrize("side", SIDES)
def test_result_is_the_models_own_output(model, fitter, side):
    truth = _hand(model, fitter, side, np.random.default_rng(2))
    result = fitter.fit(truth, side, CAMERA.project(truth), CAMERA)
    again = model.forward(result.pose, result.shape, side, result.transl)
    np.testing.assert_allclose(again.joints[0], result.joints_cam, atol=1e-5)
    np.testing.assert_allclose(again.vertices[0], result.vertices_cam, atol=1e-5)
    np.testing.assert_allclose(result.wrist_pose, wrist_frame_from_joints(result.joints_cam, side))
    assert result.pose.shape == (16, 3) and result.shape.shape == (model.num_shape_params,)
    assert result.vertices_cam.shape == (model.num_vertices, 3) and result.side is HandSide(side)
    assert result.reprojection_error_px < 1.0 and result.joint_error_m < 1e-3 and result.shape_frames == 1


@pytest.mark.parametrize("side", SIDES)
def test_fit_without_mesh_reports_the_skeleton(model, fitter, side):
    # the pipeline's path: same parameters, no vertices, joints from the fitted skeleton (≈ the model's)
    truth = _hand(model, fitter, side, np.random.default_rng(10))
    with_mesh = fitter.fit(truth, side, CAMERA.project(truth), CAMERA)
    result = fitter.fit(truth, side, CAMERA.project(truth), CAMERA, with_mesh=False)
    assert result.vertices_cam is None
    np.testing.assert_allclose(result.pose, with_mesh.pose)
    np.testing.assert_allclose(result.transl, with_mesh.transl)
    np.testing.assert_allclose(result.joints_cam, with_mesh.joints_cam, atol=1e-3)
    np.testing.assert_allclose(result.wrist_pose, wrist_frame_from_joints(result.joints_cam, side))


def test_landmarks_and_noisy_targets(model, fitter):
    # 1.5 px landmark noise, 3D targets with 2/2/5 mm (x/y/depth) noise (see the report for measured values)
    rng = np.random.default_rng(3)
    errors, reprojection, reprojection_3d_only = [], [], []
    for k in range(20):
        side = SIDES[k % 2]
        truth = _hand(model, fitter, side, rng)
        targets = truth + rng.normal(0.0, [0.002, 0.002, 0.005], truth.shape)
        pixels = CAMERA.project(truth) + rng.normal(0.0, 1.5, (21, 2))
        result = fitter.fit(targets, side, pixels, CAMERA)
        errors.append(np.linalg.norm(result.joints_cam - truth, axis=1).mean())
        reprojection.append(result.reprojection_error_px)
        only_3d = fitter.fit(targets, side).joints_cam
        reprojection_3d_only.append(np.linalg.norm(CAMERA.project(only_3d) - pixels, axis=1).mean())
    print(f"noisy: mean {1e3 * np.mean(errors):.2f} mm, reprojection {np.mean(reprojection):.2f} px "
          f"(3D only {np.mean(reprojection_3d_only):.2f} px)")  # fmt: skip
    assert np.mean(errors) < 0.007
    assert np.mean(reprojection) < 3.5
    assert np.mean(reprojection) < np.mean(reprojection_3d_only)


def test_missing_joints_are_skipped(model, fitter):
    truth = _hand(model, fitter, "right", np.random.default_rng(4))
    targets = truth.copy()
    missing = [4, 7, 8, 20]
    targets[missing] = np.nan
    pixels = CAMERA.project(truth)
    pixels[[8, 12]] = np.nan
    result = fitter.fit(targets, "right", pixels, CAMERA)
    kept = np.setdiff1d(np.arange(21), missing)
    assert np.all(np.isfinite(result.joints_cam)) and np.all(np.isfinite(result.vertices_cam))
    assert np.linalg.norm(result.joints_cam[kept] - truth[kept], axis=1).mean() < 2e-3
    # a zero weight drops the joint's 3D target and its landmark alike
    weights = np.ones(21)
    weights[missing] = 0.0
    pixels[missing] = np.nan
    by_nan = fitter.fit(targets, "right", pixels, CAMERA)
    filled = np.where(np.isnan(targets), 5.0, targets)
    by_weight = fitter.fit(filled, "right", pixels, CAMERA, landmark_weights=weights)
    np.testing.assert_allclose(by_weight.joints_cam, by_nan.joints_cam, atol=1e-9)


def test_bad_input_gives_clear_errors(model, fitter):
    truth = _hand(model, fitter, "left", np.random.default_rng(5))
    no_palm = truth.copy()
    no_palm[[0, 5, 9]] = np.nan
    with pytest.raises(ValueError, match="palm"):
        fitter.fit(no_palm, "left")
    with pytest.raises(ValueError, match="degenerate"):
        fitter.fit(np.tile(truth[:1], (21, 1)), "left")
    with pytest.raises(ValueError, match="camera"):
        fitter.fit(truth, "left", CAMERA.project(truth))
    with pytest.raises(ValueError, match="shape"):
        fitter.fit(truth[:20], "left")
    with pytest.raises(ValueError, match="landmark_weights"):
        fitter.fit(truth, "left", landmark_weights=-np.ones(21))


def test_depths_along_the_viewing_ray_can_be_weighted_apart(model, fitter):
    # A detector whose digits are 3 cm too near along their viewing rays (MediaPipe's bent fingers): with their
    # along-ray weight off, the digits follow the exact landmarks and the bone lengths instead (the shape is not
    # fitted to those targets' lengths: the true hand has the average shape, as the pipeline assumes for them).
    fitter = HandFitter(model, fit_shape=False)
    rng = np.random.default_rng(11)
    digits = [j for j in range(21) if j not in (0, 1, 5, 9, 13, 17)]
    free = np.full(21, fitter.sigma_ray_m)
    free[digits] = np.inf
    trusted, freed = [], []
    for k in range(10):
        side = SIDES[k % 2]
        truth = _hand(model, fitter, side, rng, spread=0.7, shape_sigma=0.0)
        targets = truth.copy()
        targets[digits] *= 1.0 - 0.03 / np.linalg.norm(truth[digits], axis=1, keepdims=True)
        pixels = CAMERA.project(truth)
        error = [np.linalg.norm(fitter.fit(targets, side, pixels, CAMERA, ray_sigma_m=sigma).joints_cam - truth,
                                axis=1)[digits].mean() for sigma in (None, free)]  # fmt: skip
        trusted.append(error[0])
        freed.append(error[1])
    assert np.mean(trusted) > 0.01
    assert np.mean(freed) < 0.5 * np.mean(trusted)  # measured: 7.9 vs 19.7 mm
    # the same sigma along the ray as across it is the isotropic fit, exactly
    truth = _hand(model, fitter, "right", rng)
    noisy = truth + rng.normal(0.0, 0.004, truth.shape)
    isotropic = fitter.fit(noisy, "right", CAMERA.project(truth), CAMERA)
    explicit = fitter.fit(noisy, "right", CAMERA.project(truth), CAMERA, ray_sigma_m=np.full(21, fitter.sigma_3d_m))
    np.testing.assert_allclose(explicit.joints_cam, isotropic.joints_cam, atol=1e-12)
    with pytest.raises(ValueError, match="ray_sigma_m"):
        fitter.fit(noisy, "right", ray_sigma_m=np.zeros(21))
    with pytest.raises(ValueError, match="ray_sigma_m"):
        fitter.fit(noisy, "right", ray_sigma_m=np.ones(20))
    with pytest.raises(ValueError, match="sigma_ray_m"):
        HandFitter(model, sigma_ray_m=0.0)


def test_collapsed_digits_stay_finite_and_within_limits(model, fitter):
    truth = _hand(model, fitter, "right", np.random.default_rng(6))
    targets = truth.copy()
    targets[[6, 7, 8]] = targets[5]  # index finger collapsed onto its knuckle
    result = fitter.fit(targets, "right", CAMERA.project(targets), CAMERA)
    lower, upper = model.joint_limits()
    local = _local_angles(fitter, result)
    assert np.all(np.isfinite(result.vertices_cam))
    assert np.all(local[1:] >= lower[1:] - 1e-9) and np.all(local[1:] <= upper[1:] + 1e-9)


def test_result_respects_joint_limits(model, fitter):
    rng = np.random.default_rng(7)
    lower, upper = model.joint_limits()
    for k in range(10):
        side = SIDES[k % 2]
        truth = _hand(model, fitter, side, rng, spread=1.6)  # targets well beyond the limits
        local = _local_angles(fitter, fitter.fit(truth, side))
        assert np.all(local[1:] >= lower[1:] - 1e-9) and np.all(local[1:] <= upper[1:] + 1e-9)


def test_warm_start_keeps_or_improves_the_error(model, fitter):
    # a hand closing slowly, noisy observations: the warm start (temporal prior, running shape) must not hurt
    rng = np.random.default_rng(8)
    start, end = random_pose(fitter, "right", rng, 0.7), random_pose(fitter, "right", rng, 0.7)
    end[0] = start[0] + 0.1
    shape = rng.normal(0.0, 0.03, model.num_shape_params)
    cold, warm, previous = [], [], None
    for t in np.linspace(0.0, 1.0, 15):
        truth = model.forward((1 - t) * start + t * end, shape, "right", [0.0, 0.0, 0.45]).joints[0].astype(np.float64)
        targets = truth + rng.normal(0.0, [0.002, 0.002, 0.006], truth.shape)
        pixels = CAMERA.project(truth) + rng.normal(0.0, 1.5, (21, 2))
        cold.append(np.linalg.norm(fitter.fit(targets, "right", pixels, CAMERA).joints_cam - truth, axis=1).mean())
        previous = fitter.fit(targets, "right", pixels, CAMERA, previous=previous)
        warm.append(np.linalg.norm(previous.joints_cam - truth, axis=1).mean())
    assert previous.shape_frames == 15
    assert np.mean(warm) <= np.mean(cold) + 2e-4
    # a previous fit of the other side is ignored rather than mixed in
    assert fitter.fit(targets, "left", previous=previous).shape_frames == 1


@pytest.mark.parametrize("side", SIDES)
def test_model_with_another_rest_frame(model, side):
    """Nothing may assume the open model's frame: a MANO-like stand-in must fit as well."""
    other = RotatedFrameModel(model, Rotation.from_rotvec([0.4, -1.1, 2.0]).as_matrix(), np.array([0.09, 0.0, 0.006]))
    fitter = HandFitter(other)
    rng = np.random.default_rng(9)
    errors = []
    for _ in range(10):
        truth = _hand(other, fitter, side, rng)
        result = fitter.fit(truth, side, CAMERA.project(truth), CAMERA)
        errors.append(np.linalg.norm(result.joints_cam - truth, axis=1))
        np.testing.assert_allclose(
            other.forward(result.pose, result.shape, side, result.transl).joints[0], result.joints_cam, atol=1e-5
        )
    print(f"rotated frame {side}: mean {1e3 * np.mean(errors):.2f} mm, max {1e3 * np.max(errors):.2f} mm")
    assert np.mean(errors) < 1e-3 and np.median(np.max(errors, axis=1)) < 3e-3


def test_benchmark_reports_timings(model):
    report = benchmark_fit(n=6, model=model)
    assert report["fits"] == 6 and 0 < report["ms_p50"] <= report["ms_p90"]
    assert report["joint_error_mm_mean"] < 15.0


# ------------------------------------------------------------------ bone retargeting, per-call 2D noise, rest joints


def _bones(joints):
    from hand_scene_perception.core.hand_model import MEDIAPIPE_PARENTS

    pairs = np.array([(p, c) for c, p in enumerate(MEDIAPIPE_PARENTS) if p >= 0])
    return joints[pairs[:, 1]] - joints[pairs[:, 0]]


def test_retarget_bone_lengths_keeps_directions_and_the_wrist(model, fitter):
    from hand_scene_perception.core.fitting import retarget_bone_lengths

    rng = np.random.default_rng(11)
    joints = _hand(model, fitter, "right", rng, spread=0.6)
    # a detector-like skeleton: the same directions, every bone stretched or shrunk by its own factor
    reference = model.forward(np.zeros((16, 3)), rng.normal(0.0, 0.1, model.num_shape_params), "right").joints[0]
    reference = reference.astype(np.float64) * 1.2 + [0.3, -0.2, 1.0]  # placement of the reference is irrelevant
    before = joints.copy()
    out = retarget_bone_lengths(joints, reference)
    np.testing.assert_array_equal(joints, before)  # input untouched
    assert out.shape == (21, 3)
    np.testing.assert_allclose(out[0], joints[0], atol=1e-12)
    ref_lengths = np.linalg.norm(_bones(reference), axis=1)
    assert not np.allclose(np.linalg.norm(_bones(joints), axis=1), ref_lengths, rtol=0.05)  # a real change
    np.testing.assert_allclose(np.linalg.norm(_bones(out), axis=1), ref_lengths, rtol=1e-9)
    unit = _bones(joints) / np.linalg.norm(_bones(joints), axis=1, keepdims=True)
    out_unit = _bones(out) / np.linalg.norm(_bones(out), axis=1, keepdims=True)
    np.testing.assert_allclose(out_unit, unit, atol=1e-9)


def test_retarget_bone_lengths_is_the_identity_for_equal_lengths(model, fitter):
    from hand_scene_perception.core.fitting import retarget_bone_lengths

    rng = np.random.default_rng(12)
    joints = _hand(model, fitter, "left", rng)
    # the same skeleton rotated and moved: equal bone lengths, other directions
    reference = joints @ Rotation.from_rotvec([0.4, -1.1, 0.3]).as_matrix().T + [0.1, 0.2, -0.3]
    np.testing.assert_allclose(retarget_bone_lengths(joints, reference), joints, atol=1e-12)
    np.testing.assert_allclose(retarget_bone_lengths(joints, joints), joints, atol=1e-12)
    # lists work too
    np.testing.assert_allclose(retarget_bone_lengths(joints.tolist(), reference.tolist()), joints, atol=1e-12)


def test_retarget_bone_lengths_moves_a_whole_chain_with_its_bone(model, fitter):
    from hand_scene_perception.core.fitting import retarget_bone_lengths

    rng = np.random.default_rng(13)
    joints = _hand(model, fitter, "right", rng)
    reference = joints.copy()
    # only the index proximal phalanx (MCP 5 -> PIP 6) is 1 cm longer in the reference
    direction = (joints[6] - joints[5]) / np.linalg.norm(joints[6] - joints[5])
    reference[6:9] += 0.01 * direction
    out = retarget_bone_lengths(joints, reference)
    np.testing.assert_allclose(out[6:9], joints[6:9] + 0.01 * direction, atol=1e-12)  # PIP, DIP, tip shift along
    others = [j for j in range(21) if j not in (6, 7, 8)]
    np.testing.assert_allclose(out[others], joints[others], atol=1e-12)


def _disagreeing_hand(model, fitter, seed):
    """True joints as 3D targets and landmarks whose fingertips and DIPs are moved (12, -6) px off them."""
    rng = np.random.default_rng(seed)
    truth = model.forward(random_pose(fitter, "right", rng, 0.5), None, "right", np.array([0.02, 0.01, 0.45]))
    truth = truth.joints[0].astype(np.float64)
    landmarks = CAMERA.project(truth)
    landmarks[[3, 4, 7, 8, 11, 12, 15, 16, 19, 20]] += [12.0, -6.0]
    return truth, landmarks


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_larger_per_call_2d_sigma_follows_the_3d_targets(model, fitter, seed):
    # measured (seeds 0-7): sigma 1 px: joint error 2.9-5.4 mm, reprojection 1.4-4.2 px; sigma 100 px: joint error
    # <= 0.12 mm, reprojection 6.3-6.5 px (the landmarks' offset averaged over all joints)
    truth, landmarks = _disagreeing_hand(model, fitter, seed)
    tight = fitter.fit(truth, "right", landmarks, CAMERA, sigma_2d_px=1.0)
    loose = fitter.fit(truth, "right", landmarks, CAMERA, sigma_2d_px=100.0)
    assert loose.joint_error_m < 0.0004 < 0.002 < tight.joint_error_m
    assert tight.reprojection_error_px < loose.reprojection_error_px - 1.5
    np.testing.assert_allclose(loose.joints_cam, truth, atol=0.002)
    assert fitter.sigma_2d_px == 2.0  # the per-call value does not stick


def test_per_call_2d_sigma_equals_a_fitter_built_with_it(model, fitter):
    truth, landmarks = _disagreeing_hand(model, fitter, 1)
    default = fitter.fit(truth, "right", landmarks, CAMERA)
    np.testing.assert_allclose(
        fitter.fit(truth, "right", landmarks, CAMERA, sigma_2d_px=None).joints_cam, default.joints_cam, atol=1e-12
    )
    np.testing.assert_allclose(
        fitter.fit(truth, "right", landmarks, CAMERA, sigma_2d_px=2.0).joints_cam, default.joints_cam, atol=1e-12
    )
    # the Huber threshold scales with the per-call sigma: 7 px per call = a fitter built with 7 px and huber 6 * 7 / 2
    per_call = fitter.fit(truth, "right", landmarks, CAMERA, sigma_2d_px=7.0)
    built = HandFitter(model, sigma_2d_px=7.0, huber_px=21.0).fit(truth, "right", landmarks, CAMERA)
    np.testing.assert_allclose(per_call.joints_cam, built.joints_cam, atol=1e-9)
    assert not np.allclose(per_call.joints_cam, default.joints_cam, atol=1e-4)


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan"), float("inf"), -float("inf")])
def test_invalid_per_call_2d_sigma_raises(model, fitter, value):
    truth, landmarks = _disagreeing_hand(model, fitter, 0)
    with pytest.raises(ValueError, match="sigma_2d_px must be positive"):
        fitter.fit(truth, "right", landmarks, CAMERA, sigma_2d_px=value)
    with pytest.raises(ValueError, match="sigma_2d_px must be positive"):
        fitter.fit(truth, "right", sigma_2d_px=value)


def test_rest_joints_are_the_models_unposed_joints(model, fitter):
    zero_pose = np.zeros((16, 3))
    for side in (HandSide.RIGHT, HandSide.LEFT):
        rest = fitter.rest_joints(side)
        assert rest.shape == (21, 3) and rest.dtype == np.float64
        np.testing.assert_allclose(rest, model.forward(zero_pose, None, side).joints[0], atol=1e-6)
        np.testing.assert_allclose(fitter.rest_joints(side.value.upper()), rest)  # side as a string
    assert not np.allclose(fitter.rest_joints("left"), fitter.rest_joints("right"), atol=1e-3)
    # a copy: changing it does not change the fitter
    rest = fitter.rest_joints("right")
    rest[:] = 0.0
    assert np.linalg.norm(fitter.rest_joints("right")[9] - fitter.rest_joints("right")[0]) > 0.05


def test_rest_joints_follow_the_shape_linearly(model, fitter):
    # measured: the linearised skeleton is within 0.06 mm of the model for shape sigma 0.03, 0.15 mm for 0.1
    rng = np.random.default_rng(14)
    shape = rng.normal(0.0, 0.03, model.num_shape_params)
    rest = fitter.rest_joints("right", shape)
    np.testing.assert_allclose(rest, model.forward(np.zeros((16, 3)), shape, "right").joints[0], atol=2e-4)
    assert np.abs(rest - fitter.rest_joints("right")).max() > 1e-3  # the shape did change it
    np.testing.assert_allclose(
        fitter.rest_joints("right", np.zeros(model.num_shape_params)), fitter.rest_joints("right"), atol=1e-12
    )
    # the scale parameter (row 0) makes the hand larger
    scale = np.zeros(model.num_shape_params)
    scale[0] = 0.1
    scaled, rest = fitter.rest_joints("right", scale), fitter.rest_joints("right")
    assert np.linalg.norm(scaled[9] - scaled[0]) == pytest.approx(1.1 * np.linalg.norm(rest[9] - rest[0]), rel=0.01)

"""Metrics of ARCHITECTURE.md, Metrics on cases whose answers are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_scene_perception.core import metrics

OFFSET_345 = np.array([0.003, 0.004, 0.0])  # 5 mm


def _joints(t: int = 4, j: int = 21, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=0.05, size=(t, j, 3))


def _similarity(x: np.ndarray, scale: float = 1.3, seed: int = 1) -> np.ndarray:
    rot = Rotation.random(random_state=seed).as_matrix()
    return scale * x @ rot.T + np.array([0.5, -0.2, 1.0])


# ---------------------------------------------------------------------------- joint errors


def test_mpjpe_of_3_4_5_offset_is_5_mm() -> None:
    gt = _joints()
    assert metrics.mpjpe_mm(gt + OFFSET_345, gt) == pytest.approx(5.0)
    assert metrics.c_mpjpe_mm(gt + OFFSET_345, gt) == pytest.approx(5.0)
    np.testing.assert_allclose(metrics.joint_errors_mm(gt + OFFSET_345, gt), 5.0)


def test_rr_mpjpe() -> None:
    gt = _joints()
    assert metrics.rr_mpjpe_mm(gt + 0.1, gt) == pytest.approx(0.0, abs=1e-9)
    # only joint 1 of two is off by 5 mm, the root is exact: errors (0, 5) -> 2.5 mm
    gt2 = np.zeros((1, 2, 3))
    pred2 = gt2.copy()
    pred2[0, 1] = OFFSET_345
    assert metrics.rr_mpjpe_mm(pred2, gt2) == pytest.approx(2.5)


def test_pa_mpjpe_zero_for_similar_copy() -> None:
    gt = _joints()
    assert metrics.pa_mpjpe_mm(_similarity(gt), gt) == pytest.approx(0.0, abs=1e-9)
    assert metrics.mpjpe_mm(_similarity(gt), gt) > 100.0


def test_pck_and_auc() -> None:
    pck = metrics.pck_curve([0.0, 10.0, 20.0, 30.0], [0.0, 10.0, 25.0, 40.0])
    np.testing.assert_allclose(pck, [0.25, 0.5, 0.75, 1.0])
    assert metrics.auc_pck(np.zeros(50)) == pytest.approx(1.0)
    assert metrics.auc_pck(np.full(50, 50.1)) == pytest.approx(0.0)
    # every error 25 mm: PCK steps from 0 to 1 between grid points 49 (24.75 mm) and 50 (25.25 mm);
    # trapezoids: 49 full steps + half a step out of 99 -> 49.5 / 99 = 0.5
    assert metrics.auc_pck(np.full(7, 25.0)) == pytest.approx(0.5)
    # errors {0, 50}: PCK 0.5 everywhere but the last grid point (1.0) -> 0.5 + 0.25 / 99
    assert metrics.auc_pck([0.0, 50.0]) == pytest.approx(0.5 + 0.25 / 99)
    # POEM/HGGT range: 10 mm on 0-20 mm with 3 steps (0, 10, 20): PCK (0, 1, 1) -> (0.5*10 + 10) / 20
    assert metrics.auc_pck([10.0], max_mm=20.0, steps=3) == pytest.approx(0.75)


# ---------------------------------------------------------------------------- world-frame sequences


def test_w_and_wa_mpjpe_zero_for_global_similarity() -> None:
    gt = _joints(t=250)
    pred = _similarity(gt, scale=0.8)
    assert metrics.w_mpjpe_mm(pred, gt) == pytest.approx(0.0, abs=1e-8)
    assert metrics.wa_mpjpe_mm(pred, gt) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("chunk", [100, 30])
def test_w_mpjpe_penalises_drift_after_first_two_frames(chunk: int) -> None:
    # each chunk starts exact for two frames, then drifts by a constant 5 mm; the last chunk is partial
    t = 250
    gt = _joints(t=t)
    in_chunk = np.arange(t) % chunk
    pred = gt + (in_chunk >= 2)[:, None, None] * OFFSET_345
    drifted = int(np.sum(in_chunk >= 2))  # chunk 100: 98 + 98 + 48 = 244 frames
    assert metrics.w_mpjpe_mm(pred, gt, chunk=chunk) == pytest.approx(5.0 * drifted / t, rel=1e-9)
    # WA fits by least squares over the whole chunk. Already the translation by the chunk's mean
    # offset d (n - 2) / n leaves a squared error of 2 |d|² (n - 2) / n per joint over a chunk of
    # n frames, and the mean error is at most the RMS error, so WA is far below W
    sizes = [min(chunk, t - start) for start in range(0, t, chunk)]
    bound = 5.0 * math.sqrt(sum(2 * (n - 2) / n for n in sizes) / t)
    assert metrics.wa_mpjpe_mm(pred, gt, chunk=chunk) <= bound + 1e-9
    if chunk == 100:
        assert drifted == 244


def test_acc_err() -> None:
    gt = _joints(t=10)
    frames = np.arange(10.0)[:, None, None]
    assert metrics.acc_err_mm(gt + frames * np.array([0.01, -0.02, 0.03]), gt) == pytest.approx(0.0, abs=1e-9)
    # x(t) = a t² / 2 has second difference a = (3, 4, 0) mm/frame² -> 5 mm/frame², 5 * 30² mm/s² at 30 fps
    pred = gt + 0.5 * frames**2 * OFFSET_345
    assert metrics.acc_err_mm(pred, gt) == pytest.approx(5.0)
    assert metrics.acc_err_mm(pred, gt, fps=30.0) == pytest.approx(4500.0)
    with pytest.raises(ValueError, match="3 frames"):
        metrics.acc_err_mm(gt[:2], gt[:2])


# ---------------------------------------------------------------------------- trajectories


def _trajectory(t: int = 20, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (t, 1, 1))
    poses[:, :3, :3] = Rotation.random(t, random_state=seed).as_matrix()
    poses[:, :3, 3] = np.cumsum(rng.normal(scale=0.1, size=(t, 3)), axis=0)
    return poses


def _left_multiply(poses: np.ndarray, scale: float = 1.0) -> np.ndarray:
    a = Rotation.from_rotvec([0.2, 0.5, -0.3]).as_matrix()
    out = poses.copy()
    out[:, :3, :3] = a @ poses[:, :3, :3]
    out[:, :3, 3] = scale * poses[:, :3, 3] @ a.T + np.array([1.0, -2.0, 0.5])
    return out


def test_ate() -> None:
    gt = _trajectory()
    shifted = gt.copy()
    shifted[:, :3, 3] += [3.0, 4.0, 0.0]
    assert metrics.ate_m(shifted, gt, align="none") == pytest.approx(5.0)
    assert metrics.ate_m(shifted, gt, align="se3") == pytest.approx(0.0, abs=1e-9)
    assert metrics.ate_m(_left_multiply(gt), gt, align="se3") == pytest.approx(0.0, abs=1e-9)
    scaled = _left_multiply(gt, scale=2.0)
    assert metrics.ate_m(scaled, gt, align="sim3") == pytest.approx(0.0, abs=1e-9)
    assert metrics.ate_m(scaled, gt, align="se3") > 0.01
    # a straight-line trajectory is fine (rotation about the line is free, residual still 0)
    line = np.tile(np.eye(4), (5, 1, 1))
    line[:, 0, 3] = np.arange(5.0)
    moved = line.copy()
    moved[:, 1, 3] += 1.0
    assert metrics.ate_m(moved, line, align="se3") == pytest.approx(0.0, abs=1e-9)


def test_rpe_translation_and_rotation_by_hand() -> None:
    t = 6
    gt = np.tile(np.eye(4), (t, 1, 1))
    gt[:, 0, 3] = np.arange(t) * 1.0
    pred = gt.copy()
    pred[:, 0, 3] = np.arange(t) * 1.1  # every step 0.1 m too long
    trans, rot = metrics.rpe(pred, gt)
    assert trans == pytest.approx(0.1) and rot == pytest.approx(0.0, abs=1e-9)
    assert metrics.rpe(pred, gt, delta=2)[0] == pytest.approx(0.2)
    # sim3 alignment removes the global scale error
    assert metrics.rpe(pred, gt, align="sim3")[0] == pytest.approx(0.0, abs=1e-9)
    # rotations: gt turns 10° per frame about z, pred 12° -> 2° relative error per step
    gt_r = np.tile(np.eye(4), (t, 1, 1))
    pred_r = gt_r.copy()
    gt_r[:, :3, :3] = Rotation.from_euler("z", np.arange(t)[:, None] * 10.0, degrees=True).as_matrix()
    pred_r[:, :3, :3] = Rotation.from_euler("z", np.arange(t)[:, None] * 12.0, degrees=True).as_matrix()
    trans_r, rot_r = metrics.rpe(pred_r, gt_r)
    assert trans_r == pytest.approx(0.0, abs=1e-9) and rot_r == pytest.approx(2.0)
    assert metrics.rpe(pred_r, gt_r, delta=3)[1] == pytest.approx(6.0)


def test_rpe_invariant_to_rigid_change_of_world() -> None:
    gt = _trajectory()
    trans, rot = metrics.rpe(_left_multiply(gt), gt)
    assert trans == pytest.approx(0.0, abs=1e-9) and rot == pytest.approx(0.0, abs=1e-6)


def test_pose_validation() -> None:
    gt = _trajectory(t=4)
    bad = gt.copy()
    bad[1, :3, :3] *= 2.0
    with pytest.raises(ValueError, match="orthonormal"):
        metrics.ate_m(bad, gt)
    with pytest.raises(ValueError, match="align"):
        metrics.ate_m(gt, gt, align="affine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delta"):
        metrics.rpe(gt, gt, delta=4)


# ---------------------------------------------------------------------------- maps


def test_chamfer_by_hand() -> None:
    a = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    b = np.array([[0.0, 0.0, 0.0]])
    # a -> b: (0 + 1) / 2 = 0.5; b -> a: 0 -> chamfer (0.5 + 0) / 2
    assert metrics.accuracy_m(a, b) == pytest.approx(0.5)
    assert metrics.completeness_m(a, b) == pytest.approx(0.0)
    assert metrics.chamfer_m(a, b) == pytest.approx(0.25)
    assert metrics.chamfer_m(b, a) == pytest.approx(0.25)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        metrics.chamfer_m(np.zeros((0, 3)), b)


# ---------------------------------------------------------------------------- images


def test_psnr_masked() -> None:
    gt = np.zeros((20, 30, 3), dtype=np.uint8)
    pred = np.full_like(gt, 200)
    mask = np.zeros((20, 30), dtype=bool)
    mask[5:10, 5:15] = True
    pred[mask] = 10  # MSE 100 on the mask; outside the mask differences do not count
    assert metrics.psnr_masked(pred, gt, mask) == pytest.approx(10 * math.log10(255.0**2 / 100.0))
    assert metrics.psnr_masked(gt, gt, mask) == math.inf
    with pytest.raises(ValueError, match="no pixels"):
        metrics.psnr_masked(pred, gt, np.zeros((20, 30), dtype=bool))


def test_ssim_bbox() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(size=(40, 50, 3))
    mask = np.zeros((40, 50), dtype=bool)
    mask[10:30, 12:40] = True
    other = img.copy()
    other[~mask] = 0.0  # outside the bounding box: ignored
    assert metrics.ssim_bbox(other, img, mask) == pytest.approx(1.0)
    # constant images a, b: variances and covariance vanish, SSIM = (2ab + C1) / (a² + b² + C1)
    a, b, c1 = 0.5, 0.25, (0.01 * 1.0) ** 2
    const_a = np.full((40, 50), a)
    const_b = np.full((40, 50), b)
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert metrics.ssim_bbox(const_a, const_b, mask) == pytest.approx(expected, rel=1e-6)
    noisy = np.clip(img + rng.normal(scale=0.2, size=img.shape), 0, 1)
    assert 0.0 < metrics.ssim_bbox(noisy, img, mask) < 0.9
    small = np.zeros((40, 50), dtype=bool)
    small[0:5, 0:5] = True
    with pytest.raises(ValueError, match="smaller"):
        metrics.ssim_bbox(img, img, small)


def test_input_validation() -> None:
    gt = _joints()
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.mpjpe_mm(gt[:, :20], gt)
    bad = gt.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        metrics.mpjpe_mm(bad, gt)
    with pytest.raises(ValueError, match=r"\(T, J, 3\)"):
        metrics.w_mpjpe_mm(gt[0], gt[0])
    with pytest.raises(ValueError, match="chunk"):
        metrics.wa_mpjpe_mm(gt, gt, chunk=0)

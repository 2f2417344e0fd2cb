"""RGB-D and monocular odometry on a synthetic sequence with ground-truth camera poses."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.metrics import ate_m
from hand_scene_perception.core.odometry import MonocularOdometry, RgbdOdometry, estimate_scale
from hand_scene_perception.core.transforms import inverse_matrices
from hand_scene_perception.synth.sequence import SyntheticSequence, default_camera

CAM = default_camera(640, 480)


@pytest.fixture(scope="module")
def frames() -> list:
    return list(SyntheticSequence(1, camera=CAM, fps=10.0).frames(40))


def _gt(frames: list) -> np.ndarray:
    poses = np.stack([f.T_world_camera for f in frames])
    return inverse_matrices(poses[0]) @ poses  # world = first camera


def _run_rgbd(frames: list, occlude: bool, masked: bool) -> np.ndarray:
    odo = RgbdOdometry()
    rng = np.random.default_rng(3)
    # A strongly textured object fixed in front of the camera (moves exactly with it, like a hand would).
    blob = rng.integers(0, 2, (30, 24), dtype=np.uint8).repeat(8, 0).repeat(8, 1) * 255
    poses = []
    for f in frames:
        rgb, depth, mask = f.rgb.copy(), f.depth.copy(), f.segmentation > 0
        if occlude:
            rgb[200:440, 20:212] = blob[..., None]
            depth[200:440, 20:212] = 0.3
            mask[200:440, 20:212] = True
        result = odo.track(rgb, depth, CAM, int(f.stamp * 1e9), mask=mask if masked else None)
        assert result.ok, result.status
        poses.append(result.T_world_camera)
    return np.stack(poses)


def test_rgbd_trajectory_accuracy(frames: list) -> None:
    poses = _run_rgbd(frames, occlude=False, masked=True)
    assert ate_m(poses, _gt(frames), align="none") < 0.01  # measured ≈ 3–4 mm over a 11 cm path


def test_rgbd_mask_keeps_moving_object_out(frames: list) -> None:
    gt = _gt(frames)
    masked = ate_m(_run_rgbd(frames, occlude=True, masked=True), gt, align="none")
    unmasked = ate_m(_run_rgbd(frames, occlude=True, masked=False), gt, align="none")
    assert masked < 0.01
    assert masked < unmasked


def test_rgbd_textureless_frame_fails_softly(frames: list) -> None:
    odo = RgbdOdometry()
    first = odo.track(frames[0].rgb, frames[0].depth, CAM, 0)
    assert first.ok and first.keyframe
    flat = odo.track(np.full_like(frames[1].rgb, 128), np.full_like(frames[1].depth, 0.5), CAM, 1)
    assert not flat.ok
    np.testing.assert_array_equal(flat.T_world_camera, first.T_world_camera)
    assert odo.track(frames[2].rgb, frames[2].depth, CAM, 2).ok  # recovers against the keyframe
    odo.reset()
    assert odo.track(frames[5].rgb, np.zeros_like(frames[5].depth), CAM, 3).ok is False  # no depth: no start


def test_monocular_short_sequence_up_to_scale(frames: list) -> None:
    gt = _gt(frames)
    odo = MonocularOdometry()
    poses, ok = [], []
    for f in frames[:24]:
        result = odo.track(f.rgb, CAM, 0, mask=f.segmentation > 0)
        poses.append(result.T_world_camera)
        ok.append(result.ok)
    ok_arr = np.array(ok)
    # Known limit: on this rotation-dominated path the tracker loses the map after ~2 s (see the report).
    assert ok_arr.sum() >= 10 and not result.metric
    assert ate_m(np.stack(poses)[ok_arr], gt[:24][ok_arr], align="sim3") < 0.01
    assert len(odo.map_points()) > 50


def test_scale_from_a_mostly_static_hint() -> None:
    rng = np.random.default_rng(0)
    n, true_scale = 120, 0.37  # metres per VO unit
    rotations = Rotation.from_rotvec(rng.normal(0, 0.1, (n, 3))).as_matrix()
    translations = np.cumsum(rng.normal(0, 0.05, (n, 3)), axis=0)  # VO units
    hand_world = np.tile([0.1, 0.2, 0.5], (n, 1))
    hand_world[40:60] += np.linspace(0, 0.2, 20)[:, None]  # the hand also reaches for a while
    hint_cam = np.einsum("nji,nj->ni", rotations, hand_world - true_scale * translations)
    scale = estimate_scale(rotations, translations, hint_cam, baseline=10, min_metric_path_m=0.05)
    assert scale == pytest.approx(true_scale, rel=0.02)
    assert estimate_scale(rotations[:5], translations[:5], hint_cam[:5], 10, 0.05) is None

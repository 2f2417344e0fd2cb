"""RGB-D and monocular odometry on a synthetic sequence with ground-truth camera poses."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.metrics import ate_m
from hand_scene_perception.core.odometry import MonocularOdometry, RgbdOdometry, at_tracking_size, estimate_scale
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


def _run_mono(frames: list, odo: MonocularOdometry) -> tuple[np.ndarray, np.ndarray, list]:
    poses, ok, results = [], [], []
    for i, f in enumerate(frames):
        result = odo.track(f.rgb, CAM, i, mask=f.segmentation > 0)
        poses.append(result.T_world_camera)
        ok.append(result.ok)
        results.append(result)
    return np.stack(poses), np.array(ok), results


def test_monocular_tracks_the_whole_sequence_up_to_scale(frames: list) -> None:
    gt = _gt(frames)
    odo = MonocularOdometry()
    poses, ok, results = _run_mono(frames, odo)
    first = int(np.argmax(ok))
    # Rotation-dominated head path: once started, no frame may be lost (the old tracker lost the map after ~2 s).
    assert first <= 8 and ok[first:].all(), [r.status for r in results]
    assert not results[-1].metric and odo.scale is None  # no hand hint given: VO units
    path = np.linalg.norm(np.diff(gt[first:, :3, 3], axis=0), axis=1).sum()
    assert ate_m(poses[ok], gt[ok], align="sim3") < 0.1 * path  # measured ≈ 3 % of an 11 cm path
    assert len(odo.map_points()) > 100 and odo.map_colors().shape == (len(odo.map_points()), 3)


def test_monocular_survives_a_blank_frame_and_resets(frames: list) -> None:
    odo = MonocularOdometry()
    _, ok, _ = _run_mono(frames[:20], odo)
    assert ok[-1]
    before = len(odo.map_points())
    blank = odo.track(np.full_like(frames[20].rgb, 128), CAM, 20)
    assert not blank.ok and len(odo.map_points()) == before  # the map is kept, not dropped
    assert odo.track(frames[21].rgb, CAM, 21, mask=frames[21].segmentation > 0).ok  # relocalised at once
    odo.reset()
    assert len(odo.map_points()) == 0 and not odo.track(frames[22].rgb, CAM, 22).ok  # starts over


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


def test_scale_withheld_when_the_camera_barely_translates() -> None:
    rng = np.random.default_rng(1)
    n, true_scale = 150, 0.37
    rotations = Rotation.from_rotvec(rng.normal(0, 0.1, (n, 3))).as_matrix()
    translations = np.cumsum(rng.normal(0, 0.002, (n, 3)), axis=0)  # ≈ 1 mm per frame: a rotating head
    hand_world = np.array([0.1, 0.2, 0.5]) + rng.normal(0, 0.01, (n, 3))  # hand fit noise / tremor ≫ that
    hint_cam = np.einsum("nji,nj->ni", rotations, hand_world - true_scale * translations)
    assert estimate_scale(rotations, translations, hint_cam, baseline=10, min_metric_path_m=0.0) is None


def test_a_scale_hint_added_after_tracking_equals_one_given_with_the_frame(frames: list) -> None:
    """The ego pipeline tracks while the hands are still being detected and adds their hint afterwards."""
    world_point = np.array([0.05, 0.02, 0.45])  # a resting hand, 45 cm in front of the first camera
    gt = _gt(frames)
    hints = [(inverse_matrices(pose) @ np.append(world_point, 1.0))[:3] for pose in gt]
    together, later = MonocularOdometry(scale_baseline_frames=5), MonocularOdometry(scale_baseline_frames=5)
    results = []
    for i, (f, hint) in enumerate(zip(frames, hints, strict=True)):
        mask = f.segmentation > 0
        expected = together.track(f.rgb, CAM, i, mask=mask, metric_points_cam=hint[None])
        tracked = later.track(f.rgb, CAM, i, mask=mask)
        got = later.add_scale_hint(tracked, hint[None])
        assert (got.ok, got.status, got.metric, got.keyframe) == (expected.ok, expected.status, expected.metric,
                                                                 expected.keyframe)
        np.testing.assert_array_equal(got.T_world_camera, expected.T_world_camera)
        assert later.add_scale_hint(got, hint[None]) is got  # one hint per frame: a second one changes nothing
        results.append(got)
    assert later.scale == together.scale
    with pytest.raises(ValueError, match="latest tracked frame"):
        later.add_scale_hint(results[0], hints[0][None])  # an earlier frame's result


def test_frames_wider_than_the_tracking_width_are_tracked_reduced_with_their_camera() -> None:
    camera = default_camera(1280, 960)
    image, mask, depth = np.zeros((960, 1280, 3), np.uint8), np.zeros((960, 1280), bool), np.ones((960, 1280))
    mask[100:200, 300:500] = True
    small, small_camera, small_mask, small_depth = at_tracking_size(image, camera, mask, depth)
    assert small.shape == (480, 640, 3) and small_mask.shape == small_depth.shape == (480, 640)
    assert small_mask.sum() == pytest.approx(mask.sum() / 4, rel=0.02)
    assert (small_camera.width, small_camera.fx) == (640, pytest.approx(camera.fx / 2))
    narrow = np.zeros((480, 640, 3), np.uint8)
    assert at_tracking_size(narrow, CAM, None)[0] is narrow  # at most the tracking width: untouched


def test_both_trackers_keep_their_accuracy_on_large_frames() -> None:
    """The same kind of sequence at 1280x960, tracked at 640 px width: the bounds of the 640x480 tests hold."""
    camera = default_camera(1280, 960)
    frames = list(SyntheticSequence(1, camera=camera, fps=10.0).frames(30))
    gt = _gt(frames)
    rgbd, mono = RgbdOdometry(), MonocularOdometry()
    rgbd_poses, mono_poses, mono_ok = [], [], []
    for index, frame in enumerate(frames):
        mask = frame.segmentation > 0
        rgbd_poses.append(rgbd.track(frame.rgb, frame.depth, camera, index, mask=mask).T_world_camera)
        result = mono.track(frame.rgb, camera, index, mask=mask)
        mono_poses.append(result.T_world_camera)
        mono_ok.append(result.ok)
    assert ate_m(np.stack(rgbd_poses), gt, align="none") < 0.01
    ok = np.array(mono_ok)
    first = int(np.argmax(ok))
    assert first <= 8 and ok[first:].all()
    path = np.linalg.norm(np.diff(gt[first:, :3, 3], axis=0), axis=1).sum()
    assert ate_m(np.stack(mono_poses)[ok], gt[ok], align="sim3") < 0.1 * path

"""Tests of the synthetic sequence generator: determinism, ground-truth consistency, labels, camera smoothness."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.hand_model.base import HandSide
from hand_scene_perception.core.hand_model.open_model import OpenHandModel
from hand_scene_perception.core.raster import rasterize
from hand_scene_perception.synth.sequence import (
    ARM_LABEL,
    SEGMENTATION_LABELS,
    SyntheticSequence,
    default_camera,
    generate_sequence,
    preview_image,
    save_sequence,
)

CAM = default_camera(200, 150)
NUM = 12


def _to_cam(points_world: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    w2c = np.linalg.inv(c2w)
    return points_world @ w2c[:3, :3].T + w2c[:3, 3]


@pytest.fixture(scope="module")
def model() -> OpenHandModel:
    return OpenHandModel()


@pytest.fixture(scope="module")
def frames(model):
    # Frames spread over the reach/grasp cycle: every 6th frame at 10 fps.
    return list(generate_sequence(11, NUM, num_hands=2, camera=CAM, fps=10.0, model=model))


def test_shapes_dtypes_and_labels(frames):
    f = frames[0]
    assert f.rgb.shape == (150, 200, 3) and f.rgb.dtype == np.uint8
    assert f.depth.shape == (150, 200) and f.depth.dtype == np.float32
    assert f.segmentation.dtype == np.uint8 and set(np.unique(f.segmentation)) <= {0, 1, 2, ARM_LABEL}
    assert f.T_world_camera.shape == (4, 4) and f.camera is CAM
    assert [h.side for h in f.hands] == [HandSide.LEFT, HandSide.RIGHT]
    for h in f.hands:
        assert h.joints_world.shape == h.joints_cam.shape == (21, 3)
        assert h.landmarks_px.shape == (21, 2) and h.pose.shape == (16, 3)
        assert h.vertices_world.shape[1] == 3
    for frame in frames:
        for h in frame.hands:
            assert h.pixel_count == np.sum(frame.segmentation == SEGMENTATION_LABELS[h.side])
    assert sum(h.visible for fr in frames for h in fr.hands) >= NUM  # hands are in view most of the time
    # Forearms come with the hands, from the bottom of the image (egocentric view).
    arm_rows = np.nonzero(np.stack([fr.segmentation == ARM_LABEL for fr in frames]).any(axis=(0, 2)))[0]
    assert len(arm_rows) and arm_rows.max() == CAM.height - 1


def test_same_seed_identical_and_other_seed_different(frames, model):
    again = list(generate_sequence(11, 3, num_hands=2, camera=CAM, fps=10.0, model=model))
    for a, b in zip(frames[:3], again, strict=True):
        np.testing.assert_array_equal(a.rgb, b.rgb)
        np.testing.assert_array_equal(a.depth, b.depth)
        np.testing.assert_array_equal(a.T_world_camera, b.T_world_camera)
        np.testing.assert_array_equal(a.hands[1].joints_world, b.hands[1].joints_world)
    other = next(generate_sequence(12, 1, num_hands=2, camera=CAM, fps=10.0, model=model))
    assert not np.array_equal(other.rgb, frames[0].rgb)
    assert not np.allclose(other.hands[0].joints_world, frames[0].hands[0].joints_world)


def test_ground_truth_is_consistent_with_the_images(frames):
    checked = 0
    for frame in frames:
        c2w = frame.T_world_camera
        for h in frame.hands:
            np.testing.assert_allclose(h.joints_world, h.joints_cam @ c2w[:3, :3].T + c2w[:3, 3], atol=1e-6)
            np.testing.assert_allclose(frame.camera.project(h.joints_cam), h.landmarks_px, atol=1e-6)
            if h.pixel_count < 300:
                continue
            checked += 1
            own = frame.segmentation == h.label
            grown = own.copy()  # fingertips are surface vertices: allow the silhouette's edge
            grown[1:] |= own[:-1]
            grown[:-1] |= own[1:]
            grown[:, 1:] |= own[:, :-1]
            grown[:, :-1] |= own[:, 1:]
            px = np.round(h.landmarks_px[h.joints_in_image]).astype(int)
            assert grown[px[:, 1], px[:, 0]].mean() > 0.7
            # Every hand pixel, lifted to 3D with its depth, lies on the hand's mesh (vertices ~4.5 mm apart).
            ys, xs = np.nonzero(own)
            lifted = frame.camera.unproject(np.stack([xs, ys], 1).astype(float), frame.depth[ys, xs].astype(float))
            dist, _ = cKDTree(_to_cam(h.vertices_world, c2w)).query(lifted)
            assert np.median(dist) < 0.003 and np.quantile(dist, 0.99) < 0.008
            # The scene behind is never nearer than the hand where the hand is drawn.
            assert np.all(frame.depth[own] > 0)
    assert checked >= 4


def test_camera_motion_is_smooth():
    model_free = list(generate_sequence(13, 20, num_hands=1, camera=default_camera(32, 24), fps=30.0))
    poses = np.stack([f.T_world_camera for f in model_free])
    step = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    rel = np.einsum("nji,njk->nik", poses[:-1, :3, :3], poses[1:, :3, :3])
    angle = np.linalg.norm(Rotation.from_matrix(rel).as_rotvec(), axis=1)
    assert step.max() < 0.01 and np.degrees(angle).max() < 1.5
    assert step.max() > 0 and angle.max() > 0
    # Smooth: per-frame changes vary slowly (bounded second differences).
    assert np.abs(np.diff(step)).max() < 0.002


def test_save_and_preview(frames, tmp_path):
    out = save_sequence(frames[:2], tmp_path / "seq")
    gt = np.load(out / "ground_truth.npz")
    assert gt["T_world_camera"].shape == (2, 4, 4) and gt["right_joints_world"].shape == (2, 21, 3)
    depth_mm = np.asarray(Image.open(out / "depth" / "00001.png"))
    np.testing.assert_allclose(depth_mm / 1000.0, frames[1].depth, atol=6e-4)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "segmentation" / "00000.png")), frames[0].segmentation)
    assert preview_image(frames[:2]).size == (3 * 100, 2 * 75)


def test_forearms_are_drawn_but_stay_out_of_the_hand_ground_truth(model):
    sequence = SyntheticSequence(11, num_hands=2, camera=CAM, fps=10.0, model=model)
    frames = list(sequence.frames(6))
    arm_pixels = 0
    for frame in frames:
        c2w = frame.T_world_camera
        w2c = np.linalg.inv(c2w)
        arm = frame.segmentation == ARM_LABEL
        arm_pixels += arm.sum()
        arm_depth = np.full(frame.depth.shape, np.inf)
        for animator, h in zip(sequence.hands, frame.hands, strict=True):
            # Ground truth is the whole hand model (stub behind the wrist included), not the drawn forearm.
            posed = model.forward(
                h.pose[None].astype(np.float32),
                h.shape[None].astype(np.float32),
                side=h.side,
                transl=h.joints_world[:1].astype(np.float32),
            )
            np.testing.assert_allclose(h.vertices_world, posed.vertices[0], atol=1e-5)
            np.testing.assert_allclose(h.joints_world, posed.joints[0], atol=1e-5)
            tube = animator.arm_vertices(h.joints_world[0], Rotation.from_rotvec(h.pose[0]).as_matrix())
            frags = rasterize(tube @ w2c[:3, :3].T + w2c[:3, 3], animator.arm_faces, frame.camera, cull_back=True)
            ys, xs = np.divmod(frags.pixel, frame.camera.width)
            arm_depth[ys, xs] = np.minimum(arm_depth[ys, xs], frags.depth)
        # Forearm pixels carry the forearm's own depth, never a hand's or the scene's.
        np.testing.assert_allclose(frame.depth[arm], arm_depth[arm], rtol=1e-5)
        # Hand pixels are never forearm surface in front of the hand.
        hand = (frame.segmentation == 1) | (frame.segmentation == 2)
        assert np.all(frame.depth[hand] <= arm_depth[hand] + 1e-6)
    assert arm_pixels > 0

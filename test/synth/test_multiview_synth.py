"""Tests of the synthetic multi-view generator: determinism, ground truth per camera, rig constraints, the
render-free path, rendered hands where the truth says so, random resolutions, hand motion volume, oracle
detections per view and argument checks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.ndimage import binary_dilation
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.hand_model.open_model import OpenHandModel
from hand_scene_perception.synth.multiview import RESOLUTIONS, MultiViewSequence
from hand_scene_perception.synth.oracle import oracle_view_detections
from hand_scene_perception.synth.sequence import SEGMENTATION_LABELS

SMALL = {"width": 320, "height": 240}


@pytest.fixture(scope="module")
def model() -> OpenHandModel:
    return OpenHandModel()


@pytest.fixture(scope="module")
def sequence(model) -> MultiViewSequence:
    return MultiViewSequence(4, num_views=3, num_hands=2, fps=10.0, model=model, **SMALL)


@pytest.fixture(scope="module")
def rendered(sequence):
    return list(sequence.frames(8))


def test_same_seed_identical_and_other_seed_different(model, rendered):
    again = MultiViewSequence(4, num_views=3, num_hands=2, fps=10.0, model=model, **SMALL)
    for a, b in zip(again.views, MultiViewSequence(4, 3, 2, fps=10.0, model=model, **SMALL).views, strict=True):
        np.testing.assert_array_equal(a.camera.K, b.camera.K)
        np.testing.assert_array_equal(a.T_world_camera, b.T_world_camera)
    for a, b in zip(again.frames(2), rendered[:2], strict=True):
        for image_a, image_b in zip(a.images, b.images, strict=True):
            np.testing.assert_array_equal(image_a, image_b)
        np.testing.assert_array_equal(a.joints_world[1], b.joints_world[1])
    other = MultiViewSequence(5, num_views=3, num_hands=2, fps=10.0, model=model, **SMALL)
    assert not np.allclose(other.views[0].T_world_camera, again.views[0].T_world_camera)
    assert not np.allclose(next(other.frames(1, render=False)).joints_world[0], rendered[0].joints_world[0])


def test_ground_truth_is_consistent_across_views(sequence, rendered):
    assert [v.name for v in sequence.views] == ["cam0", "cam1", "cam2"]
    for frame in rendered:
        assert frame.stamp == pytest.approx(frame.index / 10.0)
        assert len(frame.images) == len(frame.hands) == len(frame.depths) == len(frame.segmentations) == 3
        assert [s.value for s in frame.sides] == ["left", "right"]
        for view, hands in zip(sequence.views, frame.hands, strict=True):
            w2c = np.linalg.inv(view.T_world_camera)
            np.testing.assert_allclose(view.world_to_camera, w2c, atol=1e-12)
            assert [h.side for h in hands] == list(frame.sides)
            for k, hand in enumerate(hands):
                np.testing.assert_array_equal(hand.joints_world, frame.joints_world[k])
                np.testing.assert_array_equal(hand.vertices_world, frame.vertices_world[k])
                np.testing.assert_allclose(hand.joints_cam, frame.joints_world[k] @ w2c[:3, :3].T + w2c[:3, 3])
                np.testing.assert_allclose(view.camera.project(hand.joints_cam), hand.landmarks_px, atol=1e-9)
                inside = (hand.landmarks_px >= -0.5).all(1) & (hand.landmarks_px[:, 0] <= view.camera.width - 0.5)
                inside &= (hand.landmarks_px[:, 1] <= view.camera.height - 0.5) & (hand.joints_cam[:, 2] > 0)
                np.testing.assert_array_equal(hand.joints_in_image, inside)
                assert hand.pixel_count == np.sum(frame.segmentations[sequence.views.index(view)] == hand.label)


def test_rig_constraints_hold(model):
    for seed in range(3):
        seq = MultiViewSequence(seed, num_views=8, num_hands=seed % 2 + 1, model=model)
        centre = seq.workspace_centre
        directions = []
        for view in seq.views:
            cam, c2w = view.camera, view.T_world_camera
            offset = c2w[:3, 3] - centre
            distance = np.linalg.norm(offset)
            directions.append(offset / distance)
            assert 0.45 <= distance <= 0.9
            assert 10.0 <= np.degrees(np.arcsin(offset[2] / distance)) <= 70.0
            assert cam.fx == cam.fy and (cam.width, cam.height) == (640, 480)
            assert 50.0 <= np.degrees(2 * np.arctan(0.5 * cam.width / cam.fx)) <= 85.0
            assert abs(cam.cx - (cam.width - 1) / 2) <= 4 and abs(cam.cy - (cam.height - 1) / 2) <= 4
            # Looking at the workspace: the optical axis (+z) passes within a few centimetres of the centre.
            axis = c2w[:3, 2]
            miss = np.linalg.norm(np.cross(centre - c2w[:3, 3], axis))
            assert axis @ (centre - c2w[:3, 3]) > 0 and miss < 0.15
            assert not seq.scene.blocks(centre[None], c2w[:3, 3])[0]  # inside the room, clear line of sight
        for a, b in itertools.combinations(directions, 2):
            assert np.degrees(np.arccos(np.clip(a @ b, -1, 1))) >= 25.0 - 1e-9
        assert seq.check_fractions.shape == (8, len(seq.hands)) and seq.check_fractions.min() >= 0.8
        # Over the first 100 frames every camera sees every hand most of the time.
        frames = list(seq.frames(100, render=False))
        seen = np.array([[[h.visible for h in hands] for hands in f.hands] for f in frames]).mean(0)
        assert seen.min() >= 0.6


def test_render_free_path_has_the_same_ground_truth(sequence, rendered):
    agree = total = 0
    for a, b in zip(sequence.frames(len(rendered), render=False), rendered, strict=True):
        assert all(x is None for x in (*a.images, *a.depths, *a.segmentations))
        for hands_a, hands_b in zip(a.hands, b.hands, strict=True):
            for ha, hb in zip(hands_a, hands_b, strict=True):
                for key in ("joints_world", "joints_cam", "vertices_world", "pose", "landmarks_px", "joints_in_image"):
                    np.testing.assert_array_equal(getattr(ha, key), getattr(hb, key))
                assert ha.pixel_count == 0
                agree += ha.visible == hb.visible
                total += 1
    # The geometric visibility rule agrees with the rendered pixel counts almost always.
    assert agree / total >= 0.9


def test_rendered_hands_are_where_the_truth_says(sequence, rendered):
    checked = 0
    for frame in rendered:
        for view, hands, image, depth, seg in zip(
            sequence.views, frame.hands, frame.images, frame.depths, frame.segmentations, strict=True
        ):
            cam = view.camera
            assert image.shape == (cam.height, cam.width, 3) and image.dtype == np.uint8
            for hand in hands:
                assert hand.visible == (hand.pixel_count >= sequence.min_visible_pixels)
                if hand.pixel_count < 300:
                    continue
                checked += 1
                own = seg == SEGMENTATION_LABELS[hand.side]
                grown = binary_dilation(own)  # fingertips are surface vertices: allow the silhouette's edge
                px = np.round(hand.landmarks_px[hand.joints_in_image]).astype(int)
                assert grown[px[:, 1], px[:, 0]].mean() > 0.6
                # Hand pixels lifted with their depth lie on the hand's mesh in this camera's frame.
                ys, xs = np.nonzero(own)
                lifted = cam.unproject(np.stack([xs, ys], 1).astype(float), depth[ys, xs].astype(float))
                w2c = view.world_to_camera
                dist, _ = cKDTree(hand.vertices_world @ w2c[:3, :3].T + w2c[:3, 3]).query(lifted)
                assert np.median(dist) < 0.003
    assert checked >= 10


def test_random_resolution_gives_each_view_its_own_size(model):
    sizes = set()
    for seed in range(3):
        seq = MultiViewSequence(seed, num_views=4, model=model, random_resolution=True)
        frame = next(seq.frames(1))
        for view, image, hands in zip(seq.views, frame.images, frame.hands, strict=True):
            size = (view.camera.width, view.camera.height)
            assert size in RESOLUTIONS and image.shape == (size[1], size[0], 3)
            assert abs(view.camera.cx - (size[0] - 1) / 2) <= 4
            sizes.add(size)
            assert hands[0].joints_in_image.sum() >= 8  # hands are seen at every size
    assert len(sizes) >= 2


def test_hand_motion_sweeps_a_volume_in_many_orientations(model):
    for seed in range(4):
        frames = list(MultiViewSequence(seed, num_views=2, model=model).frames(100, render=False))
        wrist = np.stack([f.joints_world[0][0] for f in frames])
        spread = np.linalg.svd(wrist - wrist.mean(0), compute_uv=False) / np.sqrt(len(wrist))
        assert spread[2] > 0.01  # not a plane: > 1 cm standard deviation along the flattest axis
        rots = Rotation.from_rotvec(np.stack([f.hands[0][0].pose[0] for f in frames]))
        assert np.degrees((rots.mean().inv() * rots).magnitude()).max() > 15.0


def test_oracle_view_detections(sequence, rendered):
    frame = next(f for f in rendered if all(h.visible for hands in f.hands for h in hands))
    for view_index, hands in enumerate(frame.hands):
        dets = oracle_view_detections(frame, view_index, 0.0, np.random.default_rng(0))
        assert [d.side for d in dets] == [h.side for h in hands]
        for det, hand in zip(dets, hands, strict=True):
            np.testing.assert_array_equal(det.landmarks_px, hand.landmarks_px)
            np.testing.assert_allclose(det.world_landmarks_m, hand.joints_cam - hand.joints_cam.mean(0), atol=1e-12)
    noisy = oracle_view_detections(frame, 1, 2.0, np.random.default_rng(3))
    err = np.stack([d.landmarks_px for d in noisy]) - np.stack([h.landmarks_px for h in frame.hands[1]])
    assert 1.0 < np.std(err) < 3.0
    hidden = frame.hands[2][0].__class__(**{**frame.hands[2][0].__dict__, "visible": False})
    partial = frame.__class__(**{**frame.__dict__, "hands": (*frame.hands[:2], (hidden, frame.hands[2][1]))})
    assert [d.side for d in oracle_view_detections(partial, 2, 1.0, np.random.default_rng(0))] == [frame.sides[1]]
    with pytest.raises(ValueError, match="view_index"):
        oracle_view_detections(frame, 3, 1.0, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_views": 1}, "num_views"),
        ({"num_views": 9}, "num_views"),
        ({"num_views": 2.5}, "num_views"),
        ({"num_views": "4"}, "num_views"),
        ({"num_hands": 3}, "num_hands"),
        ({"width": 0}, "width"),
        ({"fps": 0.0}, "fps"),
        ({"min_view_fraction": 1.5}, "min_view_fraction"),
    ],
)
def test_bad_arguments_are_refused(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiViewSequence(0, model=model, **kwargs)

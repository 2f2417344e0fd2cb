"""The overlay drawing: joints and bones land where the camera projects them, meshes are blended inside their
silhouette with the nearer hand in front, nothing is drawn without hands, and bad input says what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.core.hand_model import create_hand_model
from hand_scene_perception.core.hand_model.side import HandSide
from hand_scene_perception.core.hand_model.wrist_frame import wrist_frame_from_joints
from hand_scene_perception.core.hand_state import HandState
from hand_scene_perception.core.transforms import transform_points
from hand_scene_perception.pipelines.ego_outputs import SIDE_RGB
from hand_scene_perception.pipelines.overlay import BONE_RGB, draw_overlay

WIDTH, HEIGHT = 320, 240
GREY = 90
CAMERA = PinholeCamera.from_intrinsics(260.0, 260.0, 159.5, 119.5, WIDTH, HEIGHT)


@pytest.fixture(scope="module")
def model():
    return create_hand_model("open")


@pytest.fixture(scope="module")
def faces(model):
    return {side: model.faces(side) for side in HandSide}


def _hand(model, side: HandSide, distance_m: float, with_mesh: bool = True) -> HandState:
    """The rest hand, palm toward the camera, its wrist frame ``distance_m`` in front of it."""
    out = model.forward(np.zeros((16, 3), np.float32), side=side)
    joints, vertices = out.joints[0].astype(np.float64), out.vertices[0].astype(np.float64)
    to_camera = np.linalg.inv(wrist_frame_from_joints(joints, side))
    to_camera[:3, 3] += (-0.06, 0.0, distance_m)  # (the wrist frame's x runs along the hand: centre it)
    return HandState(track_id=0, side=side, confidence=1.0, joints=transform_points(to_camera, joints),
                     wrist_pose=np.eye(4), model_name=model.name, model_pose=np.zeros((16, 3)),
                     model_shape=np.zeros(model.num_shape_params),
                     vertices=transform_points(to_camera, vertices) if with_mesh else None)  # fmt: skip


def _grey() -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), GREY, np.uint8)


def _pixels(points: np.ndarray, camera: PinholeCamera = CAMERA) -> np.ndarray:
    return np.rint(camera.project(points)).astype(int)


def test_joints_and_bones_drawn_where_the_camera_projects_them(model, faces):
    hand = _hand(model, HandSide.RIGHT, 0.35, with_mesh=False)
    out = draw_overlay(_grey(), CAMERA, [hand], faces)
    pixels = _pixels(hand.joints)
    assert np.all((pixels >= 0) & (pixels < (WIDTH, HEIGHT)))  # the whole hand is in view
    for u, v in pixels:
        assert tuple(out[v, u]) == SIDE_RGB[HandSide.RIGHT]
    # Halfway along wrist -> middle knuckle (a long bone, away from the joint dots) the bone is drawn.
    u, v = _pixels((hand.joints[0] + hand.joints[9]) / 2)
    assert tuple(out[v, u]) == BONE_RGB
    # Thin lines and dots only, nowhere else (the image's corners are far from the hand).
    changed = np.any(out != GREY, axis=2)
    assert changed.mean() < 0.05 and not changed[:30, :30].any() and not changed[-30:, -30:].any()


def test_mesh_blended_inside_its_silhouette_and_the_nearer_hand_in_front(model, faces):
    right = _hand(model, HandSide.RIGHT, 0.40)
    out = draw_overlay(_grey(), CAMERA, [right], faces).astype(int)
    u, v = _pixels(right.vertices.mean(axis=0))  # inside the palm, between the joint dots
    red = out[v, u]
    assert red[0] > GREY + 20 and red[2] < GREY, red  # tinted toward the right hand's red
    changed = np.any(out != GREY, axis=2)
    assert 0.02 < changed.mean() < 0.5
    # A left hand at the same place, nearer: its blue covers the red there (one z-buffer for all hands).
    left = _hand(model, HandSide.LEFT, 0.30)
    both = draw_overlay(_grey(), CAMERA, [right, left], faces).astype(int)
    u, v = _pixels(left.vertices.mean(axis=0))
    assert both[v, u, 2] > both[v, u, 0], both[v, u]


def test_no_hands_draw_nothing_and_the_input_is_never_changed(model, faces):
    image = _grey()
    out = draw_overlay(image, CAMERA, [], faces)
    assert out is not image and np.array_equal(out, image)
    draw_overlay(image, CAMERA, [_hand(model, HandSide.RIGHT, 0.35)], faces)
    assert np.all(image == GREY)
    # Grey (H, W) input is taken as an image too (core/images.as_rgb8).
    assert draw_overlay(image[:, :, 0], CAMERA, [], faces).shape == (HEIGHT, WIDTH, 3)


def test_hands_behind_or_beside_the_camera_draw_nothing(model, faces):
    behind = _hand(model, HandSide.RIGHT, -0.35)
    beside = _hand(model, HandSide.LEFT, 0.35)
    beside.joints[:, 0] += 3.0  # metres to the side: far outside the image
    beside.vertices[:, 0] += 3.0
    out = draw_overlay(_grey(), CAMERA, [behind, beside], faces)
    assert np.all(out == GREY)


def test_a_distorted_camera_draws_joints_through_its_lens_model(model, faces):
    camera = PinholeCamera.from_intrinsics(260.0, 260.0, 159.5, 119.5, WIDTH, HEIGHT, d=(-0.4, 0.1, 0.0, 0.0, 0.0))
    hand = _hand(model, HandSide.LEFT, 0.25)
    out = draw_overlay(_grey(), camera, [hand], faces)
    distorted, pinhole = _pixels(hand.joints, camera), _pixels(hand.joints)
    assert np.abs(distorted - pinhole).max() > 4  # the lens moves the fingertips visibly
    assert np.all((distorted >= 0) & (distorted < (WIDTH, HEIGHT)))
    for u, v in distorted:
        assert tuple(out[v, u]) == SIDE_RGB[HandSide.LEFT]


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (np.zeros((HEIGHT, WIDTH, 3), np.float32), "uint8 or uint16"),
        (np.zeros((HEIGHT, WIDTH, 5), np.uint8), "(H, W, 3)"),
        (np.zeros((HEIGHT // 2, WIDTH, 3), np.uint8), "the camera 320x240"),
    ],
)
def test_bad_images_are_refused(model, faces, image, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        draw_overlay(image, CAMERA, [_hand(model, HandSide.RIGHT, 0.35)], faces)


def test_bad_faces_and_alpha_are_refused(model, faces):
    hand = _hand(model, HandSide.RIGHT, 0.35)
    broken = {HandSide.RIGHT: faces[HandSide.RIGHT] + len(hand.vertices)}
    with pytest.raises(ValueError, match="faces index vertex"):
        draw_overlay(_grey(), CAMERA, [hand], broken)
    with pytest.raises(ValueError, match="mesh_alpha"):
        draw_overlay(_grey(), CAMERA, [hand], faces, mesh_alpha=1.5)
    # A side without faces still gets its skeleton.
    out = draw_overlay(_grey(), CAMERA, [hand], {})
    u, v = _pixels(hand.joints[0])
    assert tuple(out[v, u]) == SIDE_RGB[HandSide.RIGHT]

"""Per-video avatars: crop views with their own cameras, a fit that learns and resumes exactly, pose refinement
from the image, and avatar files that load safely or are refused with the reason."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.core.hand_model import HandSide, create_hand_model
from hand_scene_perception.gaussian.avatar_file import AVATAR_VERSION, load_avatar, save_avatar
from hand_scene_perception.gaussian.per_video import (
    AvatarFitConfig,
    HandView,
    crop_view,
    fit_avatar,
    image_loss,
    load_checkpoint,
    new_avatar,
    posed_vertices,
    refine_view_pose,
    save_checkpoint,
    split_views,
    start_fit,
)
from hand_scene_perception.gaussian.raster import render_gaussians

MODEL = create_hand_model("open")
SIDE = HandSide.RIGHT
CAMERA = PinholeCamera.from_intrinsics(500.0, 500.0, 160.0, 120.0, 320, 240)
CROP = 40


def _pose(bend: float) -> np.ndarray:
    pose = np.zeros((16, 3))
    pose[0] = [np.pi, 0.0, 0.0]  # palm toward the camera
    pose[[2, 5, 8]] = [0.0, 0.0, bend]
    return pose


def _teacher() -> torch.nn.Module:
    """An avatar with a random (seeded) appearance: the ground truth the fits below must learn."""
    teacher = new_avatar(MODEL, SIDE)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        teacher.color_mlp[2].weight.copy_(torch.randn(teacher.color_mlp[2].weight.shape, generator=generator))
    return teacher


def _views(teacher, count: int, translation_error: np.ndarray | None = None) -> list[HandView]:
    """Views whose images are the teacher's renders (mask: its coverage); the given translations are off by
    ``translation_error``."""
    views = []
    for index in range(count):
        translation = np.array([0.01 * index - 0.02, 0.0, 0.45])
        image = np.zeros((CAMERA.height, CAMERA.width, 3), np.uint8)
        view = crop_view(index, image, CAMERA, SIDE, _pose(0.2 * index), np.zeros(10), translation, MODEL,
                         crop_size=CROP)  # fmt: skip
        with torch.no_grad():
            out = render_gaussians(teacher(posed_vertices(MODEL, view)), view.camera, cull_back_facing=True)
        given = translation if translation_error is None else translation + translation_error
        views.append(dataclasses.replace(view, image=out.image.float().numpy(), mask=out.alpha.numpy() > 0.5,
                                         translation=given))  # fmt: skip
    return views


@pytest.mark.parametrize("size", [64, 20])  # 20: shrunk over twice, through the image pyramid
def test_the_crop_camera_sees_the_image_where_the_crop_holds_it(size):
    translation = np.array([0.03, -0.02, 0.5])
    vertices = np.asarray(MODEL.forward(_pose(0.3).astype(np.float32), side=SIDE,
                                        transl=translation.astype(np.float32)).vertices[0], np.float64)  # fmt: skip
    u, v = np.round(CAMERA.project(vertices[100])).astype(int)
    image = np.zeros((CAMERA.height, CAMERA.width, 3), np.uint8)
    image[v - 3 : v + 4, u - 3 : u + 4] = 255  # a bright 7x7 patch centred on one vertex's pixel
    view = crop_view(0, image, CAMERA, SIDE, _pose(0.3), np.zeros(10), translation, MODEL, crop_size=size)
    assert view.image.shape == (size, size, 3) and view.mask.shape == (size, size)
    weights = view.image.sum(axis=2)
    rows, cols = np.mgrid[0:size, 0:size]
    centroid = np.array([(cols * weights).sum(), (rows * weights).sum()]) / weights.sum()
    np.testing.assert_allclose(centroid, view.camera.project(_ray(u, v)), atol=0.25)  # the patch's centre
    # no segmentation given: the mask is the mesh's silhouette, inside the crop and most of its centre
    middle = slice(size // 2 - size // 8, size // 2 + size // 8)
    assert view.mask[middle, middle].mean() > 0.5 and 0.05 < view.mask.mean() < 0.9


def _ray(u: float, v: float) -> np.ndarray:
    """A point on pixel (u, v)'s ray."""
    return np.array([(u - CAMERA.cx) / CAMERA.fx, (v - CAMERA.cy) / CAMERA.fy, 1.0])


def test_hands_that_cannot_be_cropped_are_skipped_or_refused():
    image = np.zeros((CAMERA.height, CAMERA.width, 3), np.uint8)
    behind = crop_view(0, image, CAMERA, SIDE, _pose(0.0), np.zeros(10), np.array([0.0, 0.0, -0.3]), MODEL)
    nan_pose = _pose(0.0)
    nan_pose[3, 1] = np.nan
    assert behind is None
    assert crop_view(0, image, CAMERA, SIDE, nan_pose, np.zeros(10), np.array([0.0, 0.0, 0.5]), MODEL) is None
    tiny = crop_view(0, image, CAMERA, SIDE, _pose(0.0), np.zeros(10), np.array([0.0, 0.0, 60.0]), MODEL)
    assert tiny is None  # a few pixels wide: nothing to learn from
    distorted = PinholeCamera.from_intrinsics(500.0, 500.0, 160.0, 120.0, 320, 240, d=[0.1, 0, 0, 0, 0],
                                              distortion_model="plumb_bob")  # fmt: skip
    with pytest.raises(ValueError, match="undistort"):
        crop_view(0, image, distorted, SIDE, _pose(0.0), np.zeros(10), np.array([0.0, 0.0, 0.5]), MODEL)


def test_the_fit_learns_the_appearance_and_a_resumed_fit_continues_exactly(tmp_path):
    teacher = _teacher()
    views = _views(teacher, 4)
    config = AvatarFitConfig(steps=24, refine_pose=False, network_lr=2e-2, embedding_lr=5e-2)
    with torch.no_grad():
        untrained = float(np.mean([float(image_loss(new_avatar(MODEL, SIDE), posed_vertices(MODEL, v), v, config))
                                   for v in views]))  # fmt: skip
    straight = fit_avatar(MODEL, views, config)
    with torch.no_grad():
        learnt = float(np.mean([float(image_loss(straight.avatar, posed_vertices(MODEL, v), v, config))
                                for v in views]))  # fmt: skip
    assert learnt < 0.7 * untrained

    # stopped at step 12 (Ctrl-C), saved, resumed: the same fit as the uninterrupted one
    def interrupt(state) -> None:
        if state.step == 12:
            raise KeyboardInterrupt

    halfway = start_fit(MODEL, SIDE, len(views), config)
    with pytest.raises(KeyboardInterrupt):
        fit_avatar(MODEL, views, config, halfway, interrupt)
    path = tmp_path / "right.fit.pt"
    save_checkpoint(path, halfway, SIDE, MODEL.name, config, views)
    resumed = fit_avatar(MODEL, views, config, load_checkpoint(path, MODEL, SIDE, views, config))
    # (equal up to float rounding: the CPU's parallel reductions need not add in the same order twice)
    assert resumed.step == 24 and resumed.losses[:12] == halfway.losses
    np.testing.assert_allclose(resumed.losses, straight.losses, rtol=1e-4)
    with torch.no_grad():
        for view in views:
            vertices = posed_vertices(MODEL, view)
            np.testing.assert_allclose(float(image_loss(resumed.avatar, vertices, view, config)),
                                       float(image_loss(straight.avatar, vertices, view, config)), rtol=1e-3)
    # a resume must be the same fit: other settings, frames or side are refused with what differs
    with pytest.raises(ValueError, match=r"other settings: steps 24 \(now 30\)"):
        load_checkpoint(path, MODEL, SIDE, views, dataclasses.replace(config, steps=30))
    with pytest.raises(ValueError, match=r"fitted on other frames of the hand \(4 views, this input gives 3\)"):
        load_checkpoint(path, MODEL, SIDE, views[:3], config)
    with pytest.raises(ValueError, match="open_hand_v1 right hand, not a open_hand_v1 left"):
        load_checkpoint(path, MODEL, HandSide.LEFT, views, config)


def test_the_image_moves_a_misplaced_mesh_back():
    teacher = _teacher()
    error = np.array([0.006, -0.004, 0.0])
    view = _views(teacher, 1, translation_error=error)[0]
    config = AvatarFitConfig(translation_lr=1e-3, translation_prior_weight=0.0)
    _, translation = refine_view_pose(MODEL, teacher, view, 40, config)
    remaining = error + translation.numpy()
    assert np.linalg.norm(remaining[:2]) < 0.3 * np.linalg.norm(error[:2])


def test_pose_corrections_are_learnt_only_when_asked():
    teacher = _teacher()
    views = _views(teacher, 3, translation_error=np.array([0.004, 0.0, 0.0]))
    kept = fit_avatar(MODEL, views, AvatarFitConfig(steps=6, refine_pose=False))
    assert all(not torch.any(t) for t in kept.corrections.translation)
    refined = fit_avatar(MODEL, views, AvatarFitConfig(steps=6, refine_pose=True, pose_start=0.0))
    assert all(torch.any(t) for t in refined.corrections.translation)


def test_held_out_views_are_spread_over_the_video():
    views = list(range(25))
    train, held = split_views(views, 10)
    assert held == [5, 15] and len(train) == 23 and not set(train) & set(held)
    assert split_views(views, 0) == (views, [])
    with pytest.raises(ValueError, match="held_out_every"):
        split_views(views, 1)


def test_an_avatar_file_loads_back_to_the_same_hand(tmp_path):
    teacher = _teacher()
    path = tmp_path / "right.avatar.pt"
    save_avatar(path, teacher, SIDE)
    loaded, side = load_avatar(path, MODEL)
    assert side is SIDE
    vertices = posed_vertices(MODEL, _views(teacher, 1)[0])
    with torch.no_grad():
        torch.testing.assert_close(loaded(vertices).colors, teacher(vertices).colors, rtol=0, atol=0)


def test_unusable_avatar_files_are_refused_with_the_reason(tmp_path):
    teacher = _teacher()
    good = tmp_path / "right.avatar.pt"
    save_avatar(good, teacher, SIDE)
    saved = torch.load(good, weights_only=True)
    cases = {
        "version": {**saved, "version": AVATAR_VERSION + 1},
        "hand model": {**saved, "model_name": "mano"},
        "mesh of": {**saved, "num_faces": saved["num_faces"] - 1},
        "sampling": {**saved, "weights": {**saved["weights"], "barycentric": saved["weights"]["barycentric"].flip(-1)}},
        "do not fit": {**saved, "weights": {k: v for k, v in saved["weights"].items() if k != "color_mlp.0.weight"}},
        "not an avatar": {"something": torch.zeros(3)},
    }
    for reason, content in cases.items():
        path = tmp_path / "bad.avatar.pt"
        torch.save(content, path)
        with pytest.raises(ValueError, match=reason):
            load_avatar(path, MODEL)
    truncated = tmp_path / "truncated.avatar.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ValueError, match="cannot be read as an avatar file"):
        load_avatar(truncated, MODEL)
    with pytest.raises(FileNotFoundError):
        load_avatar(tmp_path / "missing.avatar.pt", MODEL)
    load_avatar(good, MODEL)  # the good file is untouched by all of this

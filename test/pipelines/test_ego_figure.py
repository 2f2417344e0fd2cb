"""The 3D scene view: meshes and points occlude each other correctly and land where the view projects them."""

from __future__ import annotations

import numpy as np
import pytest

from hand_scene_perception.core.hand_model import create_hand_model
from hand_scene_perception.core.hand_model.side import HandSide
from hand_scene_perception.pipelines.ego_figure import HandMesh, render_scene_view


@pytest.fixture(scope="module")
def hand_mesh():
    model = create_hand_model("open")
    out = model.forward(np.zeros((16, 3), np.float32), np.zeros(model.num_shape_params, np.float32),
                        side=HandSide.RIGHT)
    return out.vertices[0], out.faces


def _wall(z: float) -> tuple[np.ndarray, np.ndarray]:
    """A green wall of points facing the camera at depth z, 2 m x 2 m, 1 cm spacing."""
    grid = np.stack(np.meshgrid(np.arange(-1, 1, 0.01), np.arange(-1, 1, 0.01)), -1).reshape(-1, 2)
    points = np.column_stack([grid, np.full(len(grid), z)])
    return points, np.tile([[20, 200, 40]], (len(points), 1)).astype(np.uint8)


def _count(image, rgb_test) -> int:
    array = np.asarray(image).astype(int)
    return int(rgb_test(array[..., 0], array[..., 1], array[..., 2]).sum())


def _red(r, g, b):
    return (r > 1.5 * g) & (r > 1.5 * b) & (r > 60)


def _green(r, g, b):
    return (g > 150) & (r < 60)


def test_hand_in_front_of_the_wall_is_drawn_and_behind_it_is_hidden(hand_mesh):
    vertices, faces = hand_mesh
    points, colors = _wall(1.5)
    poses = np.eye(4)[None]
    in_front = HandMesh(vertices - vertices.mean(0) + [0, 0, 0.8], faces, HandSide.RIGHT)
    behind = HandMesh(vertices - vertices.mean(0) + [0, 0, 2.0], faces, HandSide.RIGHT)
    shown = render_scene_view(points, colors, poses, [in_front], size=(320, 240))
    hidden = render_scene_view(points, colors, poses, [behind], size=(320, 240))
    assert shown.size == (320, 240)
    assert _count(shown, _red) > 100  # the hand's pixels
    assert _count(hidden, _red) < 5  # behind the wall: occluded by the cloud
    assert _count(shown, _green) > 5000 and _count(hidden, _green) > _count(shown, _green)


def test_empty_map_and_paths_draw_without_error(hand_mesh):
    vertices, faces = hand_mesh
    poses = np.stack([np.eye(4)] * 3)
    poses[:, 0, 3] = [0.0, 0.1, 0.2]
    image = render_scene_view(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), poses,
                              [HandMesh(vertices + [0, 0, 0.5], faces, HandSide.LEFT)],
                              paths=[(HandSide.LEFT, np.array([[0, 0, 0.5], [0.05, 0, 0.5], [0.1, 0, 0.5]]))],
                              size=(320, 240), title="t")
    blue = _count(image, lambda r, g, b: (b > 1.5 * r) & (b > 80))
    assert blue > 50


def test_no_camera_pose_is_an_error():
    with pytest.raises(ValueError, match="camera pose"):
        render_scene_view(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros((0, 4, 4)))

"""Tests of the procedural scene: determinism, ray-cast depth against known planes, mesh export, GT samples."""

from __future__ import annotations

import numpy as np

from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.core.raster import look_at, render_mesh
from hand_scene_perception.synth.scene import make_scene, render_scene

CAM = PinholeCamera.from_intrinsics(fx=90.0, fy=90.0, cx=79.5, cy=59.5, width=160, height=120)
W2C = look_at(np.array([0.1, -0.6, 1.25]), np.array([0.0, 0.1, 0.7]))
LIGHT = np.array([0.3, -0.2, 1.0])


def test_same_seed_same_scene_and_different_seed_differs():
    a, b, c = make_scene(3), make_scene(3), make_scene(4)
    np.testing.assert_array_equal(a.textures, b.textures)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    ra, rb = render_scene(a, CAM, W2C, LIGHT), render_scene(b, CAM, W2C, LIGHT)
    np.testing.assert_array_equal(ra.albedo, rb.albedo)
    np.testing.assert_array_equal(ra.depth, rb.depth)
    assert not np.array_equal(a.textures, c.textures)


def test_depth_matches_the_known_plane_of_each_surface():
    scene = make_scene(5)
    out = render_scene(scene, CAM, W2C, LIGHT)
    assert out.depth.dtype == np.float32 and out.albedo.dtype == np.uint8 and out.surface.dtype == np.int16
    ys, xs = np.nonzero(out.surface >= 0)
    pts_cam = CAM.unproject(np.stack([xs, ys], 1).astype(float), out.depth[ys, xs].astype(float))
    c2w = np.linalg.inv(W2C)
    pts = pts_cam @ c2w[:3, :3].T + c2w[:3, 3]
    names = scene.surface_names()
    for index in np.unique(out.surface[ys, xs]):
        quad = scene.quads[index]
        sel = out.surface[ys, xs] == index
        # Every pixel labelled with a surface lies on that surface's plane (floor z = 0, walls, table top...).
        np.testing.assert_allclose((pts[sel] - quad.origin) @ quad.normal, 0.0, atol=2e-4, err_msg=names[index])
    floor = names.index("floor")
    assert np.any(out.surface == floor), "the test view should see the floor"
    np.testing.assert_allclose(pts[out.surface[ys, xs] == floor][:, 2], 0.0, atol=2e-4)


def test_ray_cast_agrees_with_the_triangle_mesh_rasteriser():
    scene = make_scene(6)
    fast = render_scene(scene, CAM, W2C, LIGHT)
    verts, faces, colors = scene.to_mesh(cell_m=0.25)
    assert colors.shape == verts.shape and colors.min() >= 0 and colors.max() <= 1
    slow = render_mesh(verts, faces, CAM, world_to_camera=W2C)
    both = (fast.depth > 0) & slow.mask
    assert both.mean() > 0.95
    close = np.abs(fast.depth[both] - slow.depth[both]) < 1e-3
    assert close.mean() > 0.97  # only silhouette pixels may pick different surfaces


def test_surface_samples_lie_on_their_surfaces_with_unit_normals():
    scene = make_scene(7)
    points, normals = scene.sample_surface(2000, seed=1)
    assert points.shape == normals.shape == (2000, 3)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0)
    np.testing.assert_array_equal(points, scene.sample_surface(2000, seed=1)[0])
    on_any = np.zeros(len(points), bool)
    for quad in scene.quads:
        rel = points - quad.origin
        s = rel @ quad.edge_u / (quad.edge_u @ quad.edge_u)
        t = rel @ quad.edge_v / (quad.edge_v @ quad.edge_v)
        on = (np.abs(rel @ quad.normal) < 1e-9) & (s >= -1e-9) & (s <= 1 + 1e-9) & (t >= -1e-9) & (t <= 1 + 1e-9)
        on_any |= on & np.all(np.isclose(normals, quad.normal), axis=1)
    assert on_any.all()


def test_closed_room_adds_walls_around_the_same_scene_and_blocks_sight_lines():
    open_room, closed = make_scene(8), make_scene(8, closed=True)
    np.testing.assert_array_equal(open_room.textures, closed.textures)
    assert closed.surface_names()[: len(open_room.quads)] == open_room.surface_names()
    assert set(closed.surface_names()) - set(open_room.surface_names()) == {"wall_front", "wall_side2", "ceiling"}
    for a, b in zip(open_room.quads, closed.quads, strict=False):
        np.testing.assert_array_equal(a.origin, b.origin)
    # Every wall and the ceiling face the room: a point above the table sees all of them from inside.
    inside = np.array([0.0, 0.0, 1.2])
    for quad in closed.quads:
        if quad.name.startswith(("wall", "ceiling")):
            assert quad.normal @ (inside - quad.origin) > 0
    # Sight lines: blocked through the table top and through a wall, clear above the table.
    top = closed.table_top_z
    points = np.array([[0.0, 0.1, top - 0.05], [0.0, 5.0, 1.0], [0.0, 0.1, top + 0.1]])
    np.testing.assert_array_equal(closed.blocks(points, inside), [True, True, False])
    # A point on a surface is not hidden by that surface.
    assert not closed.blocks(np.array([[0.0, 0.1, top]]), inside)[0]

"""Tests of the numpy rasteriser: projection, depth, masks, occlusion and shading."""

from __future__ import annotations

import numpy as np

from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.core.raster import look_at, rasterize, render_mesh

CAM = PinholeCamera(fx=100.0, fy=120.0, cx=32.0, cy=24.0, width=64, height=48)


def _project(p: np.ndarray) -> np.ndarray:
    return np.array([CAM.fx * p[0] / p[2] + CAM.cx, CAM.fy * p[1] / p[2] + CAM.cy])


def _inside(px: np.ndarray, tri: np.ndarray) -> bool:
    def edge(a, b, p):
        return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])

    e = [edge(tri[0], tri[1], px), edge(tri[1], tri[2], px), edge(tri[2], tri[0], px)]
    return all(x > 1e-9 for x in e) or all(x < -1e-9 for x in e)


def test_triangle_lands_on_projected_pixels_with_its_depth():
    verts = np.array([[-0.05, -0.04, 1.0], [0.06, -0.03, 1.0], [0.0, 0.05, 1.0]])
    out = render_mesh(verts, np.array([[0, 1, 2]]), CAM, colors=(1.0, 0.0, 0.0), background=(0, 0, 255))
    assert out.rgb.shape == (48, 64, 3) and out.rgb.dtype == np.uint8
    tri2d = np.array([_project(p) for p in verts])
    ys, xs = np.mgrid[0:48, 0:64]
    expected = np.array([_inside(np.array([x, y]), tri2d) for x, y in zip(xs.ravel(), ys.ravel(), strict=True)])
    got = out.mask.ravel()
    assert np.sum(expected & ~got) == 0 and np.sum(got & ~expected) <= 2  # boundary pixels may go either way
    np.testing.assert_allclose(out.depth[out.mask], 1.0, atol=1e-6)
    assert np.all(out.depth[~out.mask] == 0)
    assert np.all(out.rgb[~out.mask] == [0, 0, 255])
    assert np.all(out.rgb[out.mask][:, 0] > 0) and np.all(out.rgb[out.mask][:, 1:] == 0)
    assert np.all(out.face_index[out.mask] == 0) and np.all(out.face_index[~out.mask] == -1)


def test_depth_is_perspective_correct_on_a_slanted_triangle():
    verts = np.array([[-0.3, -0.3, 1.0], [0.3, -0.3, 1.0], [0.0, 0.3, 3.0]])
    out = render_mesh(verts, np.array([[0, 1, 2]]), CAM)
    ys, xs = np.nonzero(out.mask)
    # Back-project each pixel ray and intersect with the triangle's plane: z must match.
    n = np.cross(verts[1] - verts[0], verts[2] - verts[0])
    rays = np.stack([(xs - CAM.cx) / CAM.fx, (ys - CAM.cy) / CAM.fy, np.ones_like(xs, dtype=float)], 1)
    z = (n @ verts[0]) / (rays @ n)
    np.testing.assert_allclose(out.depth[ys, xs], z, rtol=1e-5)


def test_nearer_triangle_occludes_farther_one_in_either_order():
    near = np.array([[-0.2, -0.2, 1.0], [0.2, -0.2, 1.0], [0.0, 0.2, 1.0]])
    far = near * [3, 3, 2]
    verts = np.concatenate([far, near])
    colors = np.array([[0, 1, 0]] * 3 + [[1, 0, 0]] * 3, dtype=float)
    for faces in (np.array([[0, 1, 2], [3, 4, 5]]), np.array([[3, 4, 5], [0, 1, 2]])):
        out = render_mesh(verts, faces, CAM, colors=colors, ambient=1.0)
        centre = (24, 32)
        assert out.depth[centre] == np.float32(1.0)
        assert tuple(out.rgb[centre]) == (255, 0, 0)


def test_lambertian_shading_and_camera_pose():
    # A square facing the camera, lit head-on vs. grazing.
    verts = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], dtype=float)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    world_to_cam = look_at(np.array([0.0, 0.0, 3.0]), np.zeros(3), up=np.array([0.0, 1.0, 0.0]))
    lit = render_mesh(verts, faces, CAM, world_to_cam, colors=(1, 1, 1), light_dir=(0, 0, -1), ambient=0.2)
    grazing = render_mesh(verts, faces, CAM, world_to_cam, colors=(1, 1, 1), light_dir=(1, 0, 0), ambient=0.2)
    assert lit.mask.all()
    np.testing.assert_allclose(lit.depth, 3.0, atol=1e-5)
    assert lit.rgb[24, 32, 0] == 255
    assert abs(int(grazing.rgb[24, 32, 0]) - 51) <= 1  # ambient only


def test_triangles_behind_camera_are_skipped():
    verts = np.array([[-0.1, -0.1, -1.0], [0.1, -0.1, -1.0], [0.0, 0.1, -1.0]])
    out = render_mesh(verts, np.array([[0, 1, 2]]), CAM)
    assert not out.mask.any()


def test_chunked_scan_conversion_matches_one_pass_and_culls_back_faces():
    rng = np.random.default_rng(3)
    centres = rng.uniform([-0.3, -0.2, 1.0], [0.3, 0.2, 2.0], (40, 1, 3))
    verts = (centres + rng.normal(0, 0.08, (40, 3, 3))).reshape(-1, 3)
    faces = np.arange(len(verts)).reshape(-1, 3)
    whole = rasterize(verts, faces, CAM)
    chunked = rasterize(verts, faces, CAM, max_candidates=50)
    np.testing.assert_array_equal(whole.pixel, chunked.pixel)
    np.testing.assert_array_equal(whole.face, chunked.face)
    np.testing.assert_allclose(whole.bary.sum(1), 1.0, atol=1e-9)
    front = rasterize(verts, faces, CAM, cull_back=True)
    back = rasterize(verts, faces[:, ::-1], CAM, cull_back=True)
    # Every face is front-facing in exactly one winding, so the two culled passes split the faces.
    assert not set(front.face) & set(back.face)
    assert set(front.face) | set(back.face) == set(whole.face)

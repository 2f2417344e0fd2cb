"""Voxel map: geometry, colour averaging, masks, normals and bounded memory."""

from __future__ import annotations

import numpy as np

from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.core.mapping import VoxelMap
from hand_scene_perception.core.metrics import chamfer_m

CAM = PinholeCamera.from_intrinsics(fx=250.0, fy=250.0, cx=159.5, cy=119.5, width=320, height=240)
NORMAL = np.array([0.0, -0.3, -1.0]) / np.linalg.norm([0.0, -0.3, -1.0])  # tilted plane facing the camera
OFFSET = -0.8  # plane: NORMAL · p = OFFSET (camera at the origin, 0.8 m away)


def _plane_depth() -> np.ndarray:
    u, v = np.meshgrid(np.arange(CAM.width), np.arange(CAM.height))
    rays = CAM.unproject(np.stack([u, v], -1).astype(np.float64))
    return (OFFSET / (rays @ NORMAL)).astype(np.float32)


def _rgb(value: int) -> np.ndarray:
    return np.full((CAM.height, CAM.width, 3), value, np.uint8)


def test_plane_points_lie_on_plane_with_normals() -> None:
    vmap = VoxelMap(voxel_size=0.01)
    assert vmap.integrate(_plane_depth(), _rgb(90), CAM, np.eye(4)) > 0
    pts = vmap.points()
    assert np.abs(pts @ NORMAL - OFFSET).max() < 1e-3
    normals = vmap.normals()
    ok = np.linalg.norm(normals, axis=1) > 0
    assert ok.mean() > 0.9
    assert np.median(normals[ok] @ NORMAL) > 0.999  # oriented toward the camera
    # Ground truth: the plane sampled densely over the same view.
    u, v = np.meshgrid(np.linspace(0, CAM.width - 1, 400), np.linspace(0, CAM.height - 1, 300))
    rays = CAM.unproject(np.stack([u, v], -1).reshape(-1, 2))
    gt = rays * (OFFSET / (rays @ NORMAL))[:, None]
    assert chamfer_m(pts, gt) < 0.5 * vmap.voxel_size


def test_colours_average_and_world_pose_applies() -> None:
    vmap = VoxelMap(voxel_size=0.02)
    pose = np.eye(4)
    pose[:3, 3] = [1.0, 2.0, 3.0]
    vmap.integrate(_plane_depth(), _rgb(100), CAM, pose)
    n = len(vmap)
    vmap.integrate(_plane_depth(), _rgb(200), CAM, pose)
    assert len(vmap) == n
    assert np.all(vmap.colors() == 150)
    assert np.all(vmap.hits() == 2)
    assert np.abs((vmap.points() - pose[:3, 3]) @ NORMAL - OFFSET).max() < 1e-3


def test_mask_and_invalid_depth_are_skipped() -> None:
    depth = _plane_depth()
    depth[:, : CAM.width // 2] = 0.0
    depth[:10] = np.nan
    mask = np.zeros(depth.shape, bool)
    mask[:, -CAM.width // 4 :] = True
    vmap = VoxelMap(voxel_size=0.01)
    vmap.integrate(depth, _rgb(50), CAM, np.eye(4), mask_ignore=mask)
    px = CAM.project(vmap.points().astype(np.float64))
    assert np.all(px[:, 0] > CAM.width // 2 - 2) and np.all(px[:, 0] < CAM.width * 3 // 4 + 2)
    assert vmap.integrate(np.zeros_like(depth), _rgb(50), CAM, np.eye(4)) == 0


def test_memory_is_bounded_by_least_recently_seen_eviction() -> None:
    vmap = VoxelMap(voxel_size=0.01, max_voxels=3000)
    for k in range(6):
        pose = np.eye(4)
        pose[0, 3] = 5.0 * k  # each frame sees a new, disjoint patch of the world
        vmap.integrate(_plane_depth(), _rgb(10 * k), CAM, pose, stride=4)
        assert len(vmap) <= 3000
    newest = vmap.points()[:, 0] > 5.0 * 5 - 2.0
    assert newest.sum() > 0.5 * len(vmap)  # the latest frame survived, the oldest went first
    assert vmap.points()[:, 0].min() > 5.0 * 2
    vmap.clear()
    assert len(vmap) == 0 and vmap.points().shape == (0, 3)

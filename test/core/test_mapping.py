"""Voxel map: geometry, colour averaging, masks, normals and bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

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


def _bumpy_depth(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (_plane_depth() + rng.uniform(0, 0.05, (CAM.height, CAM.width))).astype(np.float32)


def _pose(yaw: float, x: float) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = [[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]]
    pose[0, 3] = x
    return pose


def test_matches_brute_force_reference() -> None:
    """Per-voxel running means and hit counts equal a dictionary-based reference over overlapping frames."""
    vmap = VoxelMap(voxel_size=0.02)
    u, v = np.meshgrid(np.arange(0, CAM.width, 2), np.arange(0, CAM.height, 2))
    rays = CAM.unproject(np.stack([u, v], -1).reshape(-1, 2).astype(np.float64))
    reference: dict[tuple[int, int, int], tuple[np.ndarray, int]] = {}
    for k in range(4):
        depth, pose = _bumpy_depth(k), _pose(0.05 * k, 0.03 * k)
        image = np.random.default_rng(k).integers(0, 256, (CAM.height, CAM.width, 3), dtype=np.uint8)
        vmap.integrate(depth, image, CAM, pose)
        pts = (rays * depth[::2, ::2].reshape(-1, 1)) @ pose[:3, :3].T + pose[:3, 3]
        cols = image[::2, ::2].reshape(-1, 3).astype(np.float64)
        cells = np.floor(pts / vmap.voxel_size).astype(int)
        frame: dict[tuple[int, int, int], list[np.ndarray]] = {}
        for cell, p, c in zip(map(tuple, cells), pts, cols, strict=True):
            frame.setdefault(cell, []).append(np.concatenate([p, c]))
        for cell, values in frame.items():
            mean = np.mean(values, axis=0)
            old, hits = reference.get(cell, (mean, 0))
            w = min(hits, 64)
            reference[cell] = ((old * w + mean) / (w + 1), hits + 1)
    assert abs(len(vmap) - len(reference)) <= 0.01 * len(reference)  # float32 vs float64 at cell borders
    got = {
        tuple(c): (p, col, h)
        for c, p, col, h in zip(
            np.floor(vmap.points() / vmap.voxel_size).astype(int), vmap.points(), vmap.colors(), vmap.hits(),
            strict=True,
        )
    }
    agree = [
        np.allclose(got[cell][0], ref[:3], atol=1e-4) and np.allclose(got[cell][1], ref[3:], atol=1.0)
        and got[cell][2] == hits
        for cell, (ref, hits) in reference.items() if cell in got
    ]
    assert len(agree) > 0.99 * len(reference) and np.mean(agree) > 0.98


def test_lookups_survive_eviction_and_table_rebuilds() -> None:
    """After evictions (tombstones) and growth, re-observed voxels are found again, never duplicated."""
    vmap = VoxelMap(voxel_size=0.02, max_voxels=4000)
    for k in range(40):  # disjoint patches: one eviction every few frames
        vmap.integrate(_plane_depth(), _rgb(10), CAM, _pose(0.0, 5.0 * k), stride=4)
        assert len(vmap) <= 4000
    n = len(vmap)
    hits_before = vmap.hits().copy()
    newest = vmap.points()[:, 0] > 5.0 * 39 - 2.0
    vmap.integrate(_plane_depth(), _rgb(10), CAM, _pose(0.0, 5.0 * 39), stride=4)
    assert len(vmap) == n and newest.sum() > 500
    assert np.all(vmap.hits()[newest] == hits_before[newest] + 1)
    keys = np.floor(vmap.points() / vmap.voxel_size).astype(int)
    assert len(np.unique(keys, axis=0)) == len(vmap)
    vmap.integrate(_plane_depth(), _rgb(10), CAM, _pose(0.0, 0.0), stride=4)  # an evicted region comes back
    assert np.sum(vmap.points()[:, 0] < 2.0) > 500 and len(vmap) <= 4000


def test_near_is_a_superset_of_points_within_radius() -> None:
    vmap = VoxelMap(voxel_size=0.01)
    for k in range(3):
        vmap.integrate(_bumpy_depth(k), _rgb(70), CAM, _pose(0.1 * k, 0.0))
    pts = vmap.points()
    rng = np.random.default_rng(0)
    for radius in (0.005, 0.03):
        queries = pts[rng.choice(len(pts), 50)] + rng.normal(0, 0.02, (50, 3))
        near_pts, near_nrm = vmap.near(queries, radius)
        within = pts[np.min(np.linalg.norm(pts[:, None] - queries[None], axis=-1), axis=1) <= radius]
        near_set = {tuple(p) for p in near_pts}
        assert within.size and all(tuple(p) in near_set for p in within)
        assert near_set <= {tuple(p) for p in pts}
        assert np.allclose(np.linalg.norm(near_nrm, axis=1)[np.any(near_nrm != 0, axis=1)], 1.0, atol=1e-5)
    assert vmap.near(np.array([[100.0, 0.0, 0.0]]), 0.03)[0].shape == (0, 3)
    assert VoxelMap().near(queries, 0.03)[0].shape == (0, 3)


def test_observe_then_fuse_equals_integrate_even_when_observed_ahead() -> None:
    """The ego pipeline observes a frame (no mask yet) while the previous one may still be fusing."""
    depth = _plane_depth()
    depth[:20] = 0.0
    poses = [np.eye(4), np.eye(4)]
    poses[1][:3, 3] = [0.05, -0.02, 0.01]
    images = [np.random.default_rng(k).integers(0, 255, (CAM.height, CAM.width, 3), dtype=np.uint8) for k in (0, 1)]
    masks = [np.zeros(depth.shape, bool), np.zeros(depth.shape, bool)]
    masks[0][50:120, 40:200] = True
    masks[1][:, 250:] = True
    whole, split = VoxelMap(voxel_size=0.01), VoxelMap(voxel_size=0.01)
    added = [whole.integrate(depth, image, CAM, pose, mask)
             for image, pose, mask in zip(images, poses, masks, strict=True)]
    clouds = [split.observe(depth, image, CAM, pose) for image, pose in zip(images, poses, strict=True)]
    assert [split.fuse(cloud, mask) for cloud, mask in zip(clouds, masks, strict=True)] == added
    for read in (VoxelMap.points, VoxelMap.colors, VoxelMap.normals, VoxelMap.hits):
        np.testing.assert_array_equal(read(split), read(whole))
    with pytest.raises(ValueError, match="mask_ignore does not match"):
        split.fuse(clouds[0], np.zeros((10, 10), bool))

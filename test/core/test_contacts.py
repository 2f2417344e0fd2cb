"""Contacts between a posed hand mesh and scene map points."""

from __future__ import annotations

import numpy as np
import pytest

from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.core.contacts import REGIONS, find_contacts, find_map_contacts, hand_regions
from hand_scene_perception.core.hand_model.factory import create_hand_model
from hand_scene_perception.core.hand_model.side import HandSide
from hand_scene_perception.core.mapping import VoxelMap


@pytest.fixture(scope="module")
def hand() -> tuple[np.ndarray, np.ndarray]:
    model = create_hand_model("open")
    verts = np.asarray(model.forward(np.zeros((16, 3), np.float32), side="right").vertices[0], np.float64)
    return verts, hand_regions(model, "right")


def _wall(x: float, spacing: float = 0.004) -> tuple[np.ndarray, np.ndarray]:
    """Points of the plane x = const (facing -x, toward the hand's fingers) and their normals."""
    y, z = np.meshgrid(np.arange(-0.15, 0.15, spacing), np.arange(-0.15, 0.15, spacing))
    pts = np.stack([np.full(y.size, x), y.ravel(), z.ravel()], 1).astype(np.float32)
    return pts, np.tile(np.float32([-1, 0, 0]), (len(pts), 1))


def test_every_region_has_vertices(hand: tuple[np.ndarray, np.ndarray]) -> None:
    _, regions = hand
    counts = np.bincount(regions, minlength=len(REGIONS))
    assert np.all(counts > 10), dict(zip(REGIONS, counts, strict=True))


def test_fingertip_touching_plane(hand: tuple[np.ndarray, np.ndarray]) -> None:
    verts, regions = hand
    tip = int(np.argmax(verts[:, 0]))  # the fingers point along +x at rest
    assert REGIONS[regions[tip]].endswith("_tip")
    pts, nrm = _wall(verts[tip, 0])
    contacts = find_contacts(verts, "right", 7, pts, nrm, regions=regions)
    by_region = {c.region: c for c in contacts}
    c = by_region[REGIONS[regions[tip]]]
    assert c.track_id == 7 and c.side is HandSide.RIGHT
    assert abs(c.distance) < 1e-3
    np.testing.assert_allclose(c.normal, [-1, 0, 0], atol=1e-6)
    assert "palm" not in by_region  # the palm is ~8 cm from the wall


def test_penetration_is_negative(hand: tuple[np.ndarray, np.ndarray]) -> None:
    verts, regions = hand
    tip = int(np.argmax(verts[:, 0]))
    pts, nrm = _wall(verts[tip, 0] - 0.005)
    contacts = {c.region: c for c in find_contacts(verts, "right", 0, pts, nrm, regions=regions)}
    assert contacts[REGIONS[regions[tip]]].distance == pytest.approx(-0.005, abs=1e-3)


def test_far_hand_has_no_contacts(hand: tuple[np.ndarray, np.ndarray]) -> None:
    verts, regions = hand
    pts, nrm = _wall(verts[:, 0].max() + 0.5)
    assert find_contacts(verts, "right", 0, pts, nrm, regions=regions) == []
    assert find_contacts(verts, "right", 0, np.zeros((0, 3)), np.zeros((0, 3)), regions=regions) == []


def test_large_map_and_unknown_normals(hand: tuple[np.ndarray, np.ndarray]) -> None:
    verts, regions = hand
    rng = np.random.default_rng(0)
    far = rng.uniform(1.0, 3.0, (200_000, 3)).astype(np.float32)
    pts, _ = _wall(verts[:, 0].max() + 0.002)
    cloud = np.concatenate([far, pts])
    contacts = find_contacts(verts, "left", 0, cloud, np.zeros_like(cloud), regions=regions)
    assert contacts and all(0 < c.distance <= 0.01 for c in contacts)  # fallback normal: point → vertex
    assert all(np.isclose(np.linalg.norm(c.normal), 1.0) for c in contacts)


def _wall_map(x: float) -> VoxelMap:
    """A voxel map of the plane x = const, seen by a camera looking along +x from 0.5 m away."""
    camera = PinholeCamera.from_intrinsics(fx=200.0, fy=200.0, cx=79.5, cy=59.5, width=160, height=120)
    pose = np.eye(4)
    pose[:3, :3] = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]  # camera z → world x
    pose[0, 3] = x - 0.5
    vmap = VoxelMap(voxel_size=0.005)
    vmap.integrate(np.full((120, 160), 0.5, np.float32), np.zeros((120, 160, 3), np.uint8), camera, pose, stride=1)
    return vmap


@pytest.mark.parametrize("gap", [-0.004, 0.0, 0.006, 0.2])
def test_map_lookup_matches_full_arrays(hand: tuple[np.ndarray, np.ndarray], gap: float) -> None:
    """Contacts through the voxel-key lookup equal those against the whole map's arrays (near and far)."""
    verts, regions = hand
    vmap = _wall_map(verts[:, 0].max() + gap)
    by_lookup = find_map_contacts(verts, "right", 3, vmap, regions=regions)
    by_arrays = find_contacts(verts, "right", 3, vmap.points(), vmap.normals(), regions=regions)
    assert [(c.region, c.vertex_index) for c in by_lookup] == [(c.region, c.vertex_index) for c in by_arrays]
    for a, b in zip(by_lookup, by_arrays, strict=True):
        np.testing.assert_allclose(a.point, b.point)
        assert a.distance == pytest.approx(b.distance)
    assert bool(by_lookup) == (gap < 0.05)
    if by_lookup:
        np.testing.assert_allclose(by_lookup[0].normal, [-1, 0, 0], atol=1e-3)

"""Hand–scene contacts: which parts of a posed hand mesh touch (or sink into) the scene map.

Each hand vertex belongs to a region (palm, one of the five fingertips, or the rest of the
fingers), fixed once per model from its rest pose. A frame's contacts are found by taking the map
points near the hand (from a :class:`VoxelMap` by direct voxel-key lookups around the vertices, or
by cropping given arrays to the hand's bounding box), indexing them with a k-d tree and measuring
each vertex's signed distance along the nearest map point's normal (positive: gap, negative:
penetration); each region reports its closest vertex when that is within the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial import cKDTree

from .hand_model.side import HandSide
from .mapping import VoxelMap

if TYPE_CHECKING:  # base.py imports torch; contacts (and the ROS conversions using them) must not
    from .hand_model.base import HandModel

REGIONS: tuple[str, ...] = ("palm", "thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip", "finger")
_TIP_JOINTS = (4, 8, 12, 16, 20)
_TIP_RADIUS_M = 0.012
# Bones (joint pairs, ARCHITECTURE.md, Conventions order) that make up the palm; all other bones are fingers.
_PALM_BONES = ((0, 1), (0, 5), (0, 9), (0, 13), (0, 17), (5, 9), (9, 13), (13, 17), (1, 5))
_FINGER_BONES = tuple((a, a + 1) for base in (1, 5, 9, 13, 17) for a in range(base, base + 3))
_THRESHOLD_M = 0.01
_MAX_PENETRATION_M = 0.03


@dataclass(frozen=True)
class Contact:
    """One region of one hand touching the scene: ``point`` is the map point (world, m), ``normal`` the
    scene's unit normal there, ``distance`` the hand vertex's signed distance along it (m)."""

    track_id: int
    side: HandSide
    region: str
    vertex_index: int
    point: np.ndarray
    normal: np.ndarray
    distance: float


def _segment_distances(points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(V, S) distances from points to segments."""
    d = ends - starts
    t = np.einsum("vsk,sk->vs", points[:, None] - starts[None], d) / np.maximum(np.sum(d * d, 1), 1e-12)
    closest = starts[None] + np.clip(t, 0, 1)[..., None] * d[None]
    return np.linalg.norm(points[:, None] - closest, axis=-1)


@lru_cache(maxsize=8)
def hand_regions(model: HandModel, side: HandSide | str) -> np.ndarray:
    """(V,) int region index into :data:`REGIONS` for every vertex of ``model`` on ``side``.

    From the zero pose: vertices within 12 mm of a fingertip joint are that tip; the others go to
    the palm or "finger" by their nearest bone. Cached per model and side (it is fixed)."""
    out = model.forward(np.zeros((16, 3), np.float32), side=HandSide.parse(side))
    verts = np.asarray(out.vertices, np.float64).reshape(-1, 3)
    joints = np.asarray(out.joints, np.float64).reshape(21, 3)
    bones = np.array(_PALM_BONES + _FINGER_BONES)
    nearest = np.argmin(_segment_distances(verts, joints[bones[:, 0]], joints[bones[:, 1]]), axis=1)
    regions = np.where(nearest < len(_PALM_BONES), REGIONS.index("palm"), REGIONS.index("finger"))
    tip_dist = np.linalg.norm(verts[:, None] - joints[list(_TIP_JOINTS)][None], axis=-1)
    closest_tip = np.argmin(tip_dist, axis=1)
    is_tip = tip_dist[np.arange(len(verts)), closest_tip] < _TIP_RADIUS_M
    regions[is_tip] = 1 + closest_tip[is_tip]
    regions.setflags(write=False)
    return regions


def find_contacts(
    hand_vertices_world: np.ndarray,
    hand_side: HandSide | str,
    track_id: int,
    map_points: np.ndarray,
    map_normals: np.ndarray,
    *,
    regions: np.ndarray,
    threshold_m: float = _THRESHOLD_M,
    max_penetration_m: float = _MAX_PENETRATION_M,
) -> list[Contact]:
    """Contacts of one hand with the map: at most one per region (its vertex of least signed distance).

    A vertex is in contact when its nearest map point is within ``threshold_m``, or when it lies
    behind that point's surface by at most ``max_penetration_m``. ``regions`` comes from
    :func:`hand_regions`; map normals of zero length (unknown) fall back to the point→vertex direction.
    """
    verts = np.asarray(hand_vertices_world, np.float64)
    if verts.ndim != 2 or verts.shape[1] != 3 or len(verts) != len(regions):
        raise ValueError(f"hand_vertices_world must be (V, 3) with V = len(regions), got {verts.shape}")
    pts = np.asarray(map_points)
    radius = max(threshold_m, max_penetration_m)
    lo, hi = verts.min(0) - radius, verts.max(0) + radius
    sel = np.flatnonzero((pts[:, 0] >= lo[0]) & (pts[:, 0] <= hi[0]))
    crop = pts[sel]
    keep = np.all((crop >= lo) & (crop <= hi), axis=1)
    sel, crop = sel[keep], crop[keep].astype(np.float64)
    if not len(sel):
        return []
    dist, nn = cKDTree(crop).query(verts, k=1, distance_upper_bound=radius)
    hit = np.flatnonzero(np.isfinite(dist))
    if not len(hit):
        return []
    point = crop[nn[hit]]
    normal = np.asarray(map_normals)[sel[nn[hit]]].astype(np.float64)
    offset = verts[hit] - point
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    fallback = offset / np.maximum(np.linalg.norm(offset, axis=1, keepdims=True), 1e-12)
    normal = np.where(length > 1e-6, normal / np.maximum(length, 1e-12), fallback)
    signed = np.sum(offset * normal, axis=1)
    touching = (dist[hit] <= threshold_m) | ((signed < 0) & (signed >= -max_penetration_m))
    side = HandSide.parse(hand_side)
    contacts = []
    for region_id, name in enumerate(REGIONS):
        cand = np.flatnonzero(touching & (regions[hit] == region_id))
        if not len(cand):
            continue
        best = cand[np.argmin(signed[cand])]
        contacts.append(
            Contact(
                int(track_id), side, name, int(hit[best]), point[best].copy(), normal[best].copy(), float(signed[best])
            )
        )
    return contacts


def find_map_contacts(
    hand_vertices_world: np.ndarray,
    hand_side: HandSide | str,
    track_id: int,
    voxel_map: VoxelMap,
    *,
    regions: np.ndarray,
    threshold_m: float = _THRESHOLD_M,
    max_penetration_m: float = _MAX_PENETRATION_M,
) -> list[Contact]:
    """:func:`find_contacts` against a voxel map, reading only the voxels near the hand (no full-map copy
    or scan, so its cost does not grow with the map)."""
    points, normals = voxel_map.near(hand_vertices_world, max(threshold_m, max_penetration_m))
    return find_contacts(
        hand_vertices_world, hand_side, track_id, points, normals,
        regions=regions, threshold_m=threshold_m, max_penetration_m=max_penetration_m,
    )

"""Coloured voxel map of the scene in the world frame, with bounded memory.

Each voxel keeps the running mean of the points that fell into it (position, surface normal,
colour) and its hit count; when more than ``max_voxels`` exist, the least recently seen ones are
evicted in bulk. Voxels live in dense arrays (rows ``0..len-1``) found through an open-addressing
hash table of 63-bit integer keys, probed for a whole frame at once with numpy (linear probing;
a frame's new keys claim empty slots by scatter-then-read-back, so duplicates within the frame
merge on their own and nothing is sorted). A frame's points are averaged per voxel with one sparse
product, then blended into their voxels; eviction fills the freed rows from the tail and leaves
tombstones that the next table rebuild drops. A 640x480 frame at stride 2 integrates in a few
milliseconds whatever the map's size.

Normals come for free from the depth image: the cross product of the back-projected neighbours
along u and v, oriented toward the camera (the free-space side), which is what contact distances
are signed against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse

from .camera import PinholeCamera

_KEY_BITS = 21
_KEY_OFFSET = 1 << (_KEY_BITS - 1)  # voxel indices in [-2^20, 2^20) ≈ ±10 km at 1 cm
# Hits beyond this stop lowering the weight of new observations, so the map can still follow change.
_MAX_WEIGHT = 64.0
# Evict down to this fraction of max_voxels so eviction (a partition) runs rarely, not every frame.
_EVICT_TO = 0.9
_EMPTY, _TOMBSTONE = -1, -2  # hash-table key markers (real keys are >= 0)
_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: 2^64 / golden ratio
# Used slots (live + tombstones + a frame's possible new keys) stay under this fraction of the table.
_MAX_LOAD = 0.5
# A rebuilt table fits this many times the keys expected then, so rebuilds (growth, tombstone purges) are rare.
_HEADROOM = 1.5
_MIN_TABLE_BITS = 12
# Columns of the per-voxel data rows.
_POS, _NRM, _COL = slice(0, 3), slice(3, 6), slice(6, 9)


@dataclass(frozen=True)
class FrameCloud:
    """One observed RGB-D frame in the world (:meth:`VoxelMap.observe`), waiting to be fused.

    values: (P, 9) float32 rows of position, normal, colour of the valid-depth pixels of the strided grid;
    pixels: (P,) their flat index in that grid (grid_shape), so a mask can be applied later."""

    values: np.ndarray
    pixels: np.ndarray
    grid_shape: tuple[int, int]
    stride: int


class VoxelMap:
    """Voxel-averaged coloured point map (world frame, metres)."""

    def __init__(self, voxel_size: float = 0.01, max_voxels: int = 500_000, max_depth_m: float = 5.0) -> None:
        """``max_depth_m``: farther depth readings are skipped (their noise exceeds a voxel)."""
        if not voxel_size > 0 or max_voxels < 1:
            raise ValueError(f"need voxel_size > 0 and max_voxels >= 1, got {voxel_size}, {max_voxels}")
        self.voxel_size = float(voxel_size)
        self.max_voxels = int(max_voxels)
        self.max_depth_m = float(max_depth_m)
        self._rays: dict[tuple[object, int], np.ndarray] = {}
        self.clear()

    def clear(self) -> None:
        """Remove every voxel."""
        self._n = 0
        self._keys = np.zeros(0, np.int64)  # per row: voxel key, its table slot, data, hits, last frame seen
        self._slot = np.zeros(0, np.int64)
        self._data = np.zeros((0, 9), np.float32)
        self._hits = np.zeros(0, np.int32)
        self._seen = np.zeros(0, np.int32)
        self._scratch = np.zeros(0, np.int32)
        self._table_key = np.full(1 << _MIN_TABLE_BITS, _EMPTY, np.int64)
        self._table_row = np.zeros(1 << _MIN_TABLE_BITS, np.int32)
        self._used = 0  # table slots holding a key or a tombstone
        self._frame = 0
        self._cache: dict[str, np.ndarray] = {}
        self._cache_version = -1
        self.version = 0  # bumped on every change, so consumers can cache derived structures

    def __len__(self) -> int:
        return self._n

    def points(self) -> np.ndarray:
        """(N, 3) float32 mean point of each voxel (read-only; computed once per map version)."""
        return self._cached("points", lambda: self._data[: self._n, _POS].copy())

    def colors(self) -> np.ndarray:
        """(N, 3) uint8 mean colour of each voxel (read-only; computed once per map version)."""
        return self._cached("colors", lambda: np.clip(np.round(self._data[: self._n, _COL]), 0, 255).astype(np.uint8))

    def normals(self) -> np.ndarray:
        """(N, 3) float32 unit mean normal of each voxel, zero where none was measured (read-only; computed
        once per map version)."""
        return self._cached("normals", lambda: _unit_rows(self._data[: self._n, _NRM]))

    def hits(self) -> np.ndarray:
        """(N,) int32 number of frames that observed each voxel (read-only; computed once per map version)."""
        return self._cached("hits", lambda: self._hits[: self._n].copy())

    def near(self, points_world: np.ndarray, radius_m: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean points (M, 3) and unit normals (M, 3), float32, of the voxels that may lie within ``radius_m``
        of any of ``points_world`` (K, 3): a superset found by direct key lookups around the queries, never
        by scanning the map."""
        query = np.asarray(points_world, np.float64).reshape(-1, 3)
        if not len(query) or not self._n:
            return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)
        # Blocks of `block` voxels per axis, at least the radius wide: every voxel within the radius of a
        # query lies in the query's block or one of its 26 neighbours.
        block = max(1, int(np.ceil(radius_m / self.voxel_size)))
        cells = np.floor(query.T / self.voxel_size).astype(np.int64)
        blocks = _key_cells(np.unique(_voxel_keys(np.floor_divide(cells, block))))
        steps = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij")).reshape(3, 1, -1)
        blocks = _key_cells(np.unique(_voxel_keys((blocks[:, :, None] + steps).reshape(3, -1))))
        inner = np.stack(np.meshgrid(*[np.arange(block)] * 3, indexing="ij")).reshape(3, 1, -1)
        keys = _voxel_keys((blocks[:, :, None] * block + inner).reshape(3, -1))
        slots, _ = self._probe(keys[keys >= 0], insert=False)
        rows = self._table_row[slots[slots >= 0]]
        return self._data[rows, _POS], _unit_rows(self._data[rows, _NRM])

    def integrate(
        self,
        depth_m: np.ndarray,
        image_rgb: np.ndarray,
        camera: PinholeCamera,
        T_world_camera: np.ndarray,
        mask_ignore: np.ndarray | None = None,
        stride: int = 2,
    ) -> int:
        """Add one RGB-D frame (every ``stride``-th pixel); ``mask_ignore`` True = skip (hands). Returns the
        number of points integrated."""
        return self.fuse(self.observe(depth_m, image_rgb, camera, T_world_camera, stride), mask_ignore)

    def observe(
        self, depth_m: np.ndarray, image_rgb: np.ndarray, camera: PinholeCamera, T_world_camera: np.ndarray,
        stride: int = 2,
    ) -> FrameCloud:
        """The first half of :meth:`integrate`: a frame's points, normals and colours in the world, not yet
        masked or fused. It needs no mask, so it can run while the hands are still being detected; it reads
        only the ray cache, never the voxels."""
        depth = np.asarray(depth_m, dtype=np.float32)
        image = np.asarray(image_rgb)
        if depth.shape != (camera.height, camera.width) or image.shape[:2] != depth.shape:
            raise ValueError(
                f"depth {depth.shape} and image {image.shape[:2]} must match the camera"
                f" ({camera.height}, {camera.width})"
            )
        z = depth[::stride, ::stride]
        rays, pixels = self._ray_grid(camera, stride)
        grid = rays * z  # (3, h, w) camera-frame points
        valid = (z > 0) & (z < self.max_depth_m)
        idx = np.flatnonzero(valid)
        values = np.empty((len(idx), 9), np.float32)
        if len(idx):
            T = np.asarray(T_world_camera, dtype=np.float64)
            rotate = np.zeros((6, 6), np.float32)  # points and normals in one product
            rotate[:3, :3] = rotate[3:, 3:] = T[:3, :3]
            local = np.take(np.concatenate([grid, _grid_normals(grid)]).reshape(6, -1), idx, axis=1)
            world = rotate @ local  # (6, P): rows of positions, then normals
            world[:3] += T[:3, 3, None].astype(np.float32)
            colours = np.take(image.reshape(-1, image.shape[2] if image.ndim == 3 else 1), pixels[idx], axis=0)
            values[:, :6] = world.T
            values[:, _COL] = colours[:, :3]
        return FrameCloud(values, idx, z.shape, stride)

    def fuse(self, cloud: FrameCloud, mask_ignore: np.ndarray | None = None) -> int:
        """The second half of :meth:`integrate`: drop the masked pixels (True = skip) and blend the rest into
        the voxels. Returns the number of points fused."""
        values = cloud.values
        if mask_ignore is not None:
            keep = ~np.asarray(mask_ignore, dtype=bool)[:: cloud.stride, :: cloud.stride]
            if keep.shape != cloud.grid_shape:
                raise ValueError(f"mask_ignore does not match the observed frame's size (stride {cloud.stride})")
            values = values[keep.reshape(-1)[cloud.pixels]]
        if not len(values):
            return 0
        self._merge(np.ascontiguousarray(values[:, _POS].T), values)
        return len(values)

    # ------------------------------------------------------------------ internals

    def _cached(self, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        if self._cache_version != self.version:
            self._cache, self._cache_version = {}, self.version
        if name not in self._cache:
            array = compute()
            array.setflags(write=False)
            self._cache[name] = array
        return self._cache[name]

    def _ray_grid(self, camera: PinholeCamera, stride: int) -> tuple[np.ndarray, np.ndarray]:
        """(3, h, w) float32 z = 1 rays of the strided pixel grid and the (h * w,) flat full-image index of
        each of its pixels, cached per camera and stride."""
        key = (camera, stride)
        if key not in self._rays:
            u, v = np.meshgrid(np.arange(0, camera.width, stride), np.arange(0, camera.height, stride))
            rays = camera.unproject(np.stack([u, v], -1).astype(np.float64))
            rays = np.nan_to_num(rays, nan=0.0).astype(np.float32)
            pixels = (v * camera.width + u).reshape(-1)
            self._rays = {key: (np.ascontiguousarray(np.moveaxis(rays, -1, 0)), pixels)}  # one camera at a time
        return self._rays[key]

    def _merge(self, positions: np.ndarray, values: np.ndarray) -> None:
        """Blend a frame's (P, 9) world points, normals and colours into their voxels; ``positions`` holds the
        same points as (3, P) rows."""
        keys = _voxel_keys(np.floor(positions * np.float32(1.0 / self.voxel_size)).astype(np.int64))
        if keys.min() < 0:  # beyond ±10 km: rare
            values, keys = values[keys >= 0], keys[keys >= 0]
        if self._used + len(keys) > _MAX_LOAD * len(self._table_key):
            self._rebuild_table(self._n + len(keys))
        slots, claimed = self._probe(keys, insert=True)
        if claimed.any():
            self._add_rows(keys, slots, np.flatnonzero(claimed))
        rows = self._table_row[slots]
        # Frame mean per touched voxel: number the distinct rows 0..U-1, then one sparse sum.
        first = _first_of_each(rows, self._scratch)
        voxels = rows[first]
        self._scratch[voxels] = np.arange(len(voxels), dtype=np.int32)
        local = self._scratch[rows]
        counts = np.bincount(local, minlength=len(voxels)).astype(np.float32)
        members = scipy.sparse.csr_matrix(
            (np.ones(len(rows), np.float32), local, np.arange(len(rows) + 1)), shape=(len(rows), len(voxels))
        )
        frame_mean = (members.T @ values) / counts[:, None]
        # One frame counts as one observation of a voxel, weighted against the (capped) history.
        w = np.minimum(self._hits[voxels], _MAX_WEIGHT).astype(np.float32)[:, None]
        blended = np.take(self._data, voxels, axis=0)
        blended *= w
        blended += frame_mean
        blended /= w + 1
        rows_view = np.dtype((np.void, self._data.itemsize * self._data.shape[1]))
        self._data.view(rows_view)[voxels, 0] = blended.view(rows_view)[:, 0]  # whole-row scatter: fast
        self._frame += 1
        self.version += 1
        self._hits[voxels] += 1
        self._seen[voxels] = self._frame
        if self._n > self.max_voxels:
            self._evict()

    def _add_rows(self, keys: np.ndarray, slots: np.ndarray, claimed: np.ndarray) -> None:
        """Give a row to each distinct key among the points that claimed a new table slot."""
        new = claimed[_first_of_each(slots[claimed], self._table_row)]
        start, end = self._n, self._n + len(new)
        self._reserve(end)
        self._table_row[slots[new]] = np.arange(start, end, dtype=np.int32)
        self._keys[start:end] = keys[new]
        self._slot[start:end] = slots[new]
        self._hits[start:end] = 0
        self._used += len(new)
        self._n = end

    def _reserve(self, rows: int) -> None:
        """Grow the row arrays (geometrically) to hold at least ``rows`` rows."""
        if rows <= len(self._keys):
            return
        size = max(rows, 2 * len(self._keys), 1024)
        for name in ("_keys", "_slot", "_data", "_hits", "_seen", "_scratch"):
            old = getattr(self, name)
            grown = np.zeros((size, *old.shape[1:]), old.dtype)
            grown[: len(old)] = old
            setattr(self, name, grown)

    def _rebuild_table(self, expected: int) -> None:
        """Re-insert the live keys into a fresh table sized for ``expected`` keys (drops tombstones)."""
        bits = max(_MIN_TABLE_BITS, int(np.ceil(np.log2(_HEADROOM * expected / _MAX_LOAD))))
        self._table_key = np.full(1 << bits, _EMPTY, np.int64)
        self._table_row = np.zeros(1 << bits, np.int32)
        slots, _ = self._probe(self._keys[: self._n], insert=True)
        self._table_row[slots] = np.arange(self._n, dtype=np.int32)
        self._slot[: self._n] = slots
        self._used = self._n

    def _probe(self, keys: np.ndarray, insert: bool) -> tuple[np.ndarray, np.ndarray]:
        """Table slots of ``keys`` (-1 where absent), all probed at once, and which keys claimed a slot: with
        ``insert``, absent keys take empty slots (so none stays absent)."""
        mask = len(self._table_key) - 1
        shift = np.uint64(64 - mask.bit_length())
        found = np.full(len(keys), -1, np.int64)
        claimed = np.zeros(len(keys), bool)
        pending = np.arange(len(keys))
        slot = ((keys.astype(np.uint64) * _HASH_MULTIPLIER) >> shift).astype(np.int64)
        key = keys
        while len(pending):
            held = self._table_key[slot]
            if insert:
                free = held == _EMPTY
                if free.any():
                    # Claimants of one slot: the last write wins, the others (other keys) probe on.
                    self._table_key[slot[free]] = key[free]
                    held = self._table_key[slot]
                    claimed[pending[free & (held == key)]] = True
            hit = held == key
            found[pending[hit]] = slot[hit]
            go = ~hit if insert else ~hit & (held != _EMPTY)
            pending, key, slot = pending[go], key[go], (slot[go] + 1) & mask
        return found, claimed

    def _evict(self) -> None:
        """Drop the least recently seen voxels down to a fraction of the budget; the tail fills the holes."""
        keep = int(self.max_voxels * _EVICT_TO)
        gone_rows = np.argpartition(self._seen[: self._n], self._n - keep - 1)[: self._n - keep]
        self._table_key[self._slot[gone_rows]] = _TOMBSTONE
        gone = np.zeros(self._n, bool)
        gone[gone_rows] = True
        holes = np.flatnonzero(gone[:keep])
        movers = keep + np.flatnonzero(~gone[keep:])
        for array in (self._keys, self._slot, self._data, self._hits, self._seen):
            array[holes] = array[movers]
        self._table_row[self._slot[holes]] = holes.astype(np.int32)
        self._n = keep


def _voxel_keys(cells: np.ndarray) -> np.ndarray:
    """(N,) int64 keys of (3, N) integer voxel indices; -1 where an index is out of the key range."""
    ijk = cells + _KEY_OFFSET
    keys = (ijk[0] << (2 * _KEY_BITS)) | (ijk[1] << _KEY_BITS) | ijk[2]
    if ijk.min() < 0 or ijk.max() >= 1 << _KEY_BITS:
        keys[np.any((ijk < 0) | (ijk >= 1 << _KEY_BITS), axis=0)] = -1
    return keys


def _key_cells(keys: np.ndarray) -> np.ndarray:
    """(3, N) integer voxel indices of (N,) keys from :func:`_voxel_keys` (the inverse)."""
    low = (1 << _KEY_BITS) - 1
    return np.stack([keys >> (2 * _KEY_BITS), (keys >> _KEY_BITS) & low, keys & low]) - _KEY_OFFSET


def _first_of_each(ids: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """Positions of one occurrence of each distinct value in ``ids`` (indices into ``scratch``), found by
    scattering positions into ``scratch`` (overwritten) and reading them back: no sort."""
    order = np.arange(len(ids), dtype=np.int32)
    scratch[ids] = order
    return np.flatnonzero(scratch[ids] == order)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(N, 3) float32 rows scaled to unit length; zero rows stay zero."""
    vectors = np.ascontiguousarray(vectors, np.float32)
    norm = np.sqrt((vectors * vectors) @ np.ones(3, np.float32))
    return vectors / np.where(norm > 1e-6, norm, np.inf)[:, None]


def _grid_normals(points: np.ndarray) -> np.ndarray:
    """(3, h, w) float32 unit normals of an organised (3, h, w) point grid from central differences,
    facing the camera; zero on the border, at holes and across depth jumps (where neighbours belong to
    other surfaces)."""
    du = points[:, 1:-1, 2:] - points[:, 1:-1, :-2]
    dv = points[:, 2:, 1:-1] - points[:, :-2, 1:-1]
    n = np.stack([du[1] * dv[2] - du[2] * dv[1], du[2] * dv[0] - du[0] * dv[2], du[0] * dv[1] - du[1] * dv[0]])
    depth = points[2]
    z = depth[1:-1, 1:-1]
    # A neighbour step much longer than the pixel footprint means a depth discontinuity.
    step = np.maximum(np.abs(du[2]), np.abs(dv[2]))
    ok = (z > 0) & (depth[1:-1, 2:] > 0) & (depth[1:-1, :-2] > 0) & (depth[2:, 1:-1] > 0) & (depth[:-2, 1:-1] > 0)
    ok &= step < 0.1 * z
    norm = np.sqrt(np.einsum("khw,khw->hw", n, n))
    facing = np.einsum("khw,khw->hw", n, points[:, 1:-1, 1:-1])
    ok &= norm > 0
    scale = np.where(facing > 0, np.float32(-1), np.float32(1)) / np.where(ok, norm, np.float32(1))
    out = np.zeros(points.shape, np.float32)
    out[:, 1:-1, 1:-1] = np.where(ok, n * scale, np.float32(0))
    return out

"""Coloured voxel map of the scene in the world frame, with bounded memory.

Each voxel keeps the running mean of the points that fell into it (position, colour, surface
normal) and its hit count; when more than ``max_voxels`` exist, the least recently seen ones are
evicted. Everything is vectorised: a frame's points are reduced per voxel with ``np.unique`` and
``np.bincount``, and voxels are found through a sorted array of 63-bit integer keys
(``np.searchsorted``), so a 640x480 frame at stride 2 integrates in a few milliseconds.

Normals come for free from the depth image: the cross product of the back-projected neighbours
along u and v, oriented toward the camera (the free-space side), which is what contact distances
are signed against.
"""

from __future__ import annotations

import numpy as np

from .camera import PinholeCamera

_KEY_BITS = 21
_KEY_OFFSET = 1 << (_KEY_BITS - 1)  # voxel indices in [-2^20, 2^20) ≈ ±10 km at 1 cm
# Hits beyond this stop lowering the weight of new observations, so the map can still follow change.
_MAX_WEIGHT = 64.0
# Evict down to this fraction of max_voxels so eviction (a sort) runs rarely, not every frame.
_EVICT_TO = 0.9


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
        self._keys = np.zeros(0, np.int64)  # sorted; the data arrays below follow this order
        self._pos = np.zeros((0, 3), np.float32)
        self._col = np.zeros((0, 3), np.float32)
        self._nrm = np.zeros((0, 3), np.float32)
        self._hits = np.zeros(0, np.int32)
        self._seen = np.zeros(0, np.int64)
        self._frame = 0
        self.version = 0  # bumped on every change, so consumers can cache derived structures

    def __len__(self) -> int:
        return len(self._keys)

    def points(self) -> np.ndarray:
        """(N, 3) float32 mean point of each voxel."""
        return self._pos.copy()

    def colors(self) -> np.ndarray:
        """(N, 3) uint8 mean colour of each voxel."""
        return np.clip(np.round(self._col), 0, 255).astype(np.uint8)

    def normals(self) -> np.ndarray:
        """(N, 3) float32 unit mean normal of each voxel; zero where no normal was measured."""
        norm = np.linalg.norm(self._nrm, axis=1, keepdims=True)
        return np.where(norm > 1e-6, self._nrm / np.maximum(norm, 1e-6), 0).astype(np.float32)

    def hits(self) -> np.ndarray:
        """(N,) int32 number of frames that observed each voxel."""
        return self._hits.copy()

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
        depth = np.asarray(depth_m, dtype=np.float32)
        image = np.asarray(image_rgb)
        if depth.shape != (camera.height, camera.width) or image.shape[:2] != depth.shape:
            raise ValueError(
                f"depth {depth.shape} and image {image.shape[:2]} must match the camera"
                f" ({camera.height}, {camera.width})"
            )
        z = depth[::stride, ::stride]
        rays = self._ray_grid(camera, stride)
        cam_pts = rays * z[..., None]
        normals = _grid_normals(cam_pts)
        valid = (z > 0) & (z < self.max_depth_m)
        if mask_ignore is not None:
            valid &= ~np.asarray(mask_ignore, dtype=bool)[::stride, ::stride]
        idx = np.flatnonzero(valid)
        if not len(idx):
            return 0
        T = np.asarray(T_world_camera, dtype=np.float64)
        rot = T[:3, :3].astype(np.float32)
        pts = cam_pts.reshape(-1, 3)[idx] @ rot.T + T[:3, 3].astype(np.float32)
        nrm = normals.reshape(-1, 3)[idx] @ rot.T
        col = image[::stride, ::stride].reshape(-1, image.shape[2] if image.ndim == 3 else 1)[idx, :3]
        self._merge(pts, np.broadcast_to(col, (len(idx), 3)).astype(np.float32), nrm)
        return len(idx)

    # ------------------------------------------------------------------ internals

    def _ray_grid(self, camera: PinholeCamera, stride: int) -> np.ndarray:
        """(h, w, 3) float32 z = 1 rays of the strided pixel grid, cached per camera and stride."""
        key = (camera, stride)
        if key not in self._rays:
            u, v = np.meshgrid(np.arange(0, camera.width, stride), np.arange(0, camera.height, stride))
            rays = camera.unproject(np.stack([u, v], -1).astype(np.float64))
            self._rays = {key: np.nan_to_num(rays, nan=0.0).astype(np.float32)}  # one camera at a time
        return self._rays[key]

    def _merge(self, pts: np.ndarray, col: np.ndarray, nrm: np.ndarray) -> None:
        ijk = np.floor(pts * np.float32(1.0 / self.voxel_size)).astype(np.int64) + _KEY_OFFSET
        if ijk.min() < 0 or ijk.max() >= 1 << _KEY_BITS:  # beyond ±10 km: rare, checked per point only then
            inside = np.all((ijk >= 0) & (ijk < (1 << _KEY_BITS)), axis=1)
            ijk, pts, col, nrm = ijk[inside], pts[inside], col[inside], nrm[inside]
        keys = (ijk[:, 0] << (2 * _KEY_BITS)) | (ijk[:, 1] << _KEY_BITS) | ijk[:, 2]
        ukeys, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        inv = inverse.reshape(-1)
        n = len(ukeys)

        def per_voxel_mean(values: np.ndarray) -> np.ndarray:
            sums = [np.bincount(inv, weights=values[:, c], minlength=n) for c in range(3)]
            return (np.stack(sums, 1) / counts[:, None]).astype(np.float32)

        f_pos, f_col = per_voxel_mean(pts), per_voxel_mean(col)
        nrm = np.nan_to_num(nrm, nan=0.0)
        f_nrm = per_voxel_mean(nrm)

        self._frame += 1
        self.version += 1
        where = np.searchsorted(self._keys, ukeys)
        found = where < len(self._keys)
        found[found] = self._keys[where[found]] == ukeys[found]
        old = where[found]
        # One frame counts as one observation of a voxel, weighted against the (capped) history.
        w = np.minimum(self._hits[old], _MAX_WEIGHT).astype(np.float32)[:, None]
        for store, frame in ((self._pos, f_pos), (self._col, f_col), (self._nrm, f_nrm)):
            store[old] = (store[old] * w + frame[found]) / (w + 1)
        self._hits[old] += 1
        self._seen[old] = self._frame

        new = ~found
        if new.any():
            pos = where[new]
            self._keys = np.insert(self._keys, pos, ukeys[new])
            self._pos = np.insert(self._pos, pos, f_pos[new], axis=0)
            self._col = np.insert(self._col, pos, f_col[new], axis=0)
            self._nrm = np.insert(self._nrm, pos, f_nrm[new], axis=0)
            self._hits = np.insert(self._hits, pos, 1)
            self._seen = np.insert(self._seen, pos, self._frame)
        if len(self._keys) > self.max_voxels:
            self._evict()

    def _evict(self) -> None:
        """Drop the least recently seen voxels down to a fraction of the budget (keeps key order)."""
        keep_n = int(self.max_voxels * _EVICT_TO)
        keep = np.zeros(len(self._keys), bool)
        keep[np.argpartition(-self._seen, keep_n - 1)[:keep_n]] = True
        for name in ("_keys", "_pos", "_col", "_nrm", "_hits", "_seen"):
            setattr(self, name, getattr(self, name)[keep])


def _grid_normals(points: np.ndarray) -> np.ndarray:
    """(h, w, 3) unit normals of an organised point grid from central differences, facing the camera;
    NaN on the border, at holes and across depth jumps (where neighbours belong to other surfaces)."""
    out = np.full(points.shape, np.nan, np.float32)
    du = points[1:-1, 2:] - points[1:-1, :-2]
    dv = points[2:, 1:-1] - points[:-2, 1:-1]
    n = np.cross(du, dv)
    centre = points[1:-1, 1:-1]
    z = centre[..., 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        # A neighbour step much longer than the pixel footprint means a depth discontinuity.
        step = np.maximum(np.abs(du[..., 2]), np.abs(dv[..., 2]))
        ok = (z > 0) & (points[1:-1, 2:, 2] > 0) & (points[1:-1, :-2, 2] > 0)
        ok &= (points[2:, 1:-1, 2] > 0) & (points[:-2, 1:-1, 2] > 0) & (step < 0.1 * z)
        n = n / np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(np.sum(n * centre, -1, keepdims=True) > 0, -n, n)
    out[1:-1, 1:-1] = np.where(ok[..., None], n, np.nan)
    return out

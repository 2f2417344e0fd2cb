"""A small vectorised numpy rasteriser for synthetic ground truth (hands now, scene meshes later).

Pinhole camera in the optical frame (DESIGN.md §3): +z forward, +x right, +y down; pixel
(u, v) = (fx·x/z + cx, fy·y/z + cy) with pixel centres at integer coordinates. Triangles are
rasterised per bounding box with all (triangle, pixel) candidates evaluated at once in
numpy; the nearest candidate wins the z-buffer. Depth and vertex attributes are interpolated
perspective-correctly. Shading is Lambertian plus ambient with a directional light, lit
two-sided so open scene meshes with mixed winding still shade sensibly. Triangles with any
vertex closer than ``near`` are skipped (no clipping).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.camera import PinholeCamera


@dataclass(frozen=True)
class RenderResult:
    """rgb: (H, W, 3) uint8; depth: (H, W) float32 metres along +z, 0 where empty; mask: (H, W) bool;
    face_index: (H, W) int64 index of the visible triangle, -1 where empty."""

    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    face_index: np.ndarray


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals, for smooth shading of curved surfaces."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    face_n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    normals = np.zeros_like(v)
    for k in range(3):
        np.add.at(normals, f[:, k], face_n)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def look_at(
    eye: np.ndarray, target: np.ndarray, up: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 1.0)
) -> np.ndarray:
    """(4, 4) world→camera transform of an optical-frame camera at ``eye`` looking at ``target``.

    ``up`` is the world direction that should appear upward in the image (-y of the optical frame).
    """
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("up is parallel to the viewing direction")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    rot = np.stack([x, y, z])  # rows: camera axes in world coordinates
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = -rot @ eye
    return out


def _expand_boxes(x0: np.ndarray, y0: np.ndarray, w: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, ...]:
    """All (triangle, x, y) pixel candidates inside each triangle's integer bounding box."""
    counts = w * h
    tri = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    local = np.arange(counts.sum()) - np.repeat(starts, counts)
    wt = w[tri]
    return tri, x0[tri] + local % wt, y0[tri] + local // wt


def render_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: PinholeCamera,
    world_to_camera: np.ndarray | None = None,
    colors: np.ndarray | tuple[float, float, float] = (0.85, 0.65, 0.55),
    light_dir: np.ndarray | tuple[float, float, float] = (-0.35, -0.55, -0.75),
    ambient: float = 0.35,
    background: tuple[int, int, int] = (255, 255, 255),
    near: float = 1e-3,
    smooth: bool = True,
    max_candidates: int = 4_000_000,
) -> RenderResult:
    """Render a triangle mesh with z-buffering and Lambertian + ambient shading.

    vertices (V, 3) are in the camera optical frame unless ``world_to_camera`` (4x4) is given.
    colors: one RGB in [0, 1] or per-vertex (V, 3). light_dir points from the surface toward
    the light, in the camera frame (the default: from the upper left, behind the viewer).
    ``smooth`` interpolates vertex normals (else flat facets).
    Work is chunked so at most ``max_candidates`` (triangle, pixel) pairs are held at once.
    """
    if camera.is_distorted or camera.skew:
        raise ValueError("render_mesh renders ideal pinhole images: pass a camera without distortion or skew")
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if world_to_camera is not None:
        t = np.asarray(world_to_camera, dtype=np.float64)
        v = v @ t[:3, :3].T + t[:3, 3]
    width, height = int(camera.width), int(camera.height)
    col = np.asarray(colors, dtype=np.float64)
    per_vertex = col.ndim == 2
    light = np.asarray(light_dir, dtype=np.float64)
    light = light / np.linalg.norm(light)

    zbuf = np.full(height * width, np.inf)
    fbuf = np.full(height * width, -1, dtype=np.int64)
    bary = np.zeros((height * width, 3))

    z = v[:, 2]
    safe_z = np.where(z > near, z, 1.0)
    px = np.stack([camera.fx * v[:, 0] / safe_z + camera.cx, camera.fy * v[:, 1] / safe_z + camera.cy], 1)
    keep = np.all(z[f] > near, axis=1)
    tri_px = px[f]  # (F, 3, 2)
    x0 = np.maximum(np.ceil(tri_px[..., 0].min(1)), 0).astype(np.int64)
    x1 = np.minimum(np.floor(tri_px[..., 0].max(1)), width - 1).astype(np.int64)
    y0 = np.maximum(np.ceil(tri_px[..., 1].min(1)), 0).astype(np.int64)
    y1 = np.minimum(np.floor(tri_px[..., 1].max(1)), height - 1).astype(np.int64)
    a, b, c = tri_px[:, 0], tri_px[:, 1], tri_px[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    keep &= (x1 >= x0) & (y1 >= y0) & (np.abs(area) > 1e-12)
    ids = np.flatnonzero(keep)
    sizes = (x1 - x0 + 1)[ids] * (y1 - y0 + 1)[ids]
    # Chunk triangles so the candidate arrays stay bounded.
    cum = np.cumsum(sizes)
    start = 0
    while start < len(ids):
        done = cum[start - 1] if start else 0
        stop = max(int(np.searchsorted(cum, done + max_candidates, side="right")), start + 1)
        chunk = ids[start:stop]
        start = stop
        tri, xs, ys = _expand_boxes(x0[chunk], y0[chunk], (x1 - x0 + 1)[chunk], (y1 - y0 + 1)[chunk])
        tri = chunk[tri]
        pa, pb, pc = a[tri], b[tri], c[tri]
        inv = 1.0 / area[tri]
        w0 = ((pb[:, 0] - xs) * (pc[:, 1] - ys) - (pb[:, 1] - ys) * (pc[:, 0] - xs)) * inv
        w1 = ((pc[:, 0] - xs) * (pa[:, 1] - ys) - (pc[:, 1] - ys) * (pa[:, 0] - xs)) * inv
        w2 = 1.0 - w0 - w1
        inside = (w0 >= 0) & (w1 >= 0) & (w2 >= 0)
        tri, xs, ys, w0, w1, w2 = tri[inside], xs[inside], ys[inside], w0[inside], w1[inside], w2[inside]
        zt = z[f[tri]]
        # Perspective-correct weights: screen weights divided by depth, renormalised.
        persp = np.stack([w0 / zt[:, 0], w1 / zt[:, 1], w2 / zt[:, 2]], 1)
        inv_depth = persp.sum(1)
        depth = 1.0 / inv_depth
        pix = ys * width + xs
        # Nearest candidate per pixel: sort by (pixel, depth) and keep each pixel's first.
        order = np.lexsort((depth, pix))
        first = order[np.r_[True, pix[order][1:] != pix[order][:-1]]]
        win = first[depth[first] < zbuf[pix[first]]]
        zbuf[pix[win]] = depth[win]
        fbuf[pix[win]] = tri[win]
        bary[pix[win]] = persp[win] / inv_depth[win, None]

    covered = fbuf >= 0
    rgb = np.empty((height * width, 3))
    rgb[:] = np.asarray(background, dtype=np.float64) / 255.0
    if covered.any():
        hit_faces = f[fbuf[covered]]
        w = bary[covered]
        if smooth:
            normals = (vertex_normals(v, f)[hit_faces] * w[..., None]).sum(1)
        else:
            fv = v[f[fbuf[covered]]]
            normals = np.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        points = (v[hit_faces] * w[..., None]).sum(1)
        # Two-sided lighting: flip normals that face away from the viewer.
        facing = np.einsum("ij,ij->i", normals, points) > 0
        normals[facing] *= -1
        shade = ambient + (1 - ambient) * np.clip(normals @ light, 0.0, 1.0)
        base = (col[hit_faces] * w[..., None]).sum(1) if per_vertex else np.broadcast_to(col, (len(w), 3))
        rgb[covered] = base * shade[:, None]
    image = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(height, width, 3)
    depth_map = np.where(covered, zbuf, 0.0).astype(np.float32).reshape(height, width)
    return RenderResult(
        rgb=image,
        depth=depth_map,
        mask=covered.reshape(height, width),
        face_index=fbuf.reshape(height, width),
    )

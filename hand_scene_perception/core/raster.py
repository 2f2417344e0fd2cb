"""A small vectorised numpy rasteriser: synthetic ground truth (hands, forearms, scene meshes), figures and the
hands drawn over camera images (pipelines/overlay.py).

Pinhole camera in the optical frame (ARCHITECTURE.md, Conventions): +z forward, +x right, +y down; pixel
(u, v) = (fx·x/z + cx, fy·y/z + cy) with pixel centres at integer coordinates. Triangles are scan
converted all at once in numpy: each triangle's rows are clipped against its three edges, so only
covered pixels are generated, and the nearest fragment wins a z-buffer that spans the mesh's screen
bounding box. Depth and vertex attributes are interpolated perspective-correctly. Shading
(:func:`render_mesh`) is Lambertian plus ambient with a directional light, lit two-sided so open
scene meshes with mixed winding still shade sensibly. Triangles with any vertex closer than ``near``
are skipped (no clipping).
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
    corner = f.ravel()
    normals = np.stack([np.bincount(corner, np.repeat(face_n[:, k], 3), minlength=len(v)) for k in range(3)], axis=1)
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


@dataclass(frozen=True)
class Fragments:
    """The visible surface at each covered pixel, without images: callers that composite several
    layers (scene, hands) touch only covered pixels instead of whole frames.

    pixel: (N,) flat index ``v * width + u``; depth: (N,) metres along +z; face: (N,) triangle
    index; bary: (N, 3) perspective-correct barycentric weights of the face's vertices."""

    pixel: np.ndarray
    depth: np.ndarray
    face: np.ndarray
    bary: np.ndarray


def _ramp(counts: np.ndarray) -> np.ndarray:
    """0, 1, ..., n-1 for every n in ``counts``, concatenated (the offsets of run-length expansion)."""
    return np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)


def _spans(coef: np.ndarray, tri: np.ndarray, ys: np.ndarray, xmin: np.ndarray, xmax: np.ndarray) -> np.ndarray:
    """Per (triangle, row) pair, the first and last covered pixel column (R, 2) as floats (last < first: empty).

    Inside a triangle all three barycentric edge functions w_i = a_i·x + b_i·y + c_i are >= 0, so on a
    row each edge bounds x from one side; the span is the intersection of those half-lines with the
    triangle's clipped bounding box ``[xmin, xmax]``."""
    k = coef[tri]
    a = (k[:, 0], k[:, 3], -k[:, 0] - k[:, 3])
    d = (k[:, 1] * ys + k[:, 2], k[:, 4] * ys + k[:, 5], 1.0 - (k[:, 1] + k[:, 4]) * ys - k[:, 2] - k[:, 5])
    lo, hi = xmin[tri].copy(), xmax[tri].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        for ai, di in zip(a, d, strict=True):
            bound = -di / ai
            lo = np.where(ai > 0, np.maximum(lo, np.ceil(bound)), lo)
            hi = np.where(ai < 0, np.minimum(hi, np.floor(bound)), hi)
            hi = np.where((ai == 0) & (di < 0), lo - 1, hi)  # edge parallel to the row and the row outside
    return np.stack([lo, hi], 1)


def rasterize(
    cam_vertices: np.ndarray,
    faces: np.ndarray,
    camera: PinholeCamera,
    near: float = 1e-3,
    max_candidates: int = 4_000_000,
    cull_back: bool = False,
) -> Fragments:
    """Z-buffer a triangle mesh given in the camera optical frame into per-pixel fragments.

    Scan conversion: each triangle's rows are intersected with its three edges, so only covered
    pixels are ever generated (no bounding-box candidates to reject), and the z-buffer spans just
    the mesh's screen bounding box. Triangles with a vertex closer than ``near`` are skipped; work is
    chunked so that at most about ``max_candidates`` pixels (bounding-box estimate) are held at once.
    ``cull_back`` skips faces seen from behind (their outward, counter-clockwise winding appears
    clockwise), which halves the work on closed meshes.
    """
    if camera.is_distorted or camera.skew:
        raise ValueError("rasterize renders ideal pinhole images: pass a camera without distortion or skew")
    v = np.asarray(cam_vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    width, height = int(camera.width), int(camera.height)
    z = v[:, 2]
    safe_z = np.where(z > near, z, 1.0)
    px = np.stack([camera.fx * v[:, 0] / safe_z + camera.cx, camera.fy * v[:, 1] / safe_z + camera.cy], 1)
    a, b, c = px[f[:, 0]], px[f[:, 1]], px[f[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    # Pixel y points down, so front faces have negative signed area.
    keep = (area < -1e-12) if cull_back else (np.abs(area) > 1e-12)
    keep &= (z[f[:, 0]] > near) & (z[f[:, 1]] > near) & (z[f[:, 2]] > near)
    x0 = np.maximum(np.ceil(np.minimum(np.minimum(a[:, 0], b[:, 0]), c[:, 0])), 0)
    x1 = np.minimum(np.floor(np.maximum(np.maximum(a[:, 0], b[:, 0]), c[:, 0])), width - 1)
    y0 = np.maximum(np.ceil(np.minimum(np.minimum(a[:, 1], b[:, 1]), c[:, 1])), 0)
    y1 = np.minimum(np.floor(np.maximum(np.maximum(a[:, 1], b[:, 1]), c[:, 1])), height - 1)
    keep &= (x1 >= x0) & (y1 >= y0)
    ids = np.flatnonzero(keep)
    if not len(ids):
        none = np.zeros(0, dtype=np.int64)
        return Fragments(pixel=none, depth=np.zeros(0), face=none, bary=np.zeros((0, 3)))
    corner_z = z[f[ids]]
    coef = _face_coefficients(np.stack([a[ids], b[ids], c[ids]], 1), corner_z)
    x0, x1 = x0[ids], x1[ids]
    y0, y1 = y0[ids].astype(np.int64), y1[ids].astype(np.int64)
    bx0, by0 = int(x0.min()), int(y0.min())
    box_w = int(x1.max()) - bx0 + 1
    zbuf = np.full(box_w * (int(y1.max()) - by0 + 1), np.inf)
    fbuf = np.full(len(zbuf), -1, dtype=np.int64)
    rows = y1 - y0 + 1
    cum = np.cumsum(rows * (x1 - x0 + 1))
    start = 0
    while start < len(ids):
        done = cum[start - 1] if start else 0
        stop = max(int(np.searchsorted(cum, done + max_candidates, side="right")), start + 1)
        tri = np.repeat(np.arange(start, stop), rows[start:stop])
        ys = _ramp(rows[start:stop]) + y0[tri]
        span = _spans(coef, tri, ys, x0, x1)
        start = stop
        n = np.maximum(span[:, 1] - span[:, 0] + 1, 0).astype(np.int64)
        # Along a span inverse depth and the buffer index grow linearly: expand per-row starts and steps.
        k = coef[tri]
        inv_z0 = k[:, 6] * span[:, 0] + k[:, 7] * ys + k[:, 8]
        step = _ramp(n)
        depth = 1.0 / (np.repeat(inv_z0, n) + np.repeat(k[:, 6], n) * step)
        pix = np.repeat((ys - by0) * box_w + (span[:, 0].astype(np.int64) - bx0), n) + step
        tri = np.repeat(tri, n)
        # Nearest fragment per pixel (also against earlier chunks); ties keep one of the equals.
        np.minimum.at(zbuf, pix, depth)
        win = depth == zbuf[pix]
        fbuf[pix[win]] = tri[win]

    local = np.flatnonzero(fbuf >= 0)
    tri = fbuf[local]
    xs, ys = local % box_w + bx0, local // box_w + by0
    # Barycentrics of the winners only, recomputed (cheaper than carrying them per fragment).
    k = coef[tri]
    depth = zbuf[local]
    bary = np.empty((len(tri), 3))
    bary[:, 0] = k[:, 0] * xs + k[:, 1] * ys + k[:, 2]
    bary[:, 1] = k[:, 3] * xs + k[:, 4] * ys + k[:, 5]
    bary[:, 2] = 1.0 - bary[:, 0] - bary[:, 1]
    bary *= depth[:, None] / corner_z[tri]
    return Fragments(pixel=ys * width + xs, depth=depth, face=ids[tri], bary=bary)


def _face_coefficients(tri_px: np.ndarray, tri_z: np.ndarray) -> np.ndarray:
    """Per face (non-degenerate), the affine screen functions (a·x + b·y + c) of the first two barycentric
    weights and of inverse depth, (F, 9), so each (face, pixel) fragment costs a few multiply-adds."""
    a, b, c = tri_px[:, 0], tri_px[:, 1], tri_px[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    inv = 1.0 / area
    coef = np.empty((len(tri_px), 9))
    for row, (p, q) in enumerate(((b, c), (c, a))):
        coef[:, 3 * row] = (p[:, 1] - q[:, 1]) * inv
        coef[:, 3 * row + 1] = (q[:, 0] - p[:, 0]) * inv
        coef[:, 3 * row + 2] = (p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]) * inv
    # 1/z = w0/z0 + w1/z1 + (1 - w0 - w1)/z2 is affine in the pixel too.
    inv_z = 1.0 / tri_z
    d0, d1 = inv_z[:, 0] - inv_z[:, 2], inv_z[:, 1] - inv_z[:, 2]
    coef[:, 6:9] = coef[:, 0:3] * d0[:, None] + coef[:, 3:6] * d1[:, None]
    coef[:, 8] += inv_z[:, 2]
    return coef


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
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if world_to_camera is not None:
        t = np.asarray(world_to_camera, dtype=np.float64)
        v = v @ t[:3, :3].T + t[:3, 3]
    frags = rasterize(v, f, camera, near=near, max_candidates=max_candidates)
    width, height = int(camera.width), int(camera.height)
    col = np.asarray(colors, dtype=np.float64)
    light = np.asarray(light_dir, dtype=np.float64)
    light = light / np.linalg.norm(light)

    rgb = np.empty((height * width, 3))
    rgb[:] = np.asarray(background, dtype=np.float64) / 255.0
    if len(frags.pixel):
        hit_faces = f[frags.face]
        w = frags.bary
        if smooth:
            normals = (vertex_normals(v, f)[hit_faces] * w[..., None]).sum(1)
        else:
            fv = v[hit_faces]
            normals = np.cross(fv[:, 1] - fv[:, 0], fv[:, 2] - fv[:, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        points = (v[hit_faces] * w[..., None]).sum(1)
        # Two-sided lighting: flip normals that face away from the viewer.
        facing = np.einsum("ij,ij->i", normals, points) > 0
        normals[facing] *= -1
        shade = ambient + (1 - ambient) * np.clip(normals @ light, 0.0, 1.0)
        base = (col[hit_faces] * w[..., None]).sum(1) if col.ndim == 2 else np.broadcast_to(col, (len(w), 3))
        rgb[frags.pixel] = base * shade[:, None]
    image = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(height, width, 3)
    depth_map = np.zeros(height * width, dtype=np.float32)
    depth_map[frags.pixel] = frags.depth
    face_index = np.full(height * width, -1, dtype=np.int64)
    face_index[frags.pixel] = frags.face
    return RenderResult(
        rgb=image,
        depth=depth_map.reshape(height, width),
        mask=(face_index >= 0).reshape(height, width),
        face_index=face_index.reshape(height, width),
    )

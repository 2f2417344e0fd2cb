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


def _expand_boxes(x0: np.ndarray, y0: np.ndarray, w: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, ...]:
    """All (triangle, x, y) pixel candidates inside each triangle's integer bounding box."""
    counts = w * h
    tri = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    local = np.arange(counts.sum()) - np.repeat(starts, counts)
    wt = w[tri]
    return tri, x0[tri] + local % wt, y0[tri] + local // wt


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


def rasterize(
    cam_vertices: np.ndarray,
    faces: np.ndarray,
    camera: PinholeCamera,
    near: float = 1e-3,
    max_candidates: int = 4_000_000,
    cull_back: bool = False,
) -> Fragments:
    """Z-buffer a triangle mesh given in the camera optical frame into per-pixel fragments.

    Triangles with a vertex closer than ``near`` are skipped; at most ``max_candidates``
    (triangle, pixel) pairs are held at once. ``cull_back`` skips faces seen from behind (their
    outward, counter-clockwise winding appears clockwise), which halves the work on closed meshes.
    """
    if camera.is_distorted or camera.skew:
        raise ValueError("rasterize renders ideal pinhole images: pass a camera without distortion or skew")
    v = np.asarray(cam_vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    width, height = int(camera.width), int(camera.height)
    zbuf = np.full(height * width, np.inf)
    fbuf = np.full(height * width, -1, dtype=np.int64)

    z = v[:, 2]
    safe_z = np.where(z > near, z, 1.0)
    px = np.stack([camera.fx * v[:, 0] / safe_z + camera.cx, camera.fy * v[:, 1] / safe_z + camera.cy], 1)
    keep = np.all(z[f] > near, axis=1)
    tri_px = px[f]  # (F, 3, 2)
    x0 = np.maximum(np.ceil(tri_px[..., 0].min(1)), 0).astype(np.int64)
    x1 = np.minimum(np.floor(tri_px[..., 0].max(1)), width - 1).astype(np.int64)
    y0 = np.maximum(np.ceil(tri_px[..., 1].min(1)), 0).astype(np.int64)
    y1 = np.minimum(np.floor(tri_px[..., 1].max(1)), height - 1).astype(np.int64)
    coef, area = _face_coefficients(tri_px, z[f])
    keep &= (x1 >= x0) & (y1 >= y0) & (np.abs(area) > 1e-12)
    if cull_back:
        keep &= area < 0  # pixel y points down, so front faces have negative signed area
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
        k = coef[tri]
        w0 = k[:, 0] * xs + k[:, 1] * ys + k[:, 2]
        w1 = k[:, 3] * xs + k[:, 4] * ys + k[:, 5]
        inside = (w0 >= 0) & (w1 >= 0) & (w0 + w1 <= 1)
        tri, xs, ys, k = tri[inside], xs[inside], ys[inside], k[inside]
        depth = 1.0 / (k[:, 6] * xs + k[:, 7] * ys + k[:, 8])
        pix = ys * width + xs
        # Nearest candidate per pixel (also against earlier chunks); ties keep one of the equals.
        np.minimum.at(zbuf, pix, depth)
        win = depth == zbuf[pix]
        fbuf[pix[win]] = tri[win]

    pixel = np.flatnonzero(fbuf >= 0)
    face = fbuf[pixel]
    # Barycentrics of the winners only, recomputed (cheaper than carrying them per candidate).
    xs, ys, k = pixel % width, pixel // width, coef[face]
    w0 = k[:, 0] * xs + k[:, 1] * ys + k[:, 2]
    w1 = k[:, 3] * xs + k[:, 4] * ys + k[:, 5]
    screen = np.stack([w0, w1, 1.0 - w0 - w1], 1)
    depth = zbuf[pixel]
    return Fragments(pixel=pixel, depth=depth, face=face, bary=screen * depth[:, None] / z[f[face]])


def _face_coefficients(tri_px: np.ndarray, tri_z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per face, the affine screen functions (a·x + b·y + c) of the first two barycentric weights and of
    inverse depth, (F, 9), so each (face, pixel) candidate costs a few multiply-adds; plus the signed screen area."""
    a, b, c = tri_px[:, 0], tri_px[:, 1], tri_px[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    valid = np.abs(area) > 1e-12
    inv = 1.0 / np.where(valid, area, 1.0)
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
    return coef, area


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

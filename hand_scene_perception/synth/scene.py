"""Procedural indoor tabletop scenes from a seed: room corner, table, boxes, procedural textures.

World frame: metres, +z up, floor at z = 0; the person stands on the -y side of the table and
looks toward +y. Every surface is a textured rectangle (:class:`Quad`), so a frame is rendered by
casting each pixel's ray against the few rectangles (exact depth, texture at pixel resolution,
no triangle setup), which is much cheaper than rasterising finely subdivided meshes.
:meth:`Scene.to_mesh` gives the same surfaces as a per-vertex-coloured triangle mesh for
:func:`.raster.render_mesh`, and :meth:`Scene.sample_surface` gives ground-truth points and
normals for chamfer evaluation of reconstructed maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from ..core.camera import PinholeCamera

TEXTURE_SIZE = 256  # texels per side; a power of two so tiling is a bit mask


@dataclass(frozen=True)
class Quad:
    """A one-sided textured rectangle: ``origin + s·edge_u + t·edge_v`` for s, t in [0, 1].

    The visible side is where ``cross(edge_u, edge_v)`` points. ``texture`` indexes the scene's
    texture atlas, tiled every ``TEXTURE_SIZE / texels_per_m`` metres."""

    origin: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    texture: int
    texels_per_m: float
    name: str

    @cached_property
    def normal(self) -> np.ndarray:
        """Unit normal of the visible side (cached: the ray caster asks for it every frame)."""
        n = np.cross(self.edge_u, self.edge_v)
        return n / np.linalg.norm(n)

    @property
    def area(self) -> float:
        """Surface area in square metres."""
        return float(np.linalg.norm(np.cross(self.edge_u, self.edge_v)))


@dataclass(frozen=True)
class Scene:
    """Static scene: rectangles, a (K, T, T, 3) uint8 texture atlas, and the table's graspable boxes.

    ``boxes``: (N, 4) rows of (centre x, centre y, top z, half-size along its shorter side),
    the targets the animated hands reach for. ``table_top_z``: height of the table top; ``table_front_y``: y of
    the table edge the person stands at."""

    quads: tuple[Quad, ...]
    textures: np.ndarray
    boxes: np.ndarray
    table_top_z: float
    table_front_y: float

    @cached_property
    def corners(self) -> np.ndarray:
        """Corners of every quad (Q, 4, 3) in the order origin, +u, +u+v, +v (cached for the ray caster)."""
        return np.stack(
            [q.origin + np.array([[0, 0], [1, 0], [1, 1], [0, 1]]) @ np.stack([q.edge_u, q.edge_v]) for q in self.quads]
        )

    @cached_property
    def normals(self) -> np.ndarray:
        """(Q, 3) unit normals of the quads' visible sides."""
        return np.stack([q.normal for q in self.quads])

    @cached_property
    def packed_atlas(self) -> np.ndarray:
        """The texture atlas flattened to one uint32 per texel (RGBX bytes) plus a last, black texel: one
        1-D gather per frame instead of a slow 3-byte fancy index."""
        rgbx = np.zeros((self.textures.shape[0] * TEXTURE_SIZE * TEXTURE_SIZE + 1, 4), np.uint8)
        rgbx[:-1, :3] = self.textures.reshape(-1, 3)
        return rgbx.view(np.uint32).ravel()

    def surface_names(self) -> tuple[str, ...]:
        """Quad names in index order (the values of :attr:`SceneRender.surface`)."""
        return tuple(q.name for q in self.quads)

    def blocks(self, points: np.ndarray, eye: np.ndarray, margin_m: float = 1e-3) -> np.ndarray:
        """(N,) whether the straight segment from each point (N, 3) to ``eye`` (3,) crosses any rectangle
        (either side), ignoring the first ``margin_m`` next to the point (points on a surface are not hidden by
        it): line-of-sight occlusion by the scene without rendering."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        ray = np.asarray(eye, dtype=np.float64)[None] - p
        origin = self.corners[:, 0]
        edge_u, edge_v = self.corners[:, 1] - origin, self.corners[:, 3] - origin
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.einsum("qk,nqk->nq", self.normals, origin[None] - p[:, None]) / (ray @ self.normals.T)
            rel = p[:, None] + t[..., None] * ray[:, None] - origin[None]
            s = np.einsum("nqk,qk->nq", rel, edge_u) / np.einsum("qk,qk->q", edge_u, edge_u)
            r = np.einsum("nqk,qk->nq", rel, edge_v) / np.einsum("qk,qk->q", edge_v, edge_v)
            near = margin_m / np.linalg.norm(ray, axis=1, keepdims=True)
            return np.any((t > near) & (t < 1.0) & (s >= 0) & (s <= 1) & (r >= 0) & (r <= 1), axis=1)

    def sample_surface(self, num_points: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) points uniformly by area on all surfaces and their (N, 3) unit normals, for chamfer GT."""
        rng = np.random.default_rng(seed)
        areas = np.array([q.area for q in self.quads])
        which = rng.choice(len(self.quads), size=num_points, p=areas / areas.sum())
        st = rng.random((num_points, 2))
        origin = np.stack([q.origin for q in self.quads])[which]
        eu = np.stack([q.edge_u for q in self.quads])[which]
        ev = np.stack([q.edge_v for q in self.quads])[which]
        normals = np.stack([q.normal for q in self.quads])[which]
        return origin + st[:, :1] * eu + st[:, 1:] * ev, normals

    def to_mesh(self, cell_m: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vertices (V, 3), faces (F, 3) and per-vertex colours (V, 3) in [0, 1]; each quad is
        subdivided into cells of about ``cell_m`` so vertex colours carry the texture coarsely."""
        verts, faces, colors = [], [], []
        offset = 0
        for quad in self.quads:
            nu = max(1, round(np.linalg.norm(quad.edge_u) / cell_m))
            nv = max(1, round(np.linalg.norm(quad.edge_v) / cell_m))
            s, t = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1))
            s, t = s.ravel(), t.ravel()
            verts.append(quad.origin + s[:, None] * quad.edge_u + t[:, None] * quad.edge_v)
            colors.append(self._texel(quad, s * np.linalg.norm(quad.edge_u), t * np.linalg.norm(quad.edge_v)) / 255.0)
            idx = np.arange((nu + 1) * (nv + 1)).reshape(nv + 1, nu + 1)
            a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, 1:].ravel(), idx[1:, :-1].ravel()
            faces.append(np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]) + offset)
            offset += len(s)
        return np.concatenate(verts), np.concatenate(faces), np.concatenate(colors)

    def _texel(self, quad: Quad, u_m: np.ndarray, v_m: np.ndarray) -> np.ndarray:
        """Texture colour (N, 3) uint8 at in-plane coordinates (metres from the quad's origin)."""
        mask = TEXTURE_SIZE - 1
        iu = (u_m * quad.texels_per_m).astype(np.int64) & mask
        iv = (v_m * quad.texels_per_m).astype(np.int64) & mask
        return self.textures[quad.texture, iv, iu]


@dataclass(frozen=True)
class SceneRender:
    """A scene seen from one camera: albedo (H, W, 3) uint8, surface normal·light shading factor
    (H, W) float32, depth (H, W) float32 metres (0 = no surface), surface (H, W) int16 quad index
    (-1 = none)."""

    albedo: np.ndarray
    shading: np.ndarray
    depth: np.ndarray
    surface: np.ndarray


# ----------------------------------------------------------------------------- textures


def _fractal_noise(rng: np.random.Generator, size: int, beta: float) -> np.ndarray:
    """Tileable noise in [0, 1] with a 1/f^beta spectrum (periodic by construction, so tiling shows no seams)."""
    freq = np.fft.fftfreq(size)
    radius = np.sqrt(freq[:, None] ** 2 + freq[None, :] ** 2)
    radius[0, 0] = 1.0
    spectrum = np.fft.fft2(rng.standard_normal((size, size))) / radius**beta
    spectrum[0, 0] = 0.0
    field = np.real(np.fft.ifft2(spectrum))
    return (field - field.min()) / max(float(np.ptp(field)), 1e-12)


def _mix(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Blend two RGB colours by a per-texel weight field."""
    return a * (1 - weight[..., None]) + b * weight[..., None]


def _checker_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Floor tiles: a checker of two colours with grout lines and a little grime."""
    base = rng.uniform(0.35, 0.85, 3)
    other = np.clip(base * rng.uniform(0.55, 0.8), 0, 1)
    cells = int(rng.choice([2, 4]))
    i = np.arange(size) * cells // size
    checker = ((i[:, None] + i[None, :]) % 2).astype(np.float64)
    grout = (np.arange(size) % (size // cells) < 3).astype(np.float64)
    grout = np.maximum(grout[:, None], grout[None, :])
    color = _mix(base, other, checker)
    color = _mix(color, np.array([0.3, 0.3, 0.3]), 0.8 * grout)
    return color * (0.85 + 0.3 * _fractal_noise(rng, size, 1.5))[..., None]


def _noise_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Plaster/fabric-like walls: a base colour modulated by multi-scale noise."""
    base = rng.uniform(0.45, 0.9, 3)
    shade = 0.7 + 0.45 * _fractal_noise(rng, size, 1.2) + 0.1 * _fractal_noise(rng, size, 0.4)
    return base * shade[..., None]


def _wood_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Table tops: wood grain (stripes bent by low-frequency noise, fine fibres) in a stain drawn away from
    skin hues (dark walnut, grey-washed, ebonised, painted), so hands stand out as they do on real desks."""
    stains = np.array([[0.36, 0.23, 0.15], [0.55, 0.55, 0.52], [0.22, 0.2, 0.19], [0.3, 0.42, 0.5], [0.78, 0.8, 0.8]])
    light = stains[rng.integers(len(stains))] * rng.uniform(0.85, 1.15)
    dark = light * rng.uniform(0.55, 0.75)
    rows = np.arange(size)[:, None] / size
    warp = _fractal_noise(rng, size, 2.2)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (int(rng.integers(14, 26)) * rows + 0.8 * warp))
    grain = _fractal_noise(rng, size, 0.6)
    return _mix(light, dark, np.clip(stripes**3 + 0.25 * grain, 0, 1))


def _cardboard_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Boxes: a saturated colour with a printed label-like band and noise, so boxes have trackable corners."""
    base = rng.uniform(0.15, 0.9, 3)
    color = base * (0.85 + 0.3 * _fractal_noise(rng, size, 1.0))[..., None]
    band = (np.abs(np.arange(size) - size / 2) < size / 8)[:, None] & (np.arange(size) < size * 3 // 4)[None, :]
    return np.where(band[..., None], 1.0 - 0.8 * base, color)


_TEXTURE_MAKERS = {
    "checker": _checker_texture,
    "noise": _noise_texture,
    "wood": _wood_texture,
    "cardboard": _cardboard_texture,
}


# ----------------------------------------------------------------------------- geometry


def _box_quads(
    centre: np.ndarray, half: np.ndarray, yaw: float, texture: int, texels_per_m: float, name: str
) -> list[Quad]:
    """Top and four sides (outward normals) of a box standing on z = centre.z - half.z, turned by ``yaw``."""
    c, s = np.cos(yaw), np.sin(yaw)
    ax = np.array([c, s, 0.0]) * half[0]
    ay = np.array([-s, c, 0.0]) * half[1]
    az = np.array([0.0, 0.0, half[2]])
    faces = [
        ("top", centre - ax - ay + az, 2 * ax, 2 * ay),
        ("front", centre - ax - ay - az, 2 * ax, 2 * az),
        ("back", centre + ax + ay - az, -2 * ax, 2 * az),
        ("left", centre - ax + ay - az, -2 * ay, 2 * az),
        ("right", centre + ax - ay - az, 2 * ay, 2 * az),
    ]
    return [Quad(o, u, v, texture, texels_per_m, f"{name}_{side}") for side, o, u, v in faces]


def _side_wall(x: float, back_y: float, height: float, texture: int, texels_per_m: float, name: str) -> Quad:
    """A side wall at ``x`` from the floor's near edge to the back wall, facing the room's interior."""
    if x > 0:
        return Quad(
            np.array([x, back_y, 0.0]),
            np.array([0.0, -back_y - 3.0, 0.0]),
            np.array([0.0, 0.0, height]),
            texture,
            texels_per_m,
            name,
        )
    return Quad(
        np.array([x, -3.0, 0.0]),
        np.array([0.0, back_y + 3.0, 0.0]),
        np.array([0.0, 0.0, height]),
        texture,
        texels_per_m,
        name,
    )


def make_scene(seed: int, num_boxes: int = 3, closed: bool = False) -> Scene:
    """A random room corner with a wooden table and ``num_boxes`` boxes on it, deterministic in ``seed``;
    ``closed`` adds the front and second side walls and a ceiling (same scene otherwise)."""
    rng = np.random.default_rng(seed)
    kinds = ["checker", "noise", "noise", "wood", *(["cardboard"] * num_boxes)]
    textures = np.stack([_TEXTURE_MAKERS[k](rng, TEXTURE_SIZE) for k in kinds])
    textures = (np.clip(textures, 0, 1) * 255 + 0.5).astype(np.uint8)
    floor_tex, wall_a, wall_b, wood = 0, 1, 2, 3

    back_y = rng.uniform(1.0, 1.6)
    side_x = rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 1.5)
    height = 2.6
    quads = [
        Quad(
            np.array([-3.0, -3.0, 0.0]),
            np.array([6.0, 0.0, 0.0]),
            np.array([0.0, back_y + 3.0, 0.0]),
            floor_tex,
            rng.uniform(250, 400),
            "floor",
        ),
        Quad(
            np.array([-3.0, back_y, 0.0]),
            np.array([6.0, 0.0, 0.0]),
            np.array([0.0, 0.0, height]),
            wall_a,
            rng.uniform(150, 300),
            "wall_back",
        ),
    ]
    quads.append(_side_wall(side_x, back_y, height, wall_b, rng.uniform(150, 300), "wall_side"))

    top_z = rng.uniform(0.70, 0.78)
    table_half = np.array([rng.uniform(0.5, 0.7), rng.uniform(0.35, 0.45), 0.02])
    table_centre = np.array([0.0, 0.15, top_z - table_half[2]])
    wood_density = rng.uniform(300, 500)
    quads += _box_quads(table_centre, table_half, 0.0, wood, wood_density, "table")
    leg = np.array([0.025, 0.025, (top_z - 2 * table_half[2]) / 2])
    for i, (sx, sy) in enumerate(((-1, -1), (1, -1), (1, 1), (-1, 1))):
        at = np.array([sx * (table_half[0] - 0.06), table_centre[1] + sy * (table_half[1] - 0.06), leg[2]])
        quads += _box_quads(at, leg, 0.0, wood, wood_density, f"leg{i}")

    boxes = []
    xs = np.linspace(-0.2, 0.2, num_boxes) + rng.uniform(-0.04, 0.04, num_boxes) if num_boxes > 1 else np.zeros(1)
    for i in range(num_boxes):
        half = np.array([rng.uniform(0.03, 0.07), rng.uniform(0.03, 0.07), rng.uniform(0.03, 0.08)])
        # Within easy reach: about a hand span behind the front edge.
        centre = np.array([xs[i], table_centre[1] - table_half[1] + rng.uniform(0.14, 0.22), top_z + half[2]])
        yaw = rng.uniform(-0.6, 0.6)
        quads += _box_quads(centre, half, yaw, 4 + i, rng.uniform(1500, 2500), f"box{i}")
        boxes.append([centre[0], centre[1], top_z + 2 * half[2], min(half[0], half[1])])
    if closed:
        # The rest of the room, for cameras all around the table (multi-view rigs): front wall behind the
        # person, the opposite side wall and a ceiling. Drawn last, so open scenes keep their random stream.
        front_y = table_centre[1] - table_half[1] - rng.uniform(1.2, 1.8)
        quads += [
            Quad(
                np.array([3.0, front_y, 0.0]),
                np.array([-6.0, 0.0, 0.0]),
                np.array([0.0, 0.0, height]),
                wall_a,
                rng.uniform(150, 300),
                "wall_front",
            ),
            _side_wall(
                -np.sign(side_x) * rng.uniform(1.0, 1.5), back_y, height, wall_b, rng.uniform(150, 300), "wall_side2"
            ),
            Quad(
                np.array([-3.0, -3.0, height]),
                np.array([0.0, back_y + 3.0, 0.0]),
                np.array([6.0, 0.0, 0.0]),
                wall_a,
                rng.uniform(100, 200),
                "ceiling",
            ),
        ]
    return Scene(
        quads=tuple(quads),
        textures=textures,
        boxes=np.array(boxes).reshape(-1, 4),
        table_top_z=top_z,
        table_front_y=float(table_centre[1] - table_half[1]),
    )


# ----------------------------------------------------------------------------- rendering


def pixel_rays(camera: PinholeCamera) -> tuple[np.ndarray, np.ndarray]:
    """Normalised image coordinates of pixel centres: x (W,) = (u - cx)/fx and y (H,) = (v - cy)/fy.
    A pixel's camera ray is (x[u], y[v], 1), so its ray parameter equals its depth."""
    return (
        ((np.arange(camera.width) - camera.cx) / camera.fx).astype(np.float32),
        ((np.arange(camera.height) - camera.cy) / camera.fy).astype(np.float32),
    )


def _clipped_bboxes(corners_cam: np.ndarray, camera: PinholeCamera, near: float) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive pixel bounding boxes (Q, 4) as (x0, x1, y0, y1) of convex quads (Q, 4, 3) in the camera
    frame, clipped to z > near, and (Q,) whether each is seen at all; all quads at once."""
    z = corners_cam[..., 2]
    nxt = np.roll(corners_cam, -1, axis=1)
    z_next = nxt[..., 2]
    crosses = (z > near) != (z_next > near)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(crosses, (near - z) / (z_next - z), 0.0)
    # Candidates: the corners in front of the near plane and the points where edges cross it.
    points = np.concatenate([corners_cam, corners_cam + frac[..., None] * (nxt - corners_cam)], axis=1)
    valid = np.concatenate([z > near, crosses], axis=1)
    depth = np.where(valid, points[..., 2], 1.0)
    u = camera.fx * points[..., 0] / depth + camera.cx
    v = camera.fy * points[..., 1] / depth + camera.cy
    box = np.stack(
        [
            np.floor(np.where(valid, u, np.inf).min(1)).clip(0, None),
            np.ceil(np.where(valid, u, -np.inf).max(1)).clip(None, camera.width - 1),
            np.floor(np.where(valid, v, np.inf).min(1)).clip(0, None),
            np.ceil(np.where(valid, v, -np.inf).max(1)).clip(None, camera.height - 1),
        ],
        1,
    )
    seen = valid.any(1) & (box[:, 1] >= box[:, 0]) & (box[:, 3] >= box[:, 2])
    return np.where(seen[:, None], box, 0).astype(np.int64), seen


def render_scene(
    scene: Scene,
    camera: PinholeCamera,
    world_to_camera: np.ndarray,
    light_dir_world: np.ndarray,
    ambient: float = 0.4,
    near: float = 0.01,
) -> SceneRender:
    """Cast every pixel's ray against the scene's rectangles (only inside each one's screen bounding box,
    back faces culled) and look up texture and Lambertian shading of the nearest hit.

    Per rectangle only masked copies of depth, quad index and texel coordinates are made (no boolean
    gathers); texture and shading are looked up once per pixel at the end."""
    width, height = int(camera.width), int(camera.height)
    rx, ry = pixel_rays(camera)
    rot = np.asarray(world_to_camera[:3, :3], dtype=np.float64)
    trans = np.asarray(world_to_camera[:3, 3], dtype=np.float64)
    eye_world = -rot.T @ trans
    light = np.asarray(light_dir_world, dtype=np.float64)
    light = light / np.linalg.norm(light)

    f32 = np.float32
    depth = np.full((height, width), np.inf, dtype=np.float32)
    surface = np.full((height, width), -1, dtype=np.int16)
    u_map = np.zeros((height, width), dtype=np.float32)
    v_map = np.zeros((height, width), dtype=np.float32)
    boxes, seen = _clipped_bboxes(scene.corners @ rot.T + trans, camera, near)
    seen &= np.einsum("qk,qk->q", scene.normals, eye_world - scene.corners[:, 0]) > 0  # back faces culled
    for index in np.flatnonzero(seen):
        quad = scene.quads[index]
        x0, x1, y0, y1 = boxes[index]
        normal = quad.normal
        # In the camera frame the plane is n·p = d; a ray t·r meets it at t = d / (n·r), and the in-plane
        # texel coordinates are affine in t·r: u = (t·r - o)·e_u · texels_per_m / |e_u|.
        n_cam = rot @ normal
        o_cam = rot @ quad.origin + trans
        len_u, len_v = np.linalg.norm(quad.edge_u), np.linalg.norm(quad.edge_v)
        e_u = rot @ quad.edge_u * (quad.texels_per_m / len_u)
        e_v = rot @ quad.edge_v * (quad.texels_per_m / len_v)
        xs, ys = rx[x0 : x1 + 1][None, :], ry[y0 : y1 + 1][:, None]
        denom = xs * f32(n_cam[0]) + (ys * f32(n_cam[1]) + f32(n_cam[2]))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = f32(n_cam @ o_cam) / denom
        u = t * (xs * f32(e_u[0]) + (ys * f32(e_u[1]) + f32(e_u[2]))) - f32(o_cam @ e_u)
        v = t * (xs * f32(e_v[0]) + (ys * f32(e_v[1]) + f32(e_v[2]))) - f32(o_cam @ e_v)
        block = (slice(y0, y1 + 1), slice(x0, x1 + 1))
        hit = (t > near) & (t < depth[block]) & (u >= 0) & (v >= 0)
        hit &= (u <= f32(len_u * quad.texels_per_m)) & (v <= f32(len_v * quad.texels_per_m))
        np.copyto(depth[block], t, where=hit)
        np.copyto(surface[block], np.int16(index), where=hit)
        np.copyto(u_map[block], u, where=hit)
        np.copyto(v_map[block], v, where=hit)

    # Per quad (plus a last entry that surface index -1 picks up): texture offset into the flattened atlas
    # (the last one points at an appended black texel) and Lambertian shading.
    wrap = TEXTURE_SIZE - 1
    atlas = scene.packed_atlas
    offsets = np.array([q.texture * TEXTURE_SIZE * TEXTURE_SIZE for q in scene.quads] + [len(atlas) - 1])
    texel = offsets.astype(np.int32)[surface]
    texel += (u_map.astype(np.int32) & wrap) + (v_map.astype(np.int32) & wrap) * TEXTURE_SIZE
    lambert = np.maximum(scene.normals @ light, 0.0).astype(np.float32)
    shading = np.append(f32(ambient) + f32(1 - ambient) * lambert, f32(0))
    depth[surface < 0] = 0
    albedo = cv2.cvtColor(np.take(atlas, texel).view(np.uint8).reshape(height, width, 4), cv2.COLOR_RGBA2RGB)
    return SceneRender(albedo=albedo, shading=shading[surface], depth=depth, surface=surface)

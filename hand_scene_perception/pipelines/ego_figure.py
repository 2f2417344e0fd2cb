"""A picture of an ego reconstruction a person can judge: the scene, the hands and their paths in one 3D view.

Why: the top/front overview (ego_outputs.render_overview) shows extents and paths; this view shows what the
reconstruction looks like: the coloured scene cloud with depth occlusion, the hand meshes shaded in their side's
colour where they are, the camera path with its last viewing frustum, and each hand's wrist path, seen from a
virtual camera behind and above the recording camera. Pure numpy + PIL; hand meshes go through synth's rasteriser.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..core.camera import PinholeCamera
from ..core.hand_model.side import HandSide
from ..core.raster import look_at, render_mesh
from .ego_outputs import BACKGROUND_RGB, CAMERA_RGB, SIDE_RGB

_TEXT_RGB = (230, 230, 230)
_FOV_DEG = 60.0
# The virtual eye: this far behind the recording camera's mean pose, this high above it (metres per metre of scene).
_BACK = 0.35
_UP = 0.3
_POINT_PX = 3


@dataclass(frozen=True)
class HandMesh:
    """One hand to draw: world-frame vertices (V, 3), faces (F, 3), side."""

    vertices: np.ndarray
    faces: np.ndarray
    side: HandSide


def render_scene_view(
    map_points: np.ndarray,
    map_colors: np.ndarray,
    camera_poses: np.ndarray,
    hands: Sequence[HandMesh] = (),
    paths: Sequence[tuple[HandSide, np.ndarray]] = (),
    size: tuple[int, int] = (960, 720),
    title: str = "",
) -> Image.Image:
    """Render the scene from a virtual viewpoint; world frame = the pipeline's (optical axes of the first camera).

    camera_poses: (N, 4, 4) T_world_camera of the recording camera (at least one); paths: per hand track its side
    and (K, 3) world wrist positions. Points are splatted nearest-first with a z-buffer shared with the meshes.
    """
    poses = np.asarray(camera_poses, np.float64).reshape(-1, 4, 4)
    if not len(poses):
        raise ValueError("at least one camera pose is needed to place the view")
    width, height = size
    points = np.asarray(map_points, np.float64).reshape(-1, 3)
    colors = np.asarray(map_colors, np.uint8).reshape(-1, 3)
    scale = _scene_scale(points, poses)
    world_to_view = _viewpoint(points, poses, hands, scale)
    focal = 0.5 * width / np.tan(np.radians(_FOV_DEG) / 2)
    view = PinholeCamera.from_intrinsics(focal, focal, (width - 1) / 2, (height - 1) / 2, width, height)

    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = BACKGROUND_RGB
    zbuffer = np.full((height, width), np.inf)
    for hand in hands:
        colour = np.asarray(SIDE_RGB[hand.side], np.float64) / 255.0
        render = render_mesh(hand.vertices, hand.faces, view, world_to_view, colors=0.35 + 0.65 * colour)
        closer = render.mask & (render.depth < zbuffer)
        canvas[closer] = render.rgb[closer]
        zbuffer[closer] = render.depth[closer]
    _splat_points(canvas, zbuffer, view, world_to_view, points, colors)

    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    _draw_polyline(draw, view, world_to_view, poses[:, :3, 3], CAMERA_RGB, 2)
    _draw_frustum(draw, view, world_to_view, poses[-1], scale)
    for side, path in paths:
        _draw_polyline(draw, view, world_to_view, np.asarray(path, np.float64).reshape(-1, 3), SIDE_RGB[side], 2)
    font = ImageFont.load_default()
    legend = f"{len(points):,} map points   {len(hands)} hand(s)   camera path (yellow)   left (blue)   right (red)"
    draw.text((10, height - 20), legend, fill=_TEXT_RGB, font=font)
    if title:
        draw.text((10, 8), title, fill=_TEXT_RGB, font=font)
    return image


def _scene_scale(points: np.ndarray, poses: np.ndarray) -> float:
    """A robust size of everything shown, in metres (at least 0.5 m)."""
    content = np.vstack([poses[:, :3, 3]] + ([np.percentile(points, [2, 98], axis=0)] if len(points) else []))
    return max(float(np.ptp(content, axis=0).max()), 0.5)


def _viewpoint(points: np.ndarray, poses: np.ndarray, hands: Sequence[HandMesh], scale: float) -> np.ndarray:
    """World→view transform: behind and above the recording camera, looking at the scene's centre.

    "Up" is the recording camera's -y (optical frame), averaged over the trajectory, so the picture stands the
    way the user held the camera."""
    forward = poses[:, :3, 2].mean(axis=0)
    forward /= max(np.linalg.norm(forward), 1e-9)
    up = -poses[:, :3, 1].mean(axis=0)
    up -= forward * (up @ forward)
    up /= max(np.linalg.norm(up), 1e-9)
    if len(points):
        target = np.median(points, axis=0)
    elif hands:
        target = np.vstack([h.vertices for h in hands]).mean(axis=0)
    else:
        target = poses[:, :3, 3].mean(axis=0) + 0.5 * forward
    eye = poses[:, :3, 3].mean(axis=0) - _BACK * scale * forward + _UP * scale * up
    return look_at(eye, target, up)


def _splat_points(
    canvas: np.ndarray,
    zbuffer: np.ndarray,
    view: PinholeCamera,
    world_to_view: np.ndarray,
    points: np.ndarray,
    colors: np.ndarray,
) -> None:
    """Square point splats with a z-test against ``zbuffer`` (meshes already drawn), nearest write kept."""
    if not len(points):
        return
    cam = points @ world_to_view[:3, :3].T + world_to_view[:3, 3]
    front = cam[:, 2] > 0.05
    cam, colors = cam[front], colors[front]
    pixels = np.floor(view.project(cam) + 0.5).astype(np.int64)
    height, width = zbuffer.shape
    flat_z = zbuffer.reshape(-1)
    flat_rgb = canvas.reshape(-1, 3)
    for du in range(_POINT_PX):
        for dv in range(_POINT_PX):
            col, row = pixels[:, 0] + du, pixels[:, 1] + dv
            inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
            index = row[inside] * width + col[inside]
            depth = cam[inside, 2]
            # Nearest point per pixel: sort by (pixel, depth) and keep each pixel's first.
            order = np.lexsort((depth, index))
            index, depth = index[order], depth[order]
            first = np.ones(len(index), bool)
            first[1:] = index[1:] != index[:-1]
            index, depth, source = index[first], depth[first], np.flatnonzero(inside)[order][first]
            visible = depth < flat_z[index]
            flat_z[index[visible]] = depth[visible]
            flat_rgb[index[visible]] = colors[source[visible]]


def _draw_polyline(
    draw: ImageDraw.ImageDraw,
    view: PinholeCamera,
    world_to_view: np.ndarray,
    world: np.ndarray,
    colour: tuple[int, int, int],
    width: int,
) -> None:
    """A 3D polyline (no occlusion: paths stay readable through the cloud); segments behind the view are cut."""
    if len(world) < 2:
        return
    cam = world @ world_to_view[:3, :3].T + world_to_view[:3, 3]
    pixels = view.project(np.where(cam[:, 2:3] > 0.05, cam, np.nan))
    for start, end in itertools.pairwise(pixels):
        if np.all(np.isfinite(start)) and np.all(np.isfinite(end)):
            draw.line([tuple(start), tuple(end)], fill=colour, width=width)


def _draw_frustum(
    draw: ImageDraw.ImageDraw, view: PinholeCamera, world_to_view: np.ndarray, pose: np.ndarray, scale: float
) -> None:
    """The recording camera's last pose as a small pyramid (4:3, 60° wide) pointing where it looked."""
    depth = 0.06 * scale
    corners = np.array([[-0.58, -0.43, 1.0], [0.58, -0.43, 1.0], [0.58, 0.43, 1.0], [-0.58, 0.43, 1.0]]) * depth
    world = np.vstack([np.zeros(3), corners]) @ pose[:3, :3].T + pose[:3, 3]
    for a, b in ((0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1)):
        _draw_polyline(draw, view, world_to_view, world[[a, b]], CAMERA_RGB, 1)

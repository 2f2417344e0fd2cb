"""Rasterising posed Gaussians into an image: one function, :func:`render_gaussians`.

CPU (the embedded tier): a differentiable rasteriser in plain PyTorch, vectorised over (Gaussian, pixel) pairs
instead of 3DGS's per-tile CUDA loops. Each Gaussian is projected with the EWA approximation (its 3D covariance
through the projection's Jacobian, plus 3DGS's 0.3 px² low-pass), its footprint is the pixels where it can reach an
opacity of 1/255, and every (Gaussian, pixel) pair gets its alpha; pairs are ordered by pixel and, within a pixel,
front to back (a stable sort of depth-ordered pairs), and composited with each pixel's transmittance, a segmented
cumulative sum of log(1 - alpha) in float64. Autograd differentiates all of it (positions, rotations, scales,
colours, opacities); which pixels a Gaussian touches is chosen without gradient, as in 3DGS. When nothing needs a
gradient (no input requires one, or under ``torch.no_grad``: the node, previews, scoring) the same projection feeds
a compiled front-to-back loop instead (splat_kernel.py): two open-model hands at 256x256 in ~42 ms instead of
~170 ms on one core here; images agree within 2e-4 (its early termination).

CUDA (gsplat) is to come: Gaussians on another device are refused with that reason.

Pixel coordinates follow :class:`~hand_scene_perception.core.camera.PinholeCamera` (OpenCV): the centre of pixel
(row r, column c) is at (u, v) = (c, r). Pinhole cameras only: distortion is refused (undistort the image first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core.camera import PinholeCamera
from .mesh_gaussians import Gaussians
from .splat_kernel import composite

NEAR_M = 0.01
LOW_PASS_PX2 = 0.3
MAX_ALPHA = 0.99
MIN_ALPHA = 1.0 / 255.0
# Largest footprint radius in pixels: a Gaussian bigger than this on screen is cut there (a hand's Gaussians are a
# few pixels wide; the cap bounds the pairs a stray huge one could create).
MAX_RADIUS_PX = 64


@dataclass(frozen=True)
class Rendering:
    """image (H, W, 3) RGB in [0, 1] over the background; alpha (H, W) the Gaussians' coverage; depth (H, W) the
    alpha-weighted mean depth of what covers each pixel (metres, 0 where nothing does)."""

    image: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor


def render_gaussians(gaussians: Gaussians, camera: PinholeCamera, camera_from_frame: torch.Tensor | None = None,
                     background: tuple[float, float, float] = (0.0, 0.0, 0.0),
                     cull_back_facing: bool = False) -> Rendering:  # fmt: skip
    """Render one posed set of Gaussians (no batch dimensions) seen by ``camera``; ``camera_from_frame`` (4, 4) maps
    their frame into the camera's optical frame (None: they are in it already). ``cull_back_facing``: leave out the
    Gaussians whose own z axis (for mesh-anchored ones: their face's outward normal) points away from the camera;
    on an opaque closed hand they are hidden behind the front surface anyway, and they are half the work."""
    if gaussians.positions.dim() != 2:
        raise ValueError(f"one set of Gaussians, not a batch: positions are {tuple(gaussians.positions.shape)}")
    if camera.is_distorted:
        raise ValueError("render_gaussians takes pinhole cameras only: undistort the image (and camera) first")
    if gaussians.positions.device.type != "cpu":
        raise ValueError("only the CPU rasteriser exists yet (gsplat's CUDA one is to come): move the Gaussians to "
                         "the CPU")
    return _render_cpu(gaussians, camera, camera_from_frame, background, cull_back_facing)


def quaternion_matrices(quaternions: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotations of (..., 4) quaternions (w, x, y, z), normalised first."""
    w, x, y, z = torch.unbind(quaternions / torch.linalg.norm(quaternions, dim=-1, keepdim=True), dim=-1)
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
                       dim=-1).reshape(*quaternions.shape[:-1], 3, 3)  # fmt: skip


def _in_camera(gaussians: Gaussians, camera_from_frame: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Means (N, 3) and rotations (N, 3, 3; columns: the Gaussians' axes) in the camera's optical frame."""
    rotation = quaternion_matrices(gaussians.rotations)
    means = gaussians.positions
    if camera_from_frame is not None:
        transform = camera_from_frame.to(means.dtype)
        means = means @ transform[:3, :3].T + transform[:3, 3]
        rotation = transform[:3, :3] @ rotation
    return means, rotation


def _render_cpu(gaussians: Gaussians, camera: PinholeCamera, camera_from_frame: torch.Tensor | None,
                background: tuple[float, float, float], cull_back_facing: bool) -> Rendering:  # fmt: skip
    height, width = camera.height, camera.width
    means, rotation = _in_camera(gaussians, camera_from_frame)
    dtype = means.dtype
    pixel_count = height * width
    colors = gaussians.colors.to(dtype)
    background_rgb = torch.as_tensor(background, dtype=dtype)
    empty = Rendering(background_rgb.expand(height, width, 3).clone(), torch.zeros(height, width, dtype=dtype),
                      torch.zeros(height, width, dtype=dtype))  # fmt: skip

    visible = means[:, 2] > NEAR_M
    if cull_back_facing:  # (the camera sits at the origin: a front face's normal points back toward it)
        visible &= torch.sum(rotation[:, :, 2] * means, dim=-1).detach() < 0
    index = torch.nonzero(visible).ravel()
    index = index[torch.argsort(means[index, 2].detach())]  # front to back
    if not len(index):
        return empty
    differentiable = torch.is_grad_enabled() and any(
        value.requires_grad for value in (gaussians.positions, gaussians.rotations, gaussians.scales,
                                          gaussians.colors, gaussians.opacities))  # fmt: skip
    mean, turn, opacity = means[index], rotation[index], gaussians.opacities[index].to(dtype)
    cov = turn @ torch.diag_embed(gaussians.scales[index].to(dtype) ** 2) @ turn.transpose(-1, -2)  # visible only
    x, y, z = mean.unbind(-1)
    fx, fy = camera.fx, camera.fy
    # EWA: the projection's Jacobian d(u, v)/d(x, y, z) at the mean, rows (fx/z, 0, -fx x/z²), (0, fy/z, -fy y/z²)
    zero = torch.zeros_like(z)
    jacobian = torch.stack([torch.stack([fx / z, zero, -fx * x / z**2], -1),
                            torch.stack([zero, fy / z, -fy * y / z**2], -1)], -2)  # fmt: skip
    screen = jacobian @ cov @ jacobian.transpose(-1, -2) + LOW_PASS_PX2 * torch.eye(2, dtype=dtype)
    a, b, c = screen[:, 0, 0], screen[:, 0, 1], screen[:, 1, 1]
    determinant = a * c - b * b
    conic = torch.stack([c, -b, a], -1) / determinant[:, None]  # the inverse covariance's (xx, xy, yy)
    centre = torch.stack([fx * x / z + camera.cx, fy * y / z + camera.cy], -1)

    with torch.no_grad():  # which pixels each Gaussian touches: where its alpha can reach MIN_ALPHA
        largest = 0.5 * (a + c) + torch.sqrt((0.25 * (a - c) ** 2 + b * b).clamp_min(0))
        reach = torch.log((opacity.clamp_max(MAX_ALPHA) / MIN_ALPHA).clamp_min(1.0))
        # alpha ≥ MIN_ALPHA needs the offset d from the exact centre to satisfy |d| ≤ extent; the footprint is
        # centred on the nearest pixel, at most sqrt(1/2) px away, so cells within extent + sqrt(1/2) of it cover it
        extent = torch.sqrt(2 * reach * largest).clamp_max(MAX_RADIUS_PX) + math.sqrt(0.5)
        radius = torch.ceil(extent).to(torch.int64)
        nearest = torch.round(centre).to(torch.int64)
        on_screen = (radius > 0) & (nearest[:, 0] + radius >= 0) & (nearest[:, 0] - radius < width) \
            & (nearest[:, 1] + radius >= 0) & (nearest[:, 1] - radius < height)  # fmt: skip
        if not differentiable:  # the same image from the compiled loop (splat_kernel.py)
            return _composited(camera, background_rgb, on_screen, centre, conic, opacity, colors[index], z, nearest,
                               radius, extent)  # fmt: skip
        owner, pixel = _footprints(nearest, radius, extent, on_screen, width, height)
    if not len(owner):
        return empty
    # one gather per pair of everything its alpha needs (front-to-back rank = owner: index is depth-sorted)
    per_gaussian = torch.cat([centre, conic, opacity[:, None]], dim=1).index_select(0, owner)
    du = (pixel % width).to(dtype) - per_gaussian[:, 0]
    dv = (pixel // width).to(dtype) - per_gaussian[:, 1]
    power = -0.5 * (per_gaussian[:, 2] * du * du + 2 * per_gaussian[:, 3] * du * dv + per_gaussian[:, 4] * dv * dv)
    alpha = (per_gaussian[:, 5] * torch.exp(power.clamp_max(0))).clamp_max(MAX_ALPHA)
    with torch.no_grad():
        kept = torch.nonzero(alpha >= MIN_ALPHA).ravel()
        key = pixel.index_select(0, kept) * len(index) + owner.index_select(0, kept)
        kept = kept.index_select(0, torch.argsort(key))  # by pixel, then front to back
    owner, pixel, alpha = owner.index_select(0, kept), pixel.index_select(0, kept), alpha.index_select(0, kept)
    if not len(owner):
        return empty
    # transmittance before each pair: exp of the sum of log(1 - alpha) over the pairs in front of it in its pixel
    log_clear = torch.log1p(-alpha.to(torch.float64))
    before = torch.cumsum(log_clear, 0) - log_clear
    with torch.no_grad():
        starts = torch.ones(len(pixel), dtype=torch.bool)
        starts[1:] = pixel[1:] != pixel[:-1]
        run = torch.cumsum(starts.to(torch.int64), 0) - 1
    transmittance = torch.exp(before - before[starts].index_select(0, run)).to(dtype)
    weight = transmittance * alpha
    pair_colors = colors.index_select(0, index.index_select(0, owner))
    image = torch.zeros(pixel_count, 3, dtype=dtype).index_add(0, pixel, weight[:, None] * pair_colors)
    coverage = torch.zeros(pixel_count, dtype=dtype).index_add(0, pixel, weight)
    depth = torch.zeros(pixel_count, dtype=dtype).index_add(0, pixel, weight * z.index_select(0, owner))
    image = image + (1.0 - coverage)[:, None] * background_rgb
    depth = torch.where(coverage > 0, depth / coverage.clamp_min(1e-12), torch.zeros_like(depth))
    return Rendering(image.reshape(height, width, 3), coverage.reshape(height, width), depth.reshape(height, width))


def _composited(camera: PinholeCamera, background: torch.Tensor, keep: torch.Tensor,
                *values: torch.Tensor) -> Rendering:  # fmt: skip
    """The forward-only rendering of the projected, depth-sorted Gaussians ``keep`` selects (splat_kernel.py)."""
    centre, conic, opacity, colors, depth, nearest, radius, extent = (
        np.ascontiguousarray(value[keep].numpy(), dtype=np.int64 if value.dtype == torch.int64 else np.float64)
        for value in values)  # fmt: skip
    rgb, coverage, weighted_depth = composite(centre, conic, opacity, colors, depth, nearest, radius, extent,
                                              camera.width, camera.height, MIN_ALPHA, MAX_ALPHA)  # fmt: skip
    shape, dtype = (camera.height, camera.width), background.dtype
    alpha = torch.from_numpy(coverage).to(dtype)
    image = torch.from_numpy(rgb).to(dtype) + (1.0 - alpha)[:, None] * background
    depth_image = np.divide(weighted_depth, coverage, out=np.zeros_like(weighted_depth), where=coverage > 0)
    return Rendering(image.reshape(*shape, 3), alpha.reshape(shape),
                     torch.from_numpy(depth_image).to(dtype).reshape(shape))


def _footprints(nearest: torch.Tensor, radius: torch.Tensor, extent: torch.Tensor, on_screen: torch.Tensor,
                width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(Gaussian, pixel) pairs of the disc footprints (``extent`` px around the pixel ``nearest``), in the image: the
    Gaussians grouped by integer radius (a few values), each group one broadcast of its square of offsets, masked to
    the disc (no per-pair division or repeat; 1-D index_select, several times faster than advanced indexing here)."""
    owners, pixels = [], []
    for size in torch.unique(radius[on_screen]).tolist():
        members = torch.nonzero(on_screen & (radius == size)).ravel()
        span = torch.arange(-size, size + 1)
        columns = nearest[members, 0, None] + span  # (G, S)
        rows = nearest[members, 1, None] + span
        inside = ((rows >= 0) & (rows < height))[:, :, None] & ((columns >= 0) & (columns < width))[:, None, :]
        inside &= (span[:, None] ** 2 + span[None, :] ** 2)[None] <= extent[members, None, None] ** 2
        group, cell = torch.nonzero(inside.reshape(len(members), -1)).unbind(1)  # cell = row offset * S + column
        base = nearest[members, 1] * width + nearest[members, 0]
        offsets = (span[:, None] * width + span[None, :]).reshape(-1)
        owners.append(members.index_select(0, group))
        pixels.append(base.index_select(0, group) + offsets.index_select(0, cell))
    if not owners:
        return torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64)
    return torch.cat(owners), torch.cat(pixels)

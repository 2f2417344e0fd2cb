"""Mesh-guided 3D Gaussians of one hand (the representation of the Hand-4DGS system; gaussian/README.md).

Why anchored on the mesh: the tracked hand mesh already carries the motion, so each Gaussian lives at fixed
barycentric coordinates on one face and follows that face wherever the pose puts it; only the appearance (colour,
size, opacity) is learnt, per vertex, and the same avatar can be posed by any later frame's mesh.

Per face, ``GAUSSIANS_PER_FACE`` points are drawn once at random barycentric coordinates, seeded per hand model
(its name and face count), so an avatar's samples can be rebuilt and compared. A learnable embedding per vertex is
interpolated at each sample with the same barycentric weights; two small MLPs (``HIDDEN`` units, two layers) turn it
into a colour and a scale residual. Their output layers start at zero: before training every Gaussian is mid-grey
with its base scale. Scale = the learnable base (log space, one per Gaussian, started at the face's size shared out
among its samples) times exp(``MAX_LOG_SCALE_RESIDUAL`` · tanh(residual)): bounded, so a Gaussian never outgrows the
mesh that anchors it. Positions are the samples on the posed mesh; rotations the frames of their faces (x along the
first edge, z along the normal) as unit quaternions. Opacity is learnable per Gaussian; :meth:`opacity_loss` pulls
it toward 1 (a hand is opaque: see-through Gaussians would let the background explain the image).

Shading: the MLP's colour is an albedo; the posed colour is albedo × (ambient + gain · wrapped Lambert of the face
normal against one learnt light direction), in the frame of the vertices given (the camera that filmed the hand).
A hand turning under a fixed light changes its brightness far more than its skin changes (measured on the synthetic
sequences: with the albedo alone the fit stalls with the shading baked into it); the term costs a dot product per
Gaussian, so the pose-free MLP part can still be computed once. It starts neutral (ambient 1, gain 0).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

GAUSSIANS_PER_FACE = 10
EMBEDDING_DIM = 32
HIDDEN = 64
# Largest change of a Gaussian's log scale from its base: e^1.5 ≈ 4.5 times larger or smaller.
MAX_LOG_SCALE_RESIDUAL = 1.5
# Opacity before training (a logit of 4.6 is 0.99): the hand starts opaque, as the regulariser wants it.
INITIAL_OPACITY = 0.99
_EPS = 1e-12
# Light before training: from above and in front in the optical frame (y down, z forward).
INITIAL_LIGHT = (0.0, -0.7071, -0.7071)
# Wrapped Lambert: light reaches this far past the terminator (in n·l), as skin's subsurface scattering lets it.
SHADING_WRAP = 0.5


def mesh_sampling(num_faces: int, model_name: str, per_face: int = GAUSSIANS_PER_FACE) -> np.ndarray:
    """(F, per_face, 3) barycentric coordinates, uniform on each triangle, the same for the same model every time
    (the seed is a checksum of the model's name and face count)."""
    if num_faces < 1 or per_face < 1:
        raise ValueError(f"need at least one face and one Gaussian per face, got {num_faces} and {per_face}")
    rng = np.random.default_rng(zlib.crc32(f"{model_name}:{num_faces}".encode()))
    u, v = rng.random((2, num_faces, per_face))
    flip = u + v > 1.0  # fold the unit square's upper half onto the triangle: uniform in area
    u, v = np.where(flip, 1.0 - u, u), np.where(flip, 1.0 - v, v)
    return np.stack([1.0 - u - v, u, v], axis=-1)


@dataclass(frozen=True)
class Gaussians:
    """Posed Gaussians (torch tensors; batch dimensions ``...`` as the vertices given).

    positions (..., N, 3) metres in the mesh's frame; rotations (..., N, 4) unit quaternions (w, x, y, z), rotating
    the Gaussian's axes into that frame; scales (..., N, 3) standard deviations along those axes, metres; colors
    (N, 3) RGB in [0, 1] ((..., N, 3) with per-frame embeddings); opacities (N,) in (0, 1).
    """

    positions: torch.Tensor
    rotations: torch.Tensor
    scales: torch.Tensor
    colors: torch.Tensor
    opacities: torch.Tensor

    def __len__(self) -> int:
        return self.positions.shape[-2]


def _mlp(out_features: int, generator: torch.Generator) -> nn.Sequential:
    """Two layers, HIDDEN units, the output layer at zero (the representation starts at its base values); the
    hidden layer drawn as nn.Linear draws it, from ``generator`` (the same avatar from the same model every time)."""
    mlp = nn.Sequential(nn.Linear(EMBEDDING_DIM, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, out_features))
    bound = 1.0 / np.sqrt(EMBEDDING_DIM)
    nn.init.kaiming_uniform_(mlp[0].weight, a=np.sqrt(5.0), generator=generator)
    nn.init.uniform_(mlp[0].bias, -bound, bound, generator=generator)
    nn.init.zeros_(mlp[2].weight)
    nn.init.zeros_(mlp[2].bias)
    return mlp


class MeshGaussians(nn.Module):
    """The Gaussians of one hand mesh (see the module notes); ``forward(vertices)`` poses them."""

    def __init__(self, faces: np.ndarray, rest_vertices: np.ndarray, model_name: str,
                 per_face: int = GAUSSIANS_PER_FACE) -> None:  # fmt: skip
        """``faces`` (F, 3) of the hand's side, ``rest_vertices`` (V, 3) metres (only the faces' sizes are used:
        the base scales), ``model_name`` seeds the sampling (:func:`mesh_sampling`)."""
        super().__init__()
        faces = np.asarray(faces, np.int64)
        rest = np.asarray(rest_vertices, np.float64)
        if faces.ndim != 2 or faces.shape[1] != 3 or rest.ndim != 2 or rest.shape[1] != 3:
            raise ValueError(f"faces must be (F, 3) and rest_vertices (V, 3), got {faces.shape} and {rest.shape}")
        if faces.min() < 0 or faces.max() >= len(rest):
            raise ValueError(f"faces index vertex {faces.max()} (or a negative one), but there are {len(rest)}")
        self.model_name = model_name
        self.per_face = int(per_face)
        barycentric = mesh_sampling(len(faces), model_name, per_face)
        self.register_buffer("faces", torch.as_tensor(faces))
        self.register_buffer("barycentric", torch.as_tensor(barycentric, dtype=torch.float32))
        generator = torch.Generator().manual_seed(zlib.crc32(model_name.encode()))
        self.vertex_embeddings = nn.Parameter(0.1 * torch.randn(len(rest), EMBEDDING_DIM, generator=generator))
        self.color_mlp = _mlp(3, generator)
        self.scale_mlp = _mlp(3, generator)
        corners = rest[faces]
        area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
        # a disc of the face's area shared among its samples: radius sqrt(area / (pi K))
        base = np.sqrt(np.maximum(area, _EPS) / (np.pi * per_face))
        self.log_scale_base = nn.Parameter(torch.as_tensor(np.repeat(np.log(base), per_face), dtype=torch.float32))
        logit = float(np.log(INITIAL_OPACITY / (1.0 - INITIAL_OPACITY)))
        self.opacity_logits = nn.Parameter(torch.full((len(faces) * per_face,), logit))
        self.light_direction = nn.Parameter(torch.tensor(INITIAL_LIGHT))
        self.ambient = nn.Parameter(torch.tensor(1.0))
        self.diffuse_gain = nn.Parameter(torch.tensor(0.0))

    @property
    def num_gaussians(self) -> int:
        return self.barycentric.shape[0] * self.barycentric.shape[1]

    def embeddings(self, vertex_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """(..., N, EMBEDDING_DIM) embeddings at the samples; ``vertex_embeddings`` (..., V, D) replace the learnt
        ones (the feed-forward mode predicts them per frame)."""
        table = self.vertex_embeddings if vertex_embeddings is None else vertex_embeddings
        return _on_faces(table, self.faces, self.barycentric)

    def appearance(self, vertex_embeddings: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Albedos (..., N, 3) and scales (..., N, 3): the MLPs' part, which does not depend on the pose. It is most
        of the cost (68k Gaussians a hand with the open model: ~30 ms of 34 on this CPU), so a caller posing a
        trained avatar frame after frame computes it once and passes it to :meth:`forward`."""
        embedding = self.embeddings(vertex_embeddings)
        log_scale = self.log_scale_base[:, None] + MAX_LOG_SCALE_RESIDUAL * torch.tanh(self.scale_mlp(embedding))
        return torch.sigmoid(self.color_mlp(embedding)), torch.exp(log_scale)

    def forward(self, vertices: torch.Tensor, vertex_embeddings: torch.Tensor | None = None,
                appearance: tuple[torch.Tensor, torch.Tensor] | None = None) -> Gaussians:  # fmt: skip
        """Pose the Gaussians on ``vertices`` (..., V, 3) (the hand mesh in any frame, metres); ``appearance``:
        :meth:`appearance`'s result to reuse (else computed here, from ``vertex_embeddings`` when given)."""
        if vertices.shape[-1] != 3 or vertices.shape[-2] != self.vertex_embeddings.shape[0]:
            raise ValueError(f"vertices must be (..., {self.vertex_embeddings.shape[0]}, 3), got "
                             f"{tuple(vertices.shape)}")  # fmt: skip
        vertices = vertices.to(self.barycentric.dtype)
        albedo, scales = self.appearance(vertex_embeddings) if appearance is None else appearance
        if scales.dim() < vertices.dim():
            scales = scales.expand(*vertices.shape[:-2], *scales.shape)
        frames = face_frames(vertices, self.faces)
        return Gaussians(
            positions=_on_faces(vertices, self.faces, self.barycentric),
            rotations=matrix_to_quaternion(frames).repeat_interleave(self.per_face, dim=-2),
            scales=scales,
            colors=albedo * self.shading(frames[..., 2]).repeat_interleave(self.per_face, dim=-1)[..., None],
            opacities=torch.sigmoid(self.opacity_logits),
        )

    def shading(self, normals: torch.Tensor) -> torch.Tensor:
        """(...,) brightness of surfaces with unit ``normals`` (..., 3) under the learnt light (module notes)."""
        light = self.light_direction / torch.linalg.norm(self.light_direction).clamp_min(_EPS)
        lambert = torch.clamp((normals @ light.to(normals.dtype) + SHADING_WRAP) / (1.0 + SHADING_WRAP), 0.0, 1.0)
        return torch.clamp(self.ambient + self.diffuse_gain * lambert, 0.0, 2.0)

    def opacity_loss(self) -> torch.Tensor:
        """Mean squared shortfall of the opacities from 1 (the regulariser)."""
        return torch.mean((1.0 - torch.sigmoid(self.opacity_logits)) ** 2)


def _on_faces(values: torch.Tensor, faces: torch.Tensor, barycentric: torch.Tensor) -> torch.Tensor:
    """(..., F * K, C) per-vertex ``values`` (..., V, C) interpolated at the samples ``barycentric`` (F, K, 3)."""
    corners = values[..., faces, :]  # (..., F, 3, C)
    sampled = torch.einsum("fkc,...fcd->...fkd", barycentric.to(values.dtype), corners)
    return sampled.reshape(*sampled.shape[:-3], -1, sampled.shape[-1])


def face_frames(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(..., F, 3, 3) rotations whose columns are each face's axes: x along the edge v0 -> v1, z along the normal
    (counter-clockwise winding), y = z × x."""
    corners = vertices[..., faces, :]
    first, second = corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :]
    x_axis = _unit(first)
    z_axis = _unit(torch.linalg.cross(first, second))
    y_axis = torch.linalg.cross(z_axis, x_axis)
    return torch.stack([x_axis, y_axis, z_axis], dim=-1)


def face_quaternions(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(..., F, 4) unit quaternions (w, x, y, z) of each face's frame (:func:`face_frames`)."""
    return matrix_to_quaternion(face_frames(vertices, faces))


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / torch.linalg.norm(vectors, dim=-1, keepdim=True).clamp_min(_EPS)


def matrix_to_quaternion(rotation: torch.Tensor) -> torch.Tensor:
    """(..., 4) unit quaternions (w, x, y, z), w ≥ 0, of rotation matrices (..., 3, 3); differentiable.

    Each of the four candidate forms divides by the largest of |w|, |x|, |y|, |z| (so never by a number near zero), and
    the one with that largest component is kept."""
    m = rotation
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    squares = torch.stack([1.0 + trace, 1.0 + 2 * m[..., 0, 0] - trace, 1.0 + 2 * m[..., 1, 1] - trace,
                           1.0 + 2 * m[..., 2, 2] - trace], dim=-1)  # 4 w², 4 x², 4 y², 4 z²  # fmt: skip
    roots = torch.sqrt(squares.clamp_min(_EPS))  # 2|w|, 2|x|, 2|y|, 2|z|
    zyx, xzy, yxz = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    xy, xz, yz = m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1]
    candidates = torch.stack([
        torch.stack([roots[..., 0] ** 2, zyx, xzy, yxz], dim=-1) / (2 * roots[..., 0:1]),
        torch.stack([zyx, roots[..., 1] ** 2, xy, xz], dim=-1) / (2 * roots[..., 1:2]),
        torch.stack([xzy, xy, roots[..., 2] ** 2, yz], dim=-1) / (2 * roots[..., 2:3]),
        torch.stack([yxz, xz, yz, roots[..., 3] ** 2], dim=-1) / (2 * roots[..., 3:4]),
    ], dim=-2)  # fmt: skip
    best = torch.argmax(squares, dim=-1)
    quaternion = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    quaternion = quaternion * torch.where(quaternion[..., :1] < 0, -1.0, 1.0)
    return quaternion / torch.linalg.norm(quaternion, dim=-1, keepdim=True)

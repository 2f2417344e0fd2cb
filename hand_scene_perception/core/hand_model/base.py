"""The one hand-model interface every backend, fitter and renderer uses.

A hand model maps articulation (16x3 axis-angle in MANO's joint order, the first row
being the global wrist orientation), a shape vector and the hand's side to a mesh and
21 joints in the product order (see :mod:`.joint_order`). Implementations compute in
torch so fitting can differentiate through them, and accept numpy too, converting at
the boundary with :func:`to_torch` / :func:`to_caller`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from .side import HandSide


@dataclass(frozen=True)
class HandModelOutput:
    """Result of posing a hand model.

    vertices: (B, V, 3) metres, in the model's frame (wrist at ``transl`` when given).
    joints: (B, 21, 3) metres, product (MediaPipe) order.
    faces: (F, 3) int64 triangle indices, counter-clockwise seen from outside.
    Arrays are numpy or torch, matching what the caller passed in.
    """

    vertices: Any
    joints: Any
    faces: Any


@runtime_checkable
class HandModel(Protocol):
    """Posable hand model: MANO (files supplied by the user) or the open hand model."""

    name: str
    num_vertices: int
    num_shape_params: int

    def faces(self, side: HandSide | str) -> np.ndarray:
        """(F, 3) int64 faces for that side (winding differs for mirrored left hands)."""
        ...

    def forward(
        self,
        pose: Any,
        shape: Any | None = None,
        side: HandSide | str = HandSide.RIGHT,
        transl: Any | None = None,
    ) -> HandModelOutput:
        """Pose the model.

        pose: (B, 16, 3) or (B, 48) or (16, 3) axis-angle, MANO joint order, row 0 global.
        shape: (B, S) or (S,) shape coefficients (zeros when omitted).
        transl: (B, 3) or (3,) metres added to every output point.
        numpy in -> numpy out (float32); torch in -> torch out (differentiable).
        """
        ...


def as_batched_pose(pose: torch.Tensor) -> torch.Tensor:
    """Normalise a pose to (B, 16, 3), rejecting anything else with a clear message."""
    if pose.ndim == 1 and pose.shape[0] == 48:
        pose = pose.reshape(1, 16, 3)
    elif pose.ndim == 2 and pose.shape == (16, 3):
        pose = pose.unsqueeze(0)
    elif pose.ndim == 2 and pose.shape[1] == 48:
        pose = pose.reshape(-1, 16, 3)
    if pose.ndim != 3 or pose.shape[1:] != (16, 3):
        raise ValueError(f"pose must be (B,16,3), (B,48), (16,3) or (48,), got {tuple(pose.shape)}")
    return pose


def as_batched(value: torch.Tensor | None, batch: int, width: int, what: str, like: torch.Tensor) -> torch.Tensor:
    """Broadcast an optional (width,) or (B, width) tensor to (batch, width), zeros when None."""
    if value is None:
        return like.new_zeros(batch, width)
    if value.ndim == 1:
        value = value.unsqueeze(0)
    if value.ndim != 2 or value.shape[1] != width:
        raise ValueError(f"{what} must be ({width},) or (B,{width}), got {tuple(value.shape)}")
    if value.shape[0] == 1 and batch > 1:
        value = value.expand(batch, width)
    if value.shape[0] != batch:
        raise ValueError(f"{what} batch {value.shape[0]} does not match pose batch {batch}")
    return value.to(dtype=like.dtype, device=like.device)


def to_torch(value: Any, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor | None, bool]:
    """Convert numpy/list/tensor to a tensor; the flag says whether the caller used numpy."""
    if value is None:
        return None, False
    if isinstance(value, torch.Tensor):
        return value, False
    return torch.as_tensor(np.asarray(value), dtype=dtype), True


@dataclass(frozen=True)
class BatchedInputs:
    """forward() arguments as tensors of one dtype/device: pose (B,16,3), shape (B,S), transl (B,3)."""

    pose: torch.Tensor
    shape: torch.Tensor
    transl: torch.Tensor
    wants_numpy: bool


def batched_inputs(pose: Any, shape: Any | None, transl: Any | None, num_shape_params: int) -> BatchedInputs:
    """Validate and batch forward() arguments once, for every model implementation.

    The dtype and device follow the pose (integer poses become float32); shape and
    translation default to zeros and broadcast over the pose batch.
    """
    pose_t, wants_numpy = to_torch(pose)
    if pose_t is None:
        raise ValueError("pose is required")
    pose_t = as_batched_pose(pose_t if pose_t.is_floating_point() else pose_t.to(torch.float32))
    batch = pose_t.shape[0]
    return BatchedInputs(
        pose=pose_t,
        shape=as_batched(to_torch(shape, pose_t.dtype)[0], batch, num_shape_params, "shape", pose_t),
        transl=as_batched(to_torch(transl, pose_t.dtype)[0], batch, 3, "transl", pose_t),
        wants_numpy=wants_numpy,
    )


def caller_faces(faces: np.ndarray, wants_numpy: bool, like: torch.Tensor) -> Any:
    """Faces as a numpy copy or as a long tensor on the caller's device."""
    return faces.copy() if wants_numpy else torch.as_tensor(faces, device=like.device)


def to_caller(value: torch.Tensor, wants_numpy: bool) -> Any:
    """Return numpy float32 (detached) when the caller passed numpy, else the tensor itself."""
    if wants_numpy:
        return value.detach().cpu().numpy().astype(np.float32, copy=False)
    return value

"""Rigid transforms in ROS conventions, on top of scipy's Rotation.

One small immutable type keeps frame algebra readable across odometry, multi-view
calibration and the ROS conversions: ``T_a_b`` maps points from frame b into frame a, and
``T_a_b @ T_b_c == T_a_c``. Quaternions are (x, y, z, w), the order of
geometry_msgs/Quaternion and of scipy. Batched helpers work on (N, 4, 4) matrix stacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

_ORTHONORMAL_TOL = 1e-6


def check_rigid_matrices(matrices: np.ndarray, name: str = "transform", tol: float = _ORTHONORMAL_TOL) -> np.ndarray:
    """Validate (..., 4, 4) homogeneous rigid transforms and return them as float64.

    Raises ValueError for a wrong shape, non-finite values, a bottom row other than
    [0, 0, 0, 1], or a rotation block that is not orthonormal with det +1 (within ``tol``).
    """
    m = np.asarray(matrices, dtype=np.float64)
    if m.ndim < 2 or m.shape[-2:] != (4, 4):
        raise ValueError(f"{name} must have shape (..., 4, 4), got {np.shape(matrices)}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} contains non-finite values")
    if not np.allclose(m[..., 3, :], [0.0, 0.0, 0.0, 1.0], atol=tol):
        raise ValueError(f"{name} bottom row must be [0, 0, 0, 1]")
    r = m[..., :3, :3]
    gram = np.swapaxes(r, -1, -2) @ r
    if not np.allclose(gram, np.eye(3), atol=tol) or not np.all(np.linalg.det(r) > 0):
        raise ValueError(f"{name} rotation block must be orthonormal with determinant +1")
    return m


def inverse_matrices(matrices: np.ndarray) -> np.ndarray:
    """Inverses of (..., 4, 4) rigid transforms using R^T, exact for rigid input."""
    m = np.asarray(matrices, dtype=np.float64)
    r_t = np.swapaxes(m[..., :3, :3], -1, -2)
    out = np.zeros(m.shape)
    out[..., :3, :3] = r_t
    out[..., :3, 3] = -(r_t @ m[..., :3, 3:4])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def transform_points(matrices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply (..., 4, 4) transforms to (..., N, 3) points (broadcasting over leading axes)."""
    m = np.asarray(matrices, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    if p.ndim < 2 or p.shape[-1] != 3:
        raise ValueError(f"points must have shape (..., N, 3), got {p.shape}")
    return p @ np.swapaxes(m[..., :3, :3], -1, -2) + m[..., None, :3, 3]


@dataclass(frozen=True, eq=False)
class RigidTransform:
    """A rotation followed by a translation: ``x -> R x + t`` (immutable).

    ``rotation`` is a single scipy Rotation, ``translation`` a read-only (3,) array in metres.
    """

    rotation: Rotation
    translation: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.rotation, Rotation) or not self.rotation.single:
            raise ValueError("rotation must be a single scipy Rotation")
        t = np.array(self.translation, dtype=np.float64)
        if t.shape != (3,) or not np.all(np.isfinite(t)):
            raise ValueError(f"translation must be 3 finite values, got {self.translation!r}")
        t.setflags(write=False)
        object.__setattr__(self, "translation", t)

    @classmethod
    def identity(cls) -> RigidTransform:
        """The transform that changes nothing."""
        return cls(Rotation.identity(), np.zeros(3))

    @classmethod
    def from_matrix(cls, matrix: np.ndarray) -> RigidTransform:
        """From a 4x4 homogeneous matrix, rejecting non-rigid ones (see :func:`check_rigid_matrices`)."""
        m = check_rigid_matrices(matrix, "matrix")
        if m.shape != (4, 4):
            raise ValueError(f"matrix must have shape (4, 4), got {m.shape}")
        return cls(Rotation.from_matrix(m[:3, :3]), m[:3, 3])

    @classmethod
    def from_pose(cls, position: Sequence[float], quaternion_xyzw: Sequence[float]) -> RigidTransform:
        """From a geometry_msgs/Pose-like position and (x, y, z, w) quaternion (normalised here)."""
        q = np.asarray(quaternion_xyzw, dtype=np.float64)
        if q.shape != (4,) or not np.all(np.isfinite(q)):
            raise ValueError(f"quaternion must be 4 finite values (x, y, z, w), got {quaternion_xyzw!r}")
        if np.linalg.norm(q) < 1e-12:
            raise ValueError("quaternion must have non-zero norm")
        return cls(Rotation.from_quat(q), np.asarray(position, dtype=np.float64))

    def as_matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix (a fresh array)."""
        m = np.eye(4)
        m[:3, :3] = self.rotation.as_matrix()
        m[:3, 3] = self.translation
        return m

    def as_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,), quaternion (4,) as x, y, z, w with w >= 0) for geometry_msgs."""
        q = self.rotation.as_quat()
        if q[3] < 0:
            q = -q
        return np.array(self.translation), q

    def compose(self, other: RigidTransform) -> RigidTransform:
        """``self ∘ other``: apply ``other`` first, then ``self`` (same as ``self @ other``)."""
        return RigidTransform(
            self.rotation * other.rotation, self.rotation.apply(np.array(other.translation)) + self.translation
        )

    def __matmul__(self, other: RigidTransform) -> RigidTransform:
        if not isinstance(other, RigidTransform):
            return NotImplemented
        return self.compose(other)

    def inverse(self) -> RigidTransform:
        """The transform that undoes this one."""
        r_inv = self.rotation.inv()
        return RigidTransform(r_inv, -r_inv.apply(np.array(self.translation)))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Transform points of shape (3,) or (N, 3)."""
        p = np.asarray(points, dtype=np.float64)
        if p.shape[-1:] != (3,) or p.ndim > 2:
            raise ValueError(f"points must have shape (3,) or (N, 3), got {p.shape}")
        return self.rotation.apply(p) + self.translation

    def __repr__(self) -> str:
        position, quaternion = self.as_pose()
        return f"RigidTransform(translation={position.tolist()}, quaternion_xyzw={quaternion.tolist()})"

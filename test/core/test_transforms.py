"""RigidTransform and the batched matrix helpers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.transforms import (
    RigidTransform,
    check_rigid_matrices,
    inverse_matrices,
    transform_points,
)


def _random_transform(seed: int) -> RigidTransform:
    rng = np.random.default_rng(seed)
    return RigidTransform(Rotation.random(random_state=seed), rng.normal(size=3))


def test_rotation_about_z_by_hand() -> None:
    # 90° about z: (1, 0, 0) -> (0, 1, 0); then + (1, 2, 3)
    half = np.sqrt(0.5)
    tf = RigidTransform.from_pose([1.0, 2.0, 3.0], [0.0, 0.0, half, half])
    np.testing.assert_allclose(tf.apply(np.array([1.0, 0.0, 0.0])), [1.0, 3.0, 3.0], atol=1e-12)
    expected = np.array([[0, -1, 0, 1], [1, 0, 0, 2], [0, 0, 1, 3], [0, 0, 0, 1]], dtype=float)
    np.testing.assert_allclose(tf.as_matrix(), expected, atol=1e-12)


def test_pose_and_matrix_round_trips() -> None:
    tf = _random_transform(1)
    position, quaternion = tf.as_pose()
    assert quaternion[3] >= 0 and np.isclose(np.linalg.norm(quaternion), 1.0)
    again = RigidTransform.from_pose(position, quaternion)
    np.testing.assert_allclose(again.as_matrix(), tf.as_matrix(), atol=1e-12)
    np.testing.assert_allclose(RigidTransform.from_matrix(tf.as_matrix()).as_matrix(), tf.as_matrix(), atol=1e-12)


def test_compose_inverse_identity() -> None:
    a, b = _random_transform(2), _random_transform(3)
    pts = np.random.default_rng(4).normal(size=(5, 3))
    np.testing.assert_allclose((a @ b).apply(pts), a.apply(b.apply(pts)), atol=1e-12)
    np.testing.assert_allclose((a @ b).as_matrix(), a.as_matrix() @ b.as_matrix(), atol=1e-12)
    np.testing.assert_allclose((a @ a.inverse()).as_matrix(), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(RigidTransform.identity().apply(pts), pts)


def test_immutable() -> None:
    tf = _random_transform(5)
    with pytest.raises(ValueError):
        tf.translation[0] = 1.0
    with pytest.raises(AttributeError):
        tf.translation = np.zeros(3)  # type: ignore[misc]


def test_batched_helpers_match_single() -> None:
    tfs = [_random_transform(s) for s in range(6)]
    stack = np.stack([t.as_matrix() for t in tfs])
    inv = inverse_matrices(stack)
    for t, m in zip(tfs, inv, strict=True):
        np.testing.assert_allclose(m, t.inverse().as_matrix(), atol=1e-12)
    pts = np.random.default_rng(7).normal(size=(6, 4, 3))
    moved = transform_points(stack, pts)
    for i, t in enumerate(tfs):
        np.testing.assert_allclose(moved[i], t.apply(pts[i]), atol=1e-12)


def test_validation() -> None:
    bad = np.eye(4)
    bad[0, 0] = 2.0
    with pytest.raises(ValueError, match="orthonormal"):
        RigidTransform.from_matrix(bad)
    mirror = np.diag([1.0, 1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="determinant"):
        check_rigid_matrices(mirror)
    bottom = np.eye(4)
    bottom[3, 0] = 1.0
    with pytest.raises(ValueError, match="bottom row"):
        RigidTransform.from_matrix(bottom)
    with pytest.raises(ValueError, match="non-zero"):
        RigidTransform.from_pose([0, 0, 0], [0, 0, 0, 0])
    with pytest.raises(ValueError, match="translation"):
        RigidTransform(Rotation.identity(), np.array([0.0, np.nan, 0.0]))

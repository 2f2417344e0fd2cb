"""Umeyama similarity fitting and Procrustes alignment."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.alignment import apply_similarity, procrustes_align, umeyama


def _cloud(n: int = 21, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3))


@pytest.mark.parametrize("with_scale", [True, False])
def test_recovers_known_similarity(with_scale: bool) -> None:
    src = _cloud()
    rot = Rotation.from_rotvec([0.3, -1.2, 0.7]).as_matrix()
    s_true = 2.5 if with_scale else 1.0
    t_true = np.array([0.1, -2.0, 3.0])
    dst = s_true * src @ rot.T + t_true
    s, r, t = umeyama(src, dst, with_scale=with_scale)
    assert np.isclose(s, s_true)
    np.testing.assert_allclose(r, rot, atol=1e-12)
    np.testing.assert_allclose(t, t_true, atol=1e-12)


def test_batched_matches_single() -> None:
    src = np.stack([_cloud(seed=i) for i in range(4)])
    dst = np.stack([_cloud(seed=10 + i) for i in range(4)])
    s, r, t = umeyama(src, dst)
    for i in range(4):
        si, ri, ti = umeyama(src[i], dst[i])
        assert np.isclose(s[i], si)
        np.testing.assert_allclose(r[i], ri, atol=1e-12)
        np.testing.assert_allclose(t[i], ti, atol=1e-12)


def test_reflection_gives_proper_rotation() -> None:
    # planar, asymmetric points in z = 0: mirroring z leaves them unchanged, so the best proper
    # rotation is the identity, while a naive SVD solution could return the mirror diag(1, 1, -1)
    src = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [3.0, 1.0, 0.0]])
    s, r, t = umeyama(src, src * np.array([1.0, 1.0, -1.0]))
    np.testing.assert_allclose(r, np.eye(3), atol=1e-12)
    assert np.isclose(s, 1.0) and np.allclose(t, 0.0)
    # a truly 3D mirrored cloud: R stays a rotation and no sampled rotation fits better
    src3 = _cloud()
    dst3 = src3 * np.array([-1.0, 1.0, 1.0])
    s3, r3, t3 = umeyama(src3, dst3, with_scale=False)
    assert np.isclose(np.linalg.det(r3), 1.0)
    best = np.sum((apply_similarity(s3, r3, t3, src3) - dst3) ** 2)
    for rot in Rotation.random(200, random_state=1).as_matrix():
        moved = src3 @ rot.T
        cost = np.sum((moved - moved.mean(0) + dst3.mean(0) - dst3) ** 2)
        assert cost >= best - 1e-9


def test_degenerate_inputs_raise() -> None:
    with pytest.raises(ValueError, match="coincide"):
        umeyama(np.ones((5, 3)), _cloud(5))
    line = np.outer(np.arange(5.0), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="collinear"):
        umeyama(line, line + 1.0)
    s, r, t = umeyama(line, line + 1.0, strict=False)  # non-strict: one of the minimisers
    np.testing.assert_allclose(apply_similarity(s, r, t, line), line + 1.0, atol=1e-9)
    with pytest.raises(ValueError, match="shape"):
        umeyama(_cloud(5), _cloud(6))
    with pytest.raises(ValueError, match="finite"):
        umeyama(np.full((5, 3), np.nan), _cloud(5))


def test_procrustes_align_removes_similarity() -> None:
    gt = np.stack([_cloud(seed=i) for i in range(3)])
    rots = Rotation.random(3, random_state=2).as_matrix()
    pred = 0.7 * np.einsum("bij,bnj->bni", rots, gt) + np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-12)

"""Depth normalisation: units, holes and resolution."""

from __future__ import annotations

import numpy as np
import pytest

from hand_scene_perception.core.depth import aligned_depth_metres, depth_to_metres, resample_depth


def test_uint16_millimetres_become_metres():
    depth = np.array([[1000, 0], [2500, 65535]], dtype=np.uint16)
    np.testing.assert_allclose(depth_to_metres(depth), [[1.0, 0.0], [2.5, 0.0]])  # 65.5 m is out of range


def test_float_holes_become_zero():
    depth = np.array([[np.nan, -1.0], [np.inf, 0.75]], dtype=np.float32)
    out = depth_to_metres(depth)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0, 0], [0, 0.75]])
    assert np.isnan(depth[0, 0]), "the caller's array must not be modified"


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 3), np.uint16), np.zeros((2, 2), np.int32), np.zeros(4)])
def test_rejects_non_depth_arrays(bad):
    with pytest.raises(ValueError, match="depth"):
        depth_to_metres(bad)


def test_resample_is_nearest_and_keeps_edges():
    depth = np.array([[1.0, 2.0], [3.0, 0.0]], dtype=np.float32)
    up = resample_depth(depth, 4, 4)
    np.testing.assert_array_equal(up, np.kron(depth, np.ones((2, 2))))
    assert set(np.unique(up)) <= {0.0, 1.0, 2.0, 3.0}, "no invented in-between depths"


def test_aligned_depth_from_half_resolution_millimetres():
    depth = np.full((240, 320), 800, dtype=np.uint16)
    out = aligned_depth_metres(depth, 480, 640)
    assert out.shape == (480, 640) and out.dtype == np.float32
    assert np.all(out == pytest.approx(0.8))


def test_depth_of_another_aspect_is_refused():
    with pytest.raises(ValueError, match="registered to the colour image"):
        aligned_depth_metres(np.ones((480, 480), np.float32), 480, 640)
    assert aligned_depth_metres(np.ones((241, 321), np.float32), 480, 640).shape == (480, 640)  # rounding is fine

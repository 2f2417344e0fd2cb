"""TransformBuffer: interpolation, chains through the tree, static vs dynamic edges, and the ways a lookup fails."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.transform_buffer import (
    ExtrapolationError,
    FrameNotFound,
    TransformBuffer,
    TransformTimeout,
)

S = 1_000_000_000


def pose(rotvec, translation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    matrix[:3, 3] = translation
    return matrix


def random_pose(rng: np.random.Generator) -> np.ndarray:
    return pose(rng.normal(size=3), rng.normal(size=3))


def put(buffer: TransformBuffer, parent: str, child: str, stamp_ns: int, matrix: np.ndarray,
        static: bool = False) -> None:  # fmt: skip
    """set_transform with a 4x4 pose, split as TransformStamped carries it."""
    buffer.set_transform(parent, child, stamp_ns, matrix[:3, 3], Rotation.from_matrix(matrix[:3, :3]).as_quat(), static)


def test_between_two_samples_translation_is_linear_and_rotation_slerped():
    buffer = TransformBuffer()
    put(buffer, "base", "head", 1 * S, pose([0, 0, 0], [0.0, 0.0, 0.0]))
    put(buffer, "base", "head", 2 * S, pose([0, 0, np.pi / 2], [1.0, -2.0, 0.4]))
    quarter = buffer.lookup("base", "head", 1 * S + S // 4)
    np.testing.assert_allclose(quarter[:3, 3], [0.25, -0.5, 0.1], atol=1e-12)
    np.testing.assert_allclose(quarter[:3, :3], Rotation.from_rotvec([0, 0, np.pi / 8]).as_matrix(), atol=1e-12)
    # Exactly at a sample: that sample.
    np.testing.assert_allclose(buffer.lookup("base", "head", 2 * S), pose([0, 0, np.pi / 2], [1.0, -2.0, 0.4]),
                               atol=1e-12)


def test_chains_through_the_tree_in_both_directions_and_between_branches():
    rng = np.random.default_rng(0)
    world_base, base_head, head_camera, base_arm = (random_pose(rng) for _ in range(4))
    buffer = TransformBuffer()
    put(buffer, "world", "base", 0, world_base, static=True)
    put(buffer, "base", "head", 5 * S, base_head)
    put(buffer, "base", "head", 6 * S, base_head)
    put(buffer, "/head", "camera", 0, head_camera, static=True)  # a leading '/' names the same frame
    put(buffer, "base", "arm", 5 * S, base_arm)
    world_camera = world_base @ base_head @ head_camera
    np.testing.assert_allclose(buffer.lookup("world", "camera", 5 * S + 1), world_camera, atol=1e-12)
    np.testing.assert_allclose(buffer.lookup("camera", "world", 5 * S), np.linalg.inv(world_camera), atol=1e-12)
    # arm and camera meet at base: T_arm_camera = inv(T_base_arm) T_base_head T_head_camera.
    np.testing.assert_allclose(buffer.lookup("arm", "camera", 5 * S), np.linalg.inv(base_arm) @ base_head @ head_camera,
                               atol=1e-12)
    np.testing.assert_allclose(buffer.lookup("camera", "camera", 5 * S), np.eye(4))


def test_static_edges_never_expire_dynamic_ones_are_kept_for_the_cache_time():
    buffer = TransformBuffer(cache_time_s=10.0)
    put(buffer, "world", "base", 1 * S, pose([0, 0, 0.3], [1, 0, 0]), static=True)
    for second in range(1, 31):
        put(buffer, "base", "head", second * S, pose([0, 0, 0], [second, 0, 0]))
    # The static edge holds at any time; the dynamic one only within 10 s of its newest sample (30 s).
    np.testing.assert_allclose(buffer.lookup("world", "base", 1000 * S), pose([0, 0, 0.3], [1, 0, 0]))
    assert buffer.lookup("base", "head", 20 * S)[0, 3] == pytest.approx(20.0)
    with pytest.raises(ExtrapolationError, match="into the past") as past:
        buffer.lookup("world", "head", 19 * S)
    assert not past.value.future


def test_extrapolation_into_the_future_and_missing_frames_are_refused():
    buffer = TransformBuffer()
    put(buffer, "base", "head", 1 * S, np.eye(4))
    put(buffer, "base", "head", 2 * S, np.eye(4))
    with pytest.raises(ExtrapolationError, match="into the future") as future:
        buffer.lookup("base", "head", 2 * S + 1)
    assert future.value.future
    with pytest.raises(FrameNotFound, match="'camera' is not in the TF tree"):
        buffer.lookup("base", "camera", 1 * S)
    put(buffer, "odom", "wheel", 0, np.eye(4), static=True)
    with pytest.raises(FrameNotFound, match="different TF trees"):
        buffer.lookup("odom", "head", 1 * S)


def test_a_lookup_waits_for_a_transform_that_arrives_and_times_out_for_one_that_does_not():
    buffer = TransformBuffer()
    put(buffer, "base", "head", 1 * S, np.eye(4))
    late = threading.Timer(0.05, put, (buffer, "base", "head", 3 * S, pose([0, 0, 0], [2, 0, 0])))
    late.start()
    start = time.monotonic()
    waited = buffer.lookup("base", "head", 2 * S, timeout_s=2.0)  # needs the sample after 2 s
    assert time.monotonic() - start < 1.0
    assert waited[0, 3] == pytest.approx(1.0)
    late.join()

    start = time.monotonic()
    with pytest.raises(TransformTimeout, match=r"within 0\.050 s: .*'camera' is not in the TF tree"):
        buffer.lookup("base", "camera", 2 * S, timeout_s=0.05)
    assert 0.05 <= time.monotonic() - start < 0.5
    start = time.monotonic()
    with pytest.raises(ExtrapolationError, match="into the past"):  # no message can bring the past back: no wait
        buffer.lookup("base", "head", 0, timeout_s=1.0)
    assert time.monotonic() - start < 0.2


def test_a_jump_back_beyond_the_cache_time_restarts_the_edge_and_a_new_parent_replaces_it():
    buffer = TransformBuffer(cache_time_s=10.0)
    put(buffer, "base", "head", 100 * S, pose([0, 0, 0], [1, 0, 0]))
    put(buffer, "base", "head", 101 * S, pose([0, 0, 0], [1, 0, 0]))
    put(buffer, "base", "head", 1 * S, pose([0, 0, 0], [5, 0, 0]))  # the bag started again
    put(buffer, "base", "head", 2 * S, pose([0, 0, 0], [5, 0, 0]))
    assert buffer.lookup("base", "head", 1 * S + S // 2)[0, 3] == pytest.approx(5.0)
    with pytest.raises(ExtrapolationError):
        buffer.lookup("base", "head", 100 * S)
    put(buffer, "torso", "head", 1 * S, np.eye(4), static=True)
    np.testing.assert_allclose(buffer.lookup("torso", "head", 50 * S), np.eye(4))
    with pytest.raises(FrameNotFound, match="'base' is not in the TF tree"):  # head's only parent is torso now
        buffer.lookup("base", "head", 1 * S)


def test_bad_transforms_are_rejected_and_quaternions_normalised():
    buffer = TransformBuffer()
    identity = (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="itself"):
        buffer.set_transform("a", "a", 0, (0, 0, 0), identity)
    with pytest.raises(ValueError, match="empty"):
        buffer.set_transform("", "a", 0, (0, 0, 0), identity)
    with pytest.raises(ValueError, match="non-finite"):
        buffer.set_transform("a", "b", 0, (np.nan, 0, 0), identity)
    with pytest.raises(ValueError, match="zero quaternion"):
        buffer.set_transform("a", "b", 0, (0, 0, 0), (0, 0, 0, 0))
    assert buffer.frames() == set()
    buffer.set_transform("a", "b", 0, (1, 2, 3), (0, 0, 2.0, 2.0))  # 90° about z, not unit length
    np.testing.assert_allclose(buffer.lookup("a", "b", 0), pose([0, 0, np.pi / 2], [1, 2, 3]), atol=1e-12)

"""Tests of oracle-landmark mode: ground truth in detector form, noise of the requested size, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from hand_scene_perception.core.hand_model.open_model import OpenHandModel
from hand_scene_perception.synth.oracle import oracle_landmarks
from hand_scene_perception.synth.sequence import default_camera, generate_sequence


@pytest.fixture(scope="module")
def frame():
    frames = generate_sequence(21, 4, num_hands=2, camera=default_camera(160, 120), model=OpenHandModel())
    return next(f for f in frames if sum(h.visible for h in f.hands) == 2)


def test_without_noise_the_observations_are_the_ground_truth(frame):
    dets = oracle_landmarks(frame, 0.0, np.random.default_rng(0))
    assert [d.side for d in dets] == [h.side for h in frame.hands]
    for det, hand in zip(dets, frame.hands, strict=True):
        np.testing.assert_allclose(det.landmarks_px, hand.landmarks_px)
        np.testing.assert_allclose(det.world_landmarks_m.mean(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(
            det.world_landmarks_m - det.world_landmarks_m[0], hand.joints_cam - hand.joints_cam[0]
        )
        assert det.score == 1.0


def test_noise_has_the_requested_size_and_follows_the_rng(frame):
    rng = np.random.default_rng(1)
    px_err, m_err = [], []
    for _ in range(50):
        for det, hand in zip(oracle_landmarks(frame, 3.0, rng, noise_m=0.005), frame.hands, strict=True):
            px_err.append(det.landmarks_px - hand.landmarks_px)
            m_err.append(det.world_landmarks_m - (hand.joints_cam - hand.joints_cam.mean(axis=0)))
    assert np.std(px_err) == pytest.approx(3.0, rel=0.1)
    assert np.std(m_err) == pytest.approx(0.005, rel=0.1)
    a = oracle_landmarks(frame, 3.0, np.random.default_rng(7), noise_m=0.01)
    b = oracle_landmarks(frame, 3.0, np.random.default_rng(7), noise_m=0.01)
    for da, db in zip(a, b, strict=True):
        np.testing.assert_array_equal(da.landmarks_px, db.landmarks_px)
        np.testing.assert_array_equal(da.world_landmarks_m, db.world_landmarks_m)


def test_invisible_hands_are_left_out_and_negative_noise_is_refused(frame):
    hidden = frame.hands[0].__class__(**{**frame.hands[0].__dict__, "visible": False})
    partial = frame.__class__(**{**frame.__dict__, "hands": (hidden, frame.hands[1])})
    dets = oracle_landmarks(partial, 1.0, np.random.default_rng(0))
    assert [d.side for d in dets] == [frame.hands[1].side]
    with pytest.raises(ValueError, match="non-negative"):
        oracle_landmarks(frame, -1.0, np.random.default_rng(0))

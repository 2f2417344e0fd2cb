"""HandTracker: identity through crossings and gaps, side voting and the two-hands rule, time and capacity rules."""

from __future__ import annotations

import numpy as np
import pytest

from hand_scene_perception.core.hand_model.base import HandSide
from hand_scene_perception.core.tracking import HandObservation, HandTracker, TrackedHand, TrackerConfig

L, R = HandSide.LEFT, HandSide.RIGHT
FRAME_NS = 33_333_333  # 30 Hz


def _obs(position: tuple[float, float, float], side: HandSide = R, score: float = 0.9) -> HandObservation:
    p = np.asarray(position, dtype=float)
    return HandObservation(side, score, p, {"joints": np.tile(p, (21, 1)), "transl": p})


def _ids_by_observation(hands: list[TrackedHand]) -> dict[int | None, int]:
    return {h.observation_index: h.track_id for h in hands}


@pytest.mark.parametrize("labels", [(L, R), (R, R)], ids=["true-labels", "both-labelled-right"])
def test_two_hands_crossing_paths_keep_their_ids(labels: tuple[HandSide, HandSide]) -> None:
    # Hands move toward each other at 0.6 m/s on lines 1 cm apart: without velocity prediction, the
    # frames around the crossing would swap them; with uninformative labels only geometry keeps them.
    tracker = HandTracker()
    first: dict[int | None, int] = {}
    for frame in range(40):
        x = -0.4 + 0.02 * frame
        observations = [_obs((x, 0.0, 0.5), labels[0]), _obs((-x, 0.01, 0.5), labels[1])]
        hands = tracker.update(frame * FRAME_NS, observations)
        ids = _ids_by_observation(hands)
        first = first or ids
        assert ids == first, f"identity swapped at frame {frame}"
    assert {h.side for h in hands} == {L, R}


def test_a_hand_back_after_0_3_s_keeps_its_id_after_1_s_gets_a_new_one() -> None:
    tracker = HandTracker()
    for frame in range(10):
        (hand,) = tracker.update(frame * FRAME_NS, [_obs((0.01 * frame, 0.0, 0.5))])
    assert hand.track_id == 0
    assert tracker.update(10 * FRAME_NS, []) == []  # coasting tracks are not reported by default
    back = 9 * FRAME_NS + 300_000_000
    (hand,) = tracker.update(back, [_obs((0.12, 0.0, 0.5))])
    assert hand.track_id == 0 and hand.frames_seen == 11
    # the filters restarted at the gap: the output is the observation itself, not dragged from the old place
    np.testing.assert_allclose(hand.arrays["transl"], [0.12, 0.0, 0.5])
    (hand,) = tracker.update(back + 1_000_000_000, [_obs((0.12, 0.0, 0.5))])
    assert hand.track_id == 1 and hand.frames_seen == 1


def test_coasting_tracks_are_reported_when_asked_with_a_predicted_position() -> None:
    tracker = HandTracker(TrackerConfig(output_coasting=True))
    for frame in range(10):
        tracker.update(frame * FRAME_NS, [_obs((0.01 * frame, 0.0, 0.5))])
    (hand,) = tracker.update(12 * FRAME_NS, [])
    assert hand.observation_index is None
    assert hand.position[0] > 0.09  # moved on along +x
    assert set(hand.arrays) == {"joints", "transl"}


def test_a_single_mislabelled_frame_does_not_flip_the_side() -> None:
    tracker = HandTracker()
    labels = [R] * 15 + [L] + [R] * 10
    sides = []
    for frame, label in enumerate(labels):
        (hand,) = tracker.update(frame * FRAME_NS, [_obs((0.0, 0.0, 0.5), label, score=0.95)])
        sides.append(hand.side)
    assert sides == [R] * len(labels)
    assert hand.side_confidence > 0.8


def test_both_hands_labelled_right_resolve_to_one_left_one_right_without_swapping() -> None:
    tracker = HandTracker()
    assignments = set()
    for frame in range(30):
        scores = (0.9, 0.6) if frame < 15 else (0.6, 0.9)  # evidence crosses over: no swap wanted
        hands = tracker.update(
            frame * FRAME_NS, [_obs((-0.2, 0.0, 0.5), R, scores[0]), _obs((0.2, 0.0, 0.5), R, scores[1])]
        )
        assert {h.side for h in hands} == {L, R}
        assignments.add(tuple((h.track_id, h.side) for h in hands))
    assert len(assignments) == 1
    yielding = next(h for h in hands if h.side == L)
    assert yielding.side_confidence < 0.3  # rests on the pair rule, not on its own evidence


def test_a_confident_right_hand_keeps_its_side_against_a_new_hand_labelled_right() -> None:
    tracker = HandTracker()
    for frame in range(20):
        tracker.update(frame * FRAME_NS, [_obs((0.2, 0.0, 0.5), R)])
    hands = tracker.update(20 * FRAME_NS, [_obs((0.2, 0.0, 0.5), R), _obs((-0.2, 0.0, 0.5), R, 0.7)])
    assert {(h.track_id, h.side) for h in hands} == {(0, R), (1, L)}


def test_time_going_backwards_resets_and_is_flagged() -> None:
    tracker = HandTracker()
    for frame in range(5):
        tracker.update(1_000_000_000 + frame * FRAME_NS, [_obs((0.0, 0.0, 0.5))])
    assert not tracker.reset_by_time_jump
    (hand,) = tracker.update(0, [_obs((0.0, 0.0, 0.5))])
    assert tracker.reset_by_time_jump
    assert hand.track_id == 1 and hand.frames_seen == 1 and hand.age_s == 0.0  # ids are never reused
    tracker.update(FRAME_NS, [_obs((0.0, 0.0, 0.5))])
    assert not tracker.reset_by_time_jump


def test_a_repeated_stamp_is_the_same_instant() -> None:
    tracker = HandTracker()
    tracker.update(0, [_obs((0.0, 0.0, 0.5))])
    (first,) = tracker.update(FRAME_NS, [_obs((0.01, 0.0, 0.5))])
    (again,) = tracker.update(FRAME_NS, [_obs((0.02, 0.0, 0.5))])
    assert again.track_id == first.track_id and not tracker.reset_by_time_jump
    np.testing.assert_array_equal(again.arrays["joints"], first.arrays["joints"])


def test_extra_observations_with_the_lowest_scores_are_dropped() -> None:
    tracker = HandTracker()
    observations = [_obs((0.0, 0.0, 0.5), L, 0.9), _obs((0.3, 0.0, 0.5), R, 0.3), _obs((-0.3, 0.0, 0.5), R, 0.8)]
    hands = tracker.update(0, observations)
    assert sorted(h.observation_index for h in hands) == [0, 2]


def test_a_full_tracker_gives_the_stalest_coasting_track_up_for_a_new_hand() -> None:
    tracker = HandTracker(TrackerConfig(max_tracks=1))
    tracker.update(0, [_obs((0.0, 0.0, 0.5))])
    (hand,) = tracker.update(3 * FRAME_NS, [_obs((0.5, 0.0, 0.5))])  # far outside the gate
    assert hand.track_id == 1
    (hand,) = tracker.update(4 * FRAME_NS, [_obs((0.0, 0.0, 0.5))])  # the old hand is gone for good
    assert hand.track_id == 2


@pytest.mark.parametrize(
    "kwargs,match",
    [({"score": 1.5}, "score"), ({"position": (0.0, np.nan, 0.0)}, "position"), ({"side_label": "up"}, "side")],
)
def test_bad_observations_are_rejected_with_the_field_named(kwargs: dict, match: str) -> None:
    fields = {"side_label": "left", "score": 0.5, "position": (0.0, 0.0, 0.5)} | kwargs
    with pytest.raises(ValueError, match=match):
        HandObservation(**fields)


def test_a_key_set_to_none_passes_through_while_the_others_are_smoothed() -> None:
    # "shape" is already averaged by its producer (the fitter): the tracker must hand it on as it came.
    tracker = HandTracker(TrackerConfig(filters={"shape": None}))
    rng = np.random.default_rng(0)
    for frame in range(10):
        position = np.array([0.0, 0.0, 0.5]) + rng.normal(0.0, 0.01, 3)
        shape = rng.normal(0.0, 1.0, 10)
        (hand,) = tracker.update(frame * FRAME_NS, [HandObservation(R, 0.9, position, {"shape": shape,
                                                                                         "transl": position})])
        np.testing.assert_array_equal(hand.arrays["shape"], shape)
        if frame > 0:
            assert not np.allclose(hand.arrays["transl"], position)  # the default filter still smooths

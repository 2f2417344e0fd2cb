"""Stamp pairing of image, camera_info and depth streams (no DDS needed)."""

from __future__ import annotations

import pytest

from hand_scene_perception.core.sync import StampPairer

MS = 1_000_000
STREAMS = ("image", "camera_info", "depth")


def make(**kwargs) -> StampPairer:
    return StampPairer(STREAMS, tolerance_ns=kwargs.pop("tolerance_ns", 5 * MS), **kwargs)


def push_frame(pairer: StampPairer, stamp: int, depth_offset: int = 0, order=STREAMS):
    """Push one frame of every stream in the given order; return the last push's result."""
    result = None
    for name in order:
        offset = depth_offset if name == "depth" else 0
        result = pairer.push(name, stamp + offset, f"{name}@{stamp + offset}")
    return result


def test_set_is_returned_as_soon_as_it_is_complete_in_any_arrival_order():
    pairer = make()
    assert pairer.push("depth", 100 * MS, "d") is None
    assert pairer.push("image", 100 * MS, "i") is None
    assert pairer.push("camera_info", 100 * MS, "c") == {"image": "i", "camera_info": "c", "depth": "d"}
    assert push_frame(pairer, 133 * MS, order=("image", "depth", "camera_info"))["depth"] == f"depth@{133 * MS}"
    assert pairer.matched == 2 and pairer.dropped == dict.fromkeys(STREAMS, 0)
    assert all(pairer.pending(name) == 0 for name in STREAMS)


def test_stamps_within_tolerance_pair_with_the_closest_candidate():
    pairer = make()
    pairer.push("camera_info", 200 * MS, "c")
    pairer.push("depth", 196 * MS, "far")
    pairer.push("depth", 202 * MS, "near")
    result = pairer.push("image", 200 * MS, "i")
    assert result["depth"] == "near"
    assert pairer.dropped["depth"] == 1  # the older candidate can never be used any more


def test_depth_outside_tolerance_never_pairs():
    pairer = make()
    pairer.push("camera_info", 300 * MS, "c")
    assert pairer.push("depth", 306 * MS, "d") is None
    assert pairer.push("image", 300 * MS, "i") is None
    assert pairer.push("depth", 305 * MS, "d2")["depth"] == "d2"


def test_missing_depth_keeps_queues_short_and_counts_drops():
    pairer = make(max_pending=2)
    for k in range(5):  # depth never arrives
        assert pairer.push("image", k * 33 * MS, k) is None
        assert pairer.push("camera_info", k * 33 * MS, k) is None
    assert pairer.pending("image") == 2 and pairer.pending("camera_info") == 2
    assert pairer.dropped == {"image": 3, "camera_info": 3, "depth": 0}
    # depth for the newest frame completes it; the older frame still waiting is superseded
    assert pairer.push("depth", 4 * 33 * MS, "d") == {"image": 4, "camera_info": 4, "depth": "d"}
    assert pairer.dropped == {"image": 4, "camera_info": 4, "depth": 0}


def test_newest_complete_set_wins_and_late_items_are_dropped():
    pairer = make()
    pairer.push("image", 100 * MS, "old")
    pairer.push("camera_info", 100 * MS, "old")
    pairer.push("image", 133 * MS, "new")
    pairer.push("camera_info", 133 * MS, "new")
    assert pairer.push("depth", 133 * MS, "d")["image"] == "new"
    assert pairer.dropped["image"] == 1 and pairer.dropped["camera_info"] == 1
    assert pairer.push("depth", 100 * MS, "late") is None  # its frame is gone
    assert pairer.dropped["depth"] == 1 and pairer.pending("depth") == 0


def test_duplicate_stamps_newest_item_wins_and_a_returned_stamp_is_not_returned_again():
    pairer = make()
    pairer.push("image", 100 * MS, "first")
    pairer.push("image", 100 * MS, "second")
    pairer.push("camera_info", 100 * MS, "c")
    assert pairer.push("depth", 100 * MS, "d")["image"] == "second"
    assert pairer.push("image", 100 * MS, "again") is None
    assert pairer.dropped["image"] == 2 and pairer.time_jumps == 0


def test_clock_going_backwards_resets_and_reports_the_jump():
    jumps = []
    pairer = make(on_time_jump=lambda old, new: jumps.append((old, new)))
    for k in range(3):
        assert push_frame(pairer, (1000 + 33 * k) * MS) is not None
    pairer.push("image", 1099 * MS, "pending")  # left waiting when the clock jumps
    assert push_frame(pairer, 10 * MS)["image"] == "image@10000000"
    assert pairer.time_jumps == 1 and jumps == [(1099 * MS, 10 * MS)]
    assert pairer.dropped["image"] == 1
    # a depth image from before the jump still in flight must not block the new timeline
    assert pairer.push("depth", 1099 * MS, "straggler") is None
    assert push_frame(pairer, 43 * MS, order=("depth", "image", "camera_info"))["depth"] == "depth@43000000"
    assert pairer.dropped["depth"] == 1 and pairer.pending("depth") == 0


def test_single_stream_passes_through_and_reset_keeps_counts():
    pairer = StampPairer(["image"], tolerance_ns=0)
    assert pairer.push("image", 5, "a") == {"image": "a"}
    assert pairer.push("image", 5, "dup") is None
    pairer.reset()
    assert pairer.push("image", 1, "after reset") == {"image": "after reset"}
    assert pairer.dropped["image"] == 1 and pairer.time_jumps == 0
    waiting = StampPairer(["image", "depth"], tolerance_ns=0)
    waiting.push("image", 9, "never paired")
    waiting.reset()
    assert waiting.dropped == {"image": 1, "depth": 0} and waiting.pending("image") == 0


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="distinct"):
        StampPairer(["a", "a"], 0)
    with pytest.raises(ValueError, match="max_pending"):
        StampPairer(["a"], 0, max_pending=0)
    with pytest.raises(KeyError, match="unknown stream"):
        StampPairer(["a"], 0).push("b", 0, None)

"""ViewSynchronizer: N camera streams grouped by stamp; stalled streams left out, repeats and jumps handled."""

from __future__ import annotations

import pytest

from hand_scene_perception.core.sync import ViewSynchronizer

MS = 1_000_000
STREAMS = ("a", "b", "c")


def _sync(**kwargs) -> ViewSynchronizer:
    return ViewSynchronizer(STREAMS, tolerance_ns=10 * MS, timeout_ns=100 * MS, **kwargs)


def _sets(sync: ViewSynchronizer, stamp_ms: int, streams=STREAMS, jitter_ms: int = 0) -> list[dict]:
    """Push one item per stream (stream k stamped ``k * jitter_ms`` later); every set the pushes formed."""
    sets = []
    for k, name in enumerate(streams):
        stamp = (stamp_ms + k * jitter_ms) * MS
        out = sync.push(name, stamp, f"{name}@{stamp // MS}")
        if out is not None:
            sets.append(out)
    return sets


def _frame(sync: ViewSynchronizer, stamp_ms: int, streams=STREAMS, jitter_ms: int = 0):
    """The newest set one round of pushes formed, if any."""
    sets = _sets(sync, stamp_ms, streams, jitter_ms)
    return sets[-1] if sets else None


def test_sets_form_within_the_tolerance_in_any_arrival_order():
    sync = _sync()
    assert _frame(sync, 1000, jitter_ms=4) == {"a": "a@1000", "b": "b@1004", "c": "c@1008"}
    assert sync.push("c", 1040 * MS, "c") is None and sync.push("a", 1033 * MS, "a") is None
    assert sync.push("b", 1036 * MS, "b") == {"a": "a", "b": "b", "c": "c"}
    assert sync.matched == 2 and sum(sync.dropped.values()) == 0


def test_a_stream_that_stops_is_left_out_and_rejoins():
    sync = _sync()
    _frame(sync, 1000)
    rounds = [_sets(sync, stamp, streams=("a", "b")) for stamp in range(1033, 1300, 33)]
    assert rounds[:2] == [[], []], "a short gap is waited for"
    formed = [r for sets in rounds for r in sets]
    assert formed[-1] == {"a": "a@1297", "b": "b@1297", "c": None}
    assert all(r["c"] is None and r["a"] and r["b"] for r in formed)
    assert sync.live() == ["a", "b"] and sync.left_out["c"] == len(formed)
    assert _frame(sync, 1400) == {"a": "a@1400", "b": "b@1400", "c": None}, "a stalled stream cannot be waited for"
    assert sync.live() == list(STREAMS)
    assert _frame(sync, 1433) == {"a": "a@1433", "b": "b@1433", "c": "c@1433"}


def test_a_pause_of_every_stream_does_not_leave_one_out():
    sync = _sync()
    _frame(sync, 1000)
    _frame(sync, 1033)
    assert _frame(sync, 1500) == {"a": "a@1500", "b": "b@1500", "c": "c@1500"}


def test_the_newest_set_wins_and_older_items_count_as_dropped():
    sync = _sync()
    for stamp in (1000, 1033, 1066):
        sync.push("a", stamp * MS, stamp)
        sync.push("b", stamp * MS, stamp)
    assert sync.push("c", 1066 * MS, 1066) == {"a": 1066, "b": 1066, "c": 1066}
    assert sync.dropped == {"a": 2, "b": 2, "c": 0}
    assert sync.push("c", 1040 * MS, "late") is None, "behind the last set by more than the tolerance"


def test_repeated_stamps_are_dropped():
    sync = _sync()
    _frame(sync, 1000)
    assert sync.push("a", 1000 * MS, "again") is None and sync.push("a", 995 * MS, "reordered") is None
    assert sync.dropped["a"] == 2 and sync.time_jumps == 0


def test_a_jump_back_restarts_and_reports():
    jumps = []
    sync = _sync(on_time_jump=lambda previous, new: jumps.append((previous // MS, new // MS)))
    _frame(sync, 5000)
    assert _frame(sync, 1000) is None, "each camera restarts as its stamps go back, behind the others until the last"
    assert jumps == [(5000, 1000)] * 3 and sync.time_jumps == 3
    assert _frame(sync, 1033) == {"a": "a@1033", "b": "b@1033", "c": "c@1033"}


def test_one_stream_going_back_leaves_the_others_sets_alone():
    sync = _sync()
    _frame(sync, 5000)
    assert sync.push("a", 1000 * MS, "a@1000") is None and sync.time_jumps == 1
    assert _frame(sync, 5033, streams=("b", "c")) == {"a": None, "b": "b@5033", "c": "c@5033"}, "a lags: left out"
    assert _frame(sync, 5066) == {"a": "a@5066", "b": "b@5066", "c": "c@5066"}, "a in line again"


def test_a_stream_never_seen_is_waited_for_until_the_timeout():
    sync = _sync()
    assert _frame(sync, 1000, streams=("a", "b")) is None
    assert _frame(sync, 1050, streams=("a", "b")) is None
    assert _frame(sync, 1150, streams=("a", "b")) is None, "seen by the second-newest stamps: one more frame"
    assert _frame(sync, 1200, streams=("a", "b")) == {"a": "a@1200", "b": "b@1200", "c": None}


@pytest.mark.parametrize(
    ("streams", "tolerance", "timeout"),
    [((), 1, 2), (("a", "a"), 1, 2), (("a",), -1, 2), (("a",), 5, 5)],
)
def test_bad_settings_are_refused(streams, tolerance, timeout):
    with pytest.raises(ValueError):
        ViewSynchronizer(streams, tolerance, timeout)
    with pytest.raises(KeyError):
        _sync().push("z", 0, None)

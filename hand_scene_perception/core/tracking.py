"""Hand tracking over time: stable ids, voted sides, re-identification after short gaps, smoothing.

Per frame the detector gives hands with a noisy side label (ARCHITECTURE.md, Environment: single-frame handedness is
wrong often enough to need voting) and no identity. :class:`HandTracker` turns them into tracks:

- **Association**: observations are matched to tracks with the Hungarian algorithm on the distance
  between each observation's wrist (world frame) and each track's constant-velocity prediction. A pair
  farther apart than the gate (``gate_m`` plus ``gate_growth_mps`` per second since the track was last
  seen, since a coasting prediction grows uncertain) is never matched. A side label disagreeing with
  the track's voted side adds ``side_cost_m`` × side confidence × score: a tie-breaker that only
  decides between observations whose distances to the prediction differ by less than that (hands
  passing within a few centimetres of each other), where geometry alone cannot tell them apart.
- **Lifecycle**: unmatched observations start tracks, at most ``max_tracks`` live (coasting ones
  included); when full, the coasting track seen longest ago gives way to the new hand. Only the
  ``max_tracks`` best-scored observations of a frame are considered; the others are dropped. A track
  not seen for more than ``max_gap_s`` is deleted. Ids grow monotonically and are never reused, not
  even after :meth:`HandTracker.reset`, so downstream consumers never confuse two hands.
- **Side**: each track keeps decaying (half-life ``side_half_life_s``), score-weighted votes for left and
  right. Its side is the larger vote; its confidence is the vote margin ``|L - R| / (L + R + side_prior)``
  in [0, 1), so a fresh track is unsure and one mislabelled frame cannot flip a settled one. When exactly
  two tracks are visible and claim the same side, one takes the other side (two hands in view are
  normally one left and one right): the track whose margin is higher by more than
  ``side_hysteresis`` keeps the side; otherwise the one that reported it last frame keeps it (so the
  pair does not swap back and forth); otherwise the higher margin, then the older track. The yielding
  track reports the other side with confidence ``max(0, keeper margin - own margin)``: the assignment
  rests on the pair rule, not on its own evidence. With more than two hands in view (several people)
  no pair rule is applied.
- **Smoothing**: every array of an observation (e.g. "joints", "transl", "pose") is One-Euro filtered
  per track and key (see :mod:`.filters`). Filters restart when a track is re-identified after a gap
  longer than ``filter_reset_gap_s``: a filter resumed across a gap would drag the hand from where it
  disappeared to where it reappeared over several frames, a visible lag and a false motion.
- **Time**: stamps are integer nanoseconds of the image. A repeated stamp is processed as the same
  instant (no prediction, filters hold their output). A stamp earlier than the previous one resets the
  tracker, processes the frame as the first of a new session and sets
  :attr:`HandTracker.reset_by_time_jump` for that update, so the pipeline can log it (bag loops, sim-time
  restarts) without an exception or a lost frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .filters import OneEuroFilter, OneEuroParams
from .hand_model.side import HandSide

NS_PER_S = 1_000_000_000
_INFEASIBLE = 1e9
_OTHER_SIDE = {HandSide.LEFT: HandSide.RIGHT, HandSide.RIGHT: HandSide.LEFT}
_SIDE_INDEX = {HandSide.LEFT: 0, HandSide.RIGHT: 1}
# Tuned on a synthetic 30 Hz hand trajectory with 4 mm joint noise (test/core/test_filters.py):
# Acc Err down about five times with a lag of about one frame. Units: metres.
DEFAULT_POSITION_FILTER = OneEuroParams(min_cutoff=0.5, beta=10.0, d_cutoff=2.0)


@dataclass(frozen=True)
class HandObservation:
    """One detected hand in one frame, as the detector and fitting produced it.

    side_label: the detector's side for this frame (noisy); score: detection confidence in [0, 1];
    position: (3,) wrist position in metres in the world frame (association and prediction use it);
    arrays: quantities to smooth, e.g. {"joints": (21, 3), "transl": (3,), "pose": (16, 3)}.
    """

    side_label: HandSide
    score: float
    position: np.ndarray
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate once here so the tracker's state can never be poisoned by NaN or bad shapes."""
        object.__setattr__(self, "side_label", HandSide.parse(self.side_label))
        if not (math.isfinite(self.score) and 0.0 <= self.score <= 1.0):
            raise ValueError(f"score must be in [0, 1], got {self.score}")
        position = np.asarray(self.position, dtype=np.float64)
        if position.shape != (3,) or not np.all(np.isfinite(position)):
            raise ValueError(f"position must be a finite (3,) array, got {self.position!r}")
        object.__setattr__(self, "position", position)
        arrays = {key: np.asarray(value, dtype=np.float64) for key, value in self.arrays.items()}
        for key, value in arrays.items():
            if not np.all(np.isfinite(value)):
                raise ValueError(f"array {key!r} contains NaN or infinite values")
        object.__setattr__(self, "arrays", arrays)


@dataclass(frozen=True)
class TrackedHand:
    """A track's state after an update.

    observation_index: index into that update's observation list, or None for a coasting track (only
    reported with ``output_coasting``; its arrays are then the last filtered values).
    position: observed wrist position, or the prediction when coasting; velocity: estimate in m/s.
    age_s: seconds since the track started; frames_seen: updates in which it was observed.
    """

    track_id: int
    side: HandSide
    side_confidence: float
    score: float
    observation_index: int | None
    position: np.ndarray
    velocity: np.ndarray
    arrays: dict[str, np.ndarray]
    age_s: float
    frames_seen: int


@dataclass(frozen=True)
class TrackerConfig:
    """Tracker settings; the module docstring explains each rule they tune.

    filters: One-Euro settings per array key; keys not listed use ``default_filter`` (tuned for
    metres; give radian-valued keys such as "pose" their own entry); None passes a key through unfiltered
    (for a quantity its producer already smooths, where a second filter would only add lag).
    velocity_cutoff_hz: low-pass on the wrist velocity used for prediction.
    """

    max_tracks: int = 2
    gate_m: float = 0.15
    gate_growth_mps: float = 1.0
    max_gap_s: float = 0.5
    side_cost_m: float = 0.02  # beat 0 and 5 cm on crossings 1–3 cm apart with 3 mm noise, 20 % flipped labels
    side_half_life_s: float = 1.0
    side_prior: float = 1.0
    side_hysteresis: float = 0.2
    filter_reset_gap_s: float = 0.1
    velocity_cutoff_hz: float = 3.0
    output_coasting: bool = False
    default_filter: OneEuroParams = DEFAULT_POSITION_FILTER
    filters: Mapping[str, OneEuroParams | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Reject settings that would silently disable a rule."""
        if self.max_tracks < 1:
            raise ValueError(f"max_tracks must be >= 1, got {self.max_tracks}")
        for name in ("gate_m", "max_gap_s", "side_half_life_s", "side_prior", "velocity_cutoff_hz"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("gate_growth_mps", "side_cost_m", "side_hysteresis", "filter_reset_gap_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


class _Track:
    """Mutable per-track state; only :class:`HandTracker` touches it."""

    def __init__(self, track_id: int, time_s: float, observation: HandObservation, config: TrackerConfig) -> None:
        self.track_id = track_id
        self.created_s = time_s
        self.config = config
        self.votes = np.zeros(2)
        self.votes_s = time_s
        self.side = observation.side_label
        self.side_confidence = 0.0
        self.velocity_filter = OneEuroFilter(min_cutoff=config.velocity_cutoff_hz)
        self.filters: dict[str, OneEuroFilter] = {}
        self.arrays: dict[str, np.ndarray] = {}
        self.score = observation.score
        self.frames_seen = 0
        self._restart(time_s, observation)

    def _restart(self, time_s: float, observation: HandObservation) -> None:
        """Start motion and smoothing afresh at this observation (new track, or back after a gap)."""
        self.position = observation.position
        self.last_seen_s = time_s
        self.velocity_filter.reset()
        self.velocity = self.velocity_filter(np.zeros(3), time_s)
        for smoother in self.filters.values():
            smoother.reset()

    def predict(self, time_s: float) -> np.ndarray:
        """Constant-velocity wrist position at time_s."""
        return self.position + self.velocity * (time_s - self.last_seen_s)

    def gate(self, time_s: float) -> float:
        """Largest wrist distance accepted for a match at time_s (grows while coasting)."""
        return self.config.gate_m + self.config.gate_growth_mps * (time_s - self.last_seen_s)

    def update(self, time_s: float, observation: HandObservation) -> None:
        """Take in a matched observation: motion, side votes, filtered arrays."""
        gap = time_s - self.last_seen_s
        if gap > self.config.filter_reset_gap_s:
            self._restart(time_s, observation)
        elif gap > 0:
            self.velocity = self.velocity_filter((observation.position - self.position) / gap, time_s)
            self.position = observation.position
            self.last_seen_s = time_s
        decay = 0.5 ** ((time_s - self.votes_s) / self.config.side_half_life_s)
        self.votes *= decay
        self.votes[_SIDE_INDEX[observation.side_label]] += observation.score
        self.votes_s = time_s
        self.score = observation.score
        self.frames_seen += 1
        self.arrays = {key: self._filtered(key, value, time_s) for key, value in observation.arrays.items()}

    def _filtered(self, key: str, value: np.ndarray, time_s: float) -> np.ndarray:
        """One array through this track's filter for its key (created on first use); as is for a key set to None."""
        if key not in self.filters:
            params = self.config.filters.get(key, self.config.default_filter)
            if params is None:
                return value.copy()
            self.filters[key] = OneEuroFilter.from_params(params)
        return self.filters[key](value, time_s)

    def voted_side(self) -> tuple[HandSide, float]:
        """Side with the larger decayed vote (the current side on a tie) and the vote margin."""
        left, right = self.votes
        margin = float(abs(left - right) / (left + right + self.config.side_prior))
        if left == right:
            return self.side, margin
        return (HandSide.LEFT if left > right else HandSide.RIGHT), margin


class HandTracker:
    """Frame-to-track association, side voting and smoothing for up to ``max_tracks`` hands."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._next_id = 0
        self._reset_by_time_jump = False
        self.reset()

    @property
    def reset_by_time_jump(self) -> bool:
        """Whether the latest update() met a stamp older than the previous one and so started afresh."""
        return self._reset_by_time_jump

    def reset(self) -> None:
        """Drop every track and the time origin; ids keep counting up so none is ever reused."""
        self._tracks: list[_Track] = []
        self._origin_ns: int | None = None
        self._last_ns: int | None = None

    def update(self, stamp_ns: int, observations: list[HandObservation]) -> list[TrackedHand]:
        """Advance to ``stamp_ns`` with this frame's observations; returns visible tracks sorted by id."""
        self._reset_by_time_jump = self._last_ns is not None and stamp_ns < self._last_ns
        if self._reset_by_time_jump:
            self.reset()
        if self._origin_ns is None:
            self._origin_ns = stamp_ns
        self._last_ns = stamp_ns
        time_s = (stamp_ns - self._origin_ns) / NS_PER_S
        self._tracks = [t for t in self._tracks if time_s - t.last_seen_s <= self.config.max_gap_s]

        ranked = sorted(range(len(observations)), key=lambda i: -observations[i].score)[: self.config.max_tracks]
        matches = self._associate(time_s, [observations[i] for i in ranked])
        matched: dict[int, int] = {}  # track id -> observation index
        for track, local in matches:
            track.update(time_s, observations[ranked[local]])
            matched[track.track_id] = ranked[local]
        taken = {local for _, local in matches}
        for local in (k for k in range(len(ranked)) if k not in taken):
            track = self._start_track(time_s, observations[ranked[local]], matched)
            if track is not None:
                matched[track.track_id] = ranked[local]
        self._resolve_sides([t for t in self._tracks if t.track_id in matched])
        return [
            self._report(track, time_s, matched.get(track.track_id))
            for track in sorted(self._tracks, key=lambda t: t.track_id)
            if track.track_id in matched or self.config.output_coasting
        ]

    def _associate(self, time_s: float, observations: list[HandObservation]) -> list[tuple[_Track, int]]:
        """Hungarian matching of tracks to observations on gated wrist distance plus the side term."""
        if not self._tracks or not observations:
            return []
        cost = np.full((len(self._tracks), len(observations)), _INFEASIBLE)
        for row, track in enumerate(self._tracks):
            predicted, gate = track.predict(time_s), track.gate(time_s)
            for col, obs in enumerate(observations):
                distance = float(np.linalg.norm(obs.position - predicted))
                if distance <= gate:
                    disagree = obs.side_label != track.side
                    cost[row, col] = distance + disagree * self.config.side_cost_m * track.side_confidence * obs.score
        rows, cols = linear_sum_assignment(cost)
        return [(self._tracks[r], int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] < _INFEASIBLE]

    def _start_track(self, time_s: float, observation: HandObservation, matched: Mapping[int, int]) -> _Track | None:
        """New track for an unmatched observation, evicting the stalest coasting track when full."""
        if len(self._tracks) >= self.config.max_tracks:
            coasting = [t for t in self._tracks if t.track_id not in matched]
            if not coasting:
                return None
            self._tracks.remove(min(coasting, key=lambda t: t.last_seen_s))
        track = _Track(self._next_id, time_s, observation, self.config)
        self._next_id += 1
        track.update(time_s, observation)
        self._tracks.append(track)
        return track

    def _resolve_sides(self, visible: list[_Track]) -> None:
        """Set each visible track's side from its votes, then apply the two-hands rule (module docstring)."""
        voted = {t.track_id: t.voted_side() for t in visible}
        previous = {t.track_id: t.side for t in visible}
        for track in visible:
            track.side, track.side_confidence = voted[track.track_id]
        if len(visible) != 2 or visible[0].side != visible[1].side:
            return
        a, b = visible
        contested = a.side
        if abs(a.side_confidence - b.side_confidence) <= self.config.side_hysteresis:
            incumbents = [t for t in visible if previous[t.track_id] == contested]
            if len(incumbents) == 1:
                keeper = incumbents[0]
            else:
                keeper = max(visible, key=lambda t: (t.side_confidence, -t.track_id))
        else:
            keeper = max(visible, key=lambda t: t.side_confidence)
        other = b if keeper is a else a
        other.side = _OTHER_SIDE[contested]
        other.side_confidence = max(0.0, keeper.side_confidence - other.side_confidence)

    def _report(self, track: _Track, time_s: float, observation_index: int | None) -> TrackedHand:
        """Public snapshot of a track (predicted position when coasting)."""
        coasting = observation_index is None
        return TrackedHand(
            track_id=track.track_id,
            side=track.side,
            side_confidence=track.side_confidence,
            score=track.score,
            observation_index=observation_index,
            position=track.predict(time_s) if coasting else track.position.copy(),
            velocity=track.velocity.copy(),
            arrays={key: value.copy() for key, value in track.arrays.items()},
            age_s=time_s - track.created_s,
            frames_seen=track.frames_seen,
        )

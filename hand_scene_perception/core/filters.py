"""Temporal smoothing of per-frame estimates (joints, translations, articulation).

The One-Euro filter (Casiez, Roussel, Vogel, "1€ Filter: A Simple Speed-based Low-pass Filter for
Noisy Input in Interactive Systems", CHI 2012) is a first-order low-pass whose cutoff rises with the
signal's speed: a hand at rest gets a low cutoff (little jitter), a moving hand a high one (little lag).
That is what Acc Err "without visible lag" asks for, at the cost of one exponential per element, so
no second filter is provided.

Implemented here from the paper's definition, vectorised over arrays of any shape: every element has
its own derivative estimate and cutoff, so a fast fingertip does not open the filter for a still wrist.
Filtering is element-wise in Euclidean space; pass quantities for which that is meaningful (positions,
or axis-angle rotations that stay away from the ±π wrap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class TimeWentBackwardsError(ValueError):
    """A sample is older than the previous one; the caller decides whether to reset or drop it."""


@dataclass(frozen=True)
class OneEuroParams:
    """One-Euro settings.

    min_cutoff: cutoff (Hz) at zero speed; lower = less jitter at rest, more lag.
    beta: cutoff increase per unit of speed (Hz per (unit/s)); higher = less lag when moving.
    d_cutoff: cutoff (Hz) of the low-pass on the derivative that drives the adaptation.
    """

    min_cutoff: float = 1.0
    beta: float = 0.0
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        """Reject settings that would make the smoothing factor undefined or negative."""
        for name in ("min_cutoff", "d_cutoff"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of Hz, got {value}")
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta must be >= 0, got {self.beta}")


def _smoothing_factor(cutoff_hz: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Exponential smoothing factor of a first-order low-pass with that cutoff, sampled after dt seconds."""
    r = 2.0 * math.pi * cutoff_hz * dt
    return r / (r + 1.0)


class OneEuroFilter:
    """One-Euro filter over numpy arrays of a fixed shape, with time-stamped, irregular samples.

    Time rules: the first sample (and the first after :meth:`reset`) is returned unchanged. A sample
    with the same time as the previous one returns the previous output and changes nothing (a repeated
    stamp carries no time to filter over). A sample older than the previous one raises
    :class:`TimeWentBackwardsError` and leaves the state untouched.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self.params = OneEuroParams(min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff)
        self.reset()

    @classmethod
    def from_params(cls, params: OneEuroParams) -> OneEuroFilter:
        """Build a filter from a settings object (configuration files carry these)."""
        return cls(params.min_cutoff, params.beta, params.d_cutoff)

    def reset(self) -> None:
        """Forget the history, so the next sample is taken as is (after a gap or a jump)."""
        self._value: np.ndarray | None = None
        self._derivative: np.ndarray | None = None
        self._time: float | None = None

    @property
    def value(self) -> np.ndarray | None:
        """Latest filtered value (a copy), or None before the first sample."""
        return None if self._value is None else self._value.copy()

    @property
    def derivative(self) -> np.ndarray | None:
        """Latest low-passed rate of change (units per second), or None before the first sample."""
        return None if self._derivative is None else self._derivative.copy()

    def __call__(self, value: np.ndarray, time_s: float) -> np.ndarray:
        """Filter one sample taken at ``time_s`` seconds and return the filtered array (a new array)."""
        x = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("One-Euro input contains NaN or infinite values")
        if not math.isfinite(time_s):
            raise ValueError(f"time must be finite, got {time_s}")
        if self._value is None or self._time is None or self._derivative is None:
            self._value, self._derivative, self._time = x.copy(), np.zeros_like(x), float(time_s)
            return x.copy()
        if x.shape != self._value.shape:
            raise ValueError(f"One-Euro input shape changed from {self._value.shape} to {x.shape}; reset() first")
        dt = float(time_s) - self._time
        if dt < 0:
            raise TimeWentBackwardsError(f"sample at {time_s} s is older than the previous one at {self._time} s")
        if dt == 0:
            return self._value.copy()
        p = self.params
        raw_derivative = (x - self._value) / dt
        self._derivative += _smoothing_factor(p.d_cutoff, dt) * (raw_derivative - self._derivative)
        cutoff = p.min_cutoff + p.beta * np.abs(self._derivative)
        self._value += _smoothing_factor(cutoff, dt) * (x - self._value)
        self._time = float(time_s)
        return self._value.copy()

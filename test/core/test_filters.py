"""One-Euro filter: exactness on trivial signals, noise reduction, bounded lag, Acc Err on a hand trajectory."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.filters import OneEuroFilter, OneEuroParams, TimeWentBackwardsError
from hand_scene_perception.core.metrics import acc_err_mm, mpjpe_mm
from hand_scene_perception.core.tracking import DEFAULT_POSITION_FILTER

FPS = 30.0


def _run(filt: OneEuroFilter, samples: np.ndarray, times: np.ndarray) -> np.ndarray:
    return np.stack([filt(x, t) for x, t in zip(samples, times, strict=True)])


def _min_jerk(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return 10 * s**3 - 15 * s**4 + 6 * s**5


def _hand_trajectory(frames: int = 240, seed: int = 0) -> np.ndarray:
    """(T, 21, 3) metres: reach / hold / return / fast reach of a rigid-ish hand that turns and curls."""
    t = np.arange(frames) / FPS
    wrist = np.zeros((frames, 3))
    for start, duration, delta in [
        (0.5, 0.8, (0.3, 0.1, 0.1)),
        (2.5, 0.8, (-0.3, -0.1, -0.1)),
        (4.5, 0.6, (0.2, -0.15, 0.05)),
        (6.0, 0.5, (-0.1, 0.1, 0.0)),
    ]:
        wrist += _min_jerk((t - start) / duration)[:, None] * np.asarray(delta)
    offsets = np.random.default_rng(seed).normal(scale=0.04, size=(21, 3))
    offsets[0] = 0.0
    rotations = Rotation.from_rotvec(np.stack([0.5 * np.sin(0.7 * t), 0.3 * np.sin(1.1 * t), 0.4 * np.sin(0.5 * t)], 1))
    curl = 1.0 + 0.2 * np.sin(2.0 * t)[:, None, None]
    return wrist[:, None, :] + np.einsum("tij,tkj->tki", rotations.as_matrix(), offsets[None] * curl)


def _lag_s(filtered: np.ndarray, truth: np.ndarray, max_frames: float = 4.0) -> float:
    """Delay (s, 1/20-frame steps) at which the truth, shifted later in time, best matches the output."""
    best_shift, best_error = 0.0, math.inf
    for shift in np.arange(0.0, max_frames + 1e-9, 0.05):
        k, frac = int(shift), shift - int(shift)
        shifted = (1 - frac) * truth[10 - k : len(truth) - k] + frac * truth[9 - k : len(truth) - k - 1]
        error = float(np.linalg.norm(filtered[10:] - shifted, axis=-1).mean())
        if error < best_error:
            best_shift, best_error = shift, error
    return best_shift / FPS


def test_constant_signal_passes_unchanged() -> None:
    value = np.array([[0.1, -0.2, 0.5], [1.0, 2.0, 3.0]])
    out = _run(OneEuroFilter(1.0, 5.0), np.repeat(value[None], 50, 0), np.arange(50) / FPS)
    np.testing.assert_array_equal(out, np.repeat(value[None], 50, 0))


@pytest.mark.parametrize(
    "params,max_ratio",
    [(DEFAULT_POSITION_FILTER, 0.4), (OneEuroParams(min_cutoff=0.5, beta=0.0), 0.25)],
    ids=["tracker-default", "beta-0"],
)
def test_noise_on_a_static_signal_is_reduced_strongly(params: OneEuroParams, max_ratio: float) -> None:
    # beta > 0 lets noise-driven speed open the filter a little: the price of low lag when moving.
    noise = np.random.default_rng(1).normal(scale=0.004, size=(600, 21, 3))
    out = _run(OneEuroFilter.from_params(params), noise, np.arange(600) / FPS)
    ratio = out[30:].std() / noise[30:].std()
    print(f"static noise std ratio {ratio:.3f} ({params})")
    assert ratio < max_ratio


def test_ramp_is_followed_with_bounded_lag_and_beta_shortens_it() -> None:
    times = np.arange(90) / FPS
    ramp = 0.5 * times[:, None]  # 0.5 m/s
    lags = {}
    for beta in (0.0, 10.0):
        out = _run(OneEuroFilter(min_cutoff=0.5, beta=beta, d_cutoff=2.0), ramp, times)
        lags[beta] = float((ramp[-1] - out[-1])[0] / 0.5)  # steady-state delay in seconds
    print(f"ramp delay: beta=0 {lags[0.0] * 1e3:.0f} ms, beta=10 {lags[10.0] * 1e3:.0f} ms")
    assert lags[10.0] < 0.05
    assert lags[10.0] < lags[0.0] / 4


def test_irregular_dt_matches_the_definition_and_stays_stable() -> None:
    filt = OneEuroFilter(min_cutoff=1.0, beta=2.0, d_cutoff=1.5)
    filt(np.array([0.0]), 0.0)
    out = filt(np.array([1.0]), 0.07)
    r = 2 * math.pi * 1.5 * 0.07
    derivative = r / (r + 1) * (1.0 / 0.07)
    r = 2 * math.pi * (1.0 + 2.0 * derivative) * 0.07
    assert out[0] == pytest.approx(r / (r + 1))
    assert filt.derivative is not None and filt.derivative[0] == pytest.approx(derivative)

    times = np.cumsum(np.random.default_rng(2).uniform(0.005, 0.08, size=200))
    ramp = 0.3 * times[:, None]
    out = _run(OneEuroFilter.from_params(DEFAULT_POSITION_FILTER), ramp, times)
    assert np.all(np.isfinite(out))
    assert np.max(np.abs(out[50:] - ramp[50:])) < 0.3 * 0.06


def test_elements_are_filtered_independently() -> None:
    rng = np.random.default_rng(3)
    signal = np.cumsum(rng.normal(scale=0.01, size=(40, 2)), axis=0)
    times = np.arange(40) / FPS
    together = _run(OneEuroFilter(0.8, 3.0), signal, times)
    for column in range(2):
        alone = _run(OneEuroFilter(0.8, 3.0), signal[:, column], times)
        np.testing.assert_allclose(together[:, column], alone)


def test_time_rules_repeat_holds_backwards_raises_reset_restarts() -> None:
    filt = OneEuroFilter(1.0, 0.0)
    filt(np.zeros(3), 1.0)
    held = filt(np.ones(3), 1.1)
    np.testing.assert_array_equal(filt(np.full(3, 9.0), 1.1), held)
    with pytest.raises(TimeWentBackwardsError):
        filt(np.ones(3), 0.5)
    np.testing.assert_array_equal(filt.value, held)
    with pytest.raises(ValueError, match="shape changed"):
        filt(np.ones(4), 1.2)
    with pytest.raises(ValueError, match="NaN"):
        filt(np.array([0.0, np.nan, 0.0]), 1.2)
    filt.reset()
    np.testing.assert_array_equal(filt(np.full(4, 2.0), 0.0), np.full(4, 2.0))


@pytest.mark.parametrize("field,value", [("min_cutoff", 0.0), ("d_cutoff", -1.0), ("beta", -0.1), ("beta", math.nan)])
def test_bad_parameters_are_rejected(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        OneEuroParams(**{field: value})


def test_acc_err_of_a_noisy_hand_trajectory_drops_without_visible_lag() -> None:
    truth = _hand_trajectory()
    noisy = truth + np.random.default_rng(4).normal(scale=0.004, size=truth.shape)
    filtered = _run(OneEuroFilter.from_params(DEFAULT_POSITION_FILTER), noisy, np.arange(len(truth)) / FPS)
    raw_acc, filtered_acc = acc_err_mm(noisy, truth), acc_err_mm(filtered, truth)
    lag = _lag_s(filtered, truth)
    print(
        f"Acc Err {raw_acc:.2f} -> {filtered_acc:.2f} mm/frame² (x{raw_acc / filtered_acc:.1f}), "
        f"MPJPE {mpjpe_mm(noisy, truth):.2f} -> {mpjpe_mm(filtered, truth):.2f} mm, lag {lag * 1e3:.0f} ms"
    )
    assert filtered_acc < raw_acc / 4
    assert lag <= 1.0 / FPS
    assert mpjpe_mm(filtered, truth) < mpjpe_mm(noisy, truth)

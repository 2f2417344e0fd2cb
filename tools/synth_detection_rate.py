"""How well the embedded MediaPipe detector sees the synthetic generator's hands (JSON on stdout).

Why: the synthetic benchmark only measures the pipeline if the detector sees its hands as it sees real
ones; this script scores that per seed and hand count: detection rate, landmark pixel error against the
ground truth (mean, per joint, the wrist's offset along the hand's axis), handedness accuracy, and the
generator's own speed.

A visible ground-truth hand counts as detected when some detection's mean landmark error against it is
below ``--max-error-px`` (default 40 px); each detection matches at most one hand. Usage:
``python tools/synth_detection_rate.py --seeds 0 1 2 --hands 1 2 --frames 60``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hand_scene_perception.backends.mediapipe_hands import MediaPipeHandDetector
from hand_scene_perception.core.hand_model.open_model import OpenHandModel
from hand_scene_perception.synth.sequence import HandTruth, SyntheticSequence

_WRIST, _MIDDLE_MCP = 0, 9


def _match(truths: list[HandTruth], detections: list, max_error_px: float) -> list[tuple[HandTruth, object]]:
    """Greedy one-to-one matching of visible hands to detections by mean landmark error (nearest pairs first)."""
    pairs = sorted(
        (float(np.linalg.norm(d.landmarks_px - t.landmarks_px, axis=1).mean()), i, j)
        for i, t in enumerate(truths)
        for j, d in enumerate(detections)
    )
    used_t: set[int] = set()
    used_d: set[int] = set()
    out = []
    for err, i, j in pairs:
        if err < max_error_px and i not in used_t and j not in used_d:
            used_t.add(i)
            used_d.add(j)
            out.append((truths[i], detections[j]))
    return out


def _wrist_offset(truth: HandTruth, detected_px: np.ndarray) -> float:
    """Detected-minus-true wrist position along the true wrist → middle-MCP direction, in units of that length
    (negative: displaced away from the fingers, toward where the forearm is)."""
    axis = truth.landmarks_px[_MIDDLE_MCP] - truth.landmarks_px[_WRIST]
    return float((detected_px[_WRIST] - truth.landmarks_px[_WRIST]) @ axis / max(float(axis @ axis), 1e-9))


def score_sequence(
    seed: int, num_hands: int, num_frames: int, model: OpenHandModel, max_error_px: float
) -> tuple[dict[str, float | int | None], np.ndarray, list[float]]:
    """Scores of one sequence, plus the (M, 21) per-joint pixel errors and wrist offsets of its matched hands."""
    sequence = SyntheticSequence(seed, num_hands=num_hands, model=model)
    visible = found = sides_right = 0
    joint_errors: list[np.ndarray] = []
    offsets: list[float] = []
    render_s = 0.0
    with MediaPipeHandDetector(max_hands=2, mode="video") as detector:
        frames = sequence.frames(num_frames)
        for _ in range(num_frames):
            start = time.perf_counter()
            frame = next(frames)
            render_s += time.perf_counter() - start
            detections = detector.detect(frame.rgb, round(frame.stamp * 1e9) + 1)
            truths = [h for h in frame.hands if h.visible]
            visible += len(truths)
            for truth, det in _match(truths, detections, max_error_px):
                found += 1
                sides_right += det.side is truth.side
                joint_errors.append(np.linalg.norm(det.landmarks_px - truth.landmarks_px, axis=1))
                offsets.append(_wrist_offset(truth, det.landmarks_px))
    errors = np.array(joint_errors).reshape(-1, 21)
    run = {
        "seed": seed,
        "hands": num_hands,
        "visible": visible,
        "detected": found,
        "rate": round(found / max(visible, 1), 3),
        "mean_error_px": round(float(errors.mean()), 2) if found else None,
        "wrist_error_px": round(float(errors[:, _WRIST].mean()), 2) if found else None,
        "handedness_accuracy": round(sides_right / found, 3) if found else None,
        "handedness_correct": sides_right,
        "generator_fps": round(num_frames / render_s, 1),
    }
    return run, errors, offsets


def main() -> None:
    """Score every (seed, hand count) pair and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--hands", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--max-error-px", type=float, default=40.0)
    args = parser.parse_args()
    model = OpenHandModel()
    runs, errors, offsets = [], [], []
    for hands in args.hands:
        for seed in args.seeds:
            run, err, off = score_sequence(seed, hands, args.frames, model, args.max_error_px)
            runs.append(run)
            errors.append(err)
            offsets += off
    all_errors = np.concatenate(errors)
    visible = sum(r["visible"] for r in runs)
    detected = sum(r["detected"] for r in runs)
    correct = sum(r["handedness_correct"] for r in runs)
    summary = {
        "runs": runs,
        "overall_rate": round(detected / max(visible, 1), 3),
        "mean_error_px": round(float(all_errors.mean()), 2) if detected else None,
        "per_joint_error_px": np.round(all_errors.mean(0), 1).tolist() if detected else None,
        "wrist_offset_along_hand": round(float(np.median(offsets)), 3) if detected else None,
        "handedness_accuracy": round(correct / max(detected, 1), 3),
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

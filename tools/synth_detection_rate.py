"""How often the embedded MediaPipe detector finds the synthetic generator's visible hands (JSON on stdout).

Why: the synthetic benchmark only measures the pipeline if the detector sees its hands as it sees real
ones; this script scores that per seed and hand count, and times the generator itself.

A visible ground-truth hand counts as detected when some detection's mean landmark error against it is
below ``--max-error-px`` (default 40 px). Usage:
``python tools/synth_detection_rate.py --seeds 0 1 2 --hands 1 2 --frames 60``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hand_scene_perception.backends.mediapipe_hands import MediaPipeHandDetector
from hand_scene_perception.core.hand_model.open_model import OpenHandModel
from hand_scene_perception.synth.sequence import SyntheticSequence


def score_sequence(
    seed: int, num_hands: int, num_frames: int, model: OpenHandModel, max_error_px: float
) -> dict[str, float | int]:
    """Detection rate, mean landmark error of matched hands and generator FPS for one sequence."""
    sequence = SyntheticSequence(seed, num_hands=num_hands, model=model)
    visible = found = 0
    errors: list[float] = []
    render_s = 0.0
    with MediaPipeHandDetector(max_hands=2, mode="video") as detector:
        frames = sequence.frames(num_frames)
        for _ in range(num_frames):
            start = time.perf_counter()
            frame = next(frames)
            render_s += time.perf_counter() - start
            detections = detector.detect(frame.rgb, round(frame.stamp * 1e9) + 1)
            for hand in frame.hands:
                if not hand.visible:
                    continue
                visible += 1
                err = [float(np.linalg.norm(d.landmarks_px - hand.landmarks_px, axis=1).mean()) for d in detections]
                if err and min(err) < max_error_px:
                    found += 1
                    errors.append(min(err))
    return {
        "seed": seed,
        "hands": num_hands,
        "visible": visible,
        "detected": found,
        "rate": round(found / max(visible, 1), 3),
        "mean_error_px": round(float(np.mean(errors)), 2) if errors else None,
        "generator_fps": round(num_frames / render_s, 1),
    }


def main() -> None:
    """Score every (seed, hand count) pair and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--hands", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--max-error-px", type=float, default=40.0)
    args = parser.parse_args()
    model = OpenHandModel()
    runs = [score_sequence(s, h, args.frames, model, args.max_error_px) for h in args.hands for s in args.seeds]
    visible = sum(r["visible"] for r in runs)
    detected = sum(r["detected"] for r in runs)
    print(json.dumps({"runs": runs, "overall_rate": round(detected / max(visible, 1), 3)}, indent=1))


if __name__ == "__main__":
    main()

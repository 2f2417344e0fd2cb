"""Speed of the synthetic generator (`hand-scene bench synth`): frames per second with one and two hands.

Why: the benchmark generator must keep up with real time (>= 30 FPS at 640x480 on the target CPU) so
that evaluations are never bound by rendering. Timings on a shared machine are noisy, so each hand count
is timed ``repeats`` times and the fastest pass is reported, both as wall-clock FPS and as CPU-time FPS
(the process's own CPU seconds, which other processes on the machine disturb far less).
"""

from __future__ import annotations

import time

from ..core.hand_model.open_model import OpenHandModel
from ..synth.sequence import SyntheticSequence, default_camera


def benchmark_synth(
    num_frames: int = 60, seed: int = 0, repeats: int = 3, width: int = 640, height: int = 480
) -> dict[str, float | int]:
    """FPS of rendering ``num_frames`` frames (RGB, depth, segmentation, ground truth) of sequence ``seed``."""
    if num_frames < 1 or repeats < 1:
        raise ValueError(f"num_frames and repeats must be >= 1, got {num_frames} and {repeats}")
    model = OpenHandModel()
    camera = default_camera(width, height)
    report: dict[str, float | int] = {"frames": num_frames, "repeats": repeats, "width": width, "height": height}
    for hands, name in ((1, "one_hand"), (2, "two_hands")):
        walls, cpus = [], []
        for _ in range(repeats):
            frames = SyntheticSequence(seed, num_hands=hands, camera=camera, model=model).frames(num_frames + 1)
            next(frames)  # warm-up: the first frame also builds the scene's cached lookup tables
            wall, cpu = time.perf_counter(), time.process_time()
            rendered = sum(1 for _ in frames)
            walls.append((time.perf_counter() - wall) / rendered)
            cpus.append((time.process_time() - cpu) / rendered)
        report[f"fps_{name}"] = round(1.0 / min(walls), 1)
        report[f"cpu_fps_{name}"] = round(1.0 / max(min(cpus), 1e-9), 1)
    return report

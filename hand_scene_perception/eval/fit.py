"""Speed and accuracy of one hand fit (core/fitting.py) on synthetic hands with known joints."""

from __future__ import annotations

import time

import numpy as np

from ..core.camera import PinholeCamera
from ..core.fitting import HandFitter, random_pose
from ..core.hand_model import NUM_JOINTS, HandModel, HandSide, create_hand_model


def benchmark_fit(
    n: int = 200, model: HandModel | None = None, seed: int = 0, torch_threads: int = 1, with_mesh: bool = True
) -> dict:
    """Milliseconds per fit (wall p50, p90, mean; CPU mean) on synthetic hands with 2D landmarks, and the errors.

    CPU time is reported too because wall time on a shared machine includes waiting for other processes.

    Hands: random poses within the limits, small random shapes, 0.35-0.6 m from a 640x480 camera (f = 600 px),
    targets with 2/2/6 mm (x/y/depth) noise, landmarks with 1.5 px noise. Torch runs with ``torch_threads``
    intra-op threads (restored afterwards): one thread is fastest for a single small forward pass. ``with_mesh``
    as in :meth:`HandFitter.fit` (the pipeline fits without the mesh).
    """
    import torch

    model = create_hand_model("open") if model is None else model
    fitter = HandFitter(model)
    camera = PinholeCamera.from_intrinsics(600.0, 600.0, 320.0, 240.0, 640, 480)
    rng = np.random.default_rng(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(torch_threads)
    try:
        times, errors, reprojection = [], [], []
        for k in range(n):
            side = HandSide.RIGHT if k % 2 == 0 else HandSide.LEFT
            truth = model.forward(
                random_pose(fitter, side, rng, spread=0.8), rng.normal(0.0, 0.03, model.num_shape_params), side
            ).joints[0]
            truth = (
                truth - truth.mean(axis=0) + [rng.uniform(-0.1, 0.1), rng.uniform(-0.08, 0.08), rng.uniform(0.35, 0.6)]
            )
            targets = truth + rng.normal(0.0, [0.002, 0.002, 0.006], truth.shape)
            pixels = camera.project(truth) + rng.normal(0.0, 1.5, (NUM_JOINTS, 2))
            start, start_cpu = time.perf_counter(), time.process_time()
            result = fitter.fit(targets, side, pixels, camera, with_mesh=with_mesh)
            times.append((time.perf_counter() - start, time.process_time() - start_cpu))
            errors.append(np.linalg.norm(result.joints_cam - truth, axis=1).mean())
            reprojection.append(result.reprojection_error_px)
    finally:
        torch.set_num_threads(threads)
    ms, cpu_ms = (1e3 * np.asarray(times)).T
    return {
        "fits": n,
        "ms_p50": float(np.percentile(ms, 50)),
        "ms_p90": float(np.percentile(ms, 90)),
        "ms_mean": float(ms.mean()),
        "cpu_ms_mean": float(cpu_ms.mean()),
        "joint_error_mm_mean": float(1e3 * np.mean(errors)),
        "reprojection_error_px_mean": float(np.mean(reprojection)),
    }

"""Measure the multiview pipeline on synthetic multi-camera sequences with ground truth (`hand-scene eval multiview`).

Cameras start uncalibrated: no CameraInfo, so focal lengths are estimated too (``camera_info=True`` gives each
camera its true intrinsics and only the poses are estimated). Camera metrics compare each estimated
T_reference_camera with the true one (reference = camera 0, as in the pipeline): rotation error, the angle between
the estimated and true direction of the camera's centre seen from the reference (scale-free), and the focal
length error in percent, all at the end of the sequence; ``frames_to_converge`` is the first frame from which every
camera stays within 2 deg of rotation. Hand metrics (HGGT/POEM protocol, ARCHITECTURE.md, Metrics) pool every fused
(multi-camera, not monocular) hand, matched to the ground-truth hand of its side rather than by position (the rig's
metric scale comes from the hands' size, so absolute positions carry its error): PA-MPJPE after similarity
Procrustes, RR-MPJPE after subtracting the wrist, MPJPE in the reference frame, and ``scale_ratio``, the fused
hands' median palm size over the true one. ``fps`` is fused results per second of pipeline time (detection
included); ``detection_rate`` the share of (camera, frame) pairs with a visible hand where the detector found it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from ..backends.base import HandDetection
from ..core import metrics
from ..core.placement import palm_size_m
from ..pipelines.multiview import CameraEstimate, MultiviewConfig, MultiviewPipeline, ViewFrame
from ..synth.multiview import MultiViewFrame, MultiViewSequence
from ..synth.oracle import oracle_view_detections

NS_PER_S = 1_000_000_000
CONVERGED_ROTATION_DEG = 2.0


class OracleViewDetector:
    """Ground-truth landmarks of one camera with pixel noise, behind the detector interface."""

    metric_size_sigma = 0.0  # its hand-centred joints have the true metric size

    def __init__(self, view_index: int, noise_px: float, seed: int) -> None:
        self.view_index = view_index
        self.noise_px = float(noise_px)
        self._rng = np.random.default_rng([seed, view_index])
        self.frame: MultiViewFrame | None = None

    def detect(self, image_rgb: np.ndarray, timestamp_ns: int | None = None) -> list[HandDetection]:
        """Noisy landmarks of :attr:`frame` in this camera (the image itself is not looked at)."""
        if self.frame is None:
            raise RuntimeError("OracleViewDetector.frame must be set before detect()")
        return oracle_view_detections(self.frame, self.view_index, self.noise_px, self._rng)


def camera_errors(cameras: list[CameraEstimate], sequence: MultiViewSequence) -> dict[str, np.ndarray]:
    """Per-camera rotation error (deg), centre direction error (deg, NaN for the reference) and focal error (%);
    NaN for cameras not calibrated yet."""
    T_ref_world = sequence.views[0].world_to_camera
    rotation = np.full(len(cameras), np.nan)
    direction = np.full(len(cameras), np.nan)
    focal = np.full(len(cameras), np.nan)
    for index, (estimate, truth) in enumerate(zip(cameras, sequence.views, strict=True)):
        focal[index] = 100.0 * abs(estimate.camera.fx / truth.camera.fx - 1.0)
        if estimate.T_ref_cam is None:
            continue
        true_pose = T_ref_world @ truth.T_world_camera
        relative = estimate.T_ref_cam[:3, :3].T @ true_pose[:3, :3]
        rotation[index] = np.degrees(Rotation.from_matrix(relative).magnitude())
        if index:
            a, b = estimate.T_ref_cam[:3, 3], true_pose[:3, 3]
            cosine = np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12)
            direction[index] = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    return {"rotation": rotation, "direction": direction, "focal": focal}


def evaluate_multiview_sequence(
    seed: int,
    num_frames: int,
    num_views: int,
    num_hands: int,
    *,
    oracle: bool,
    noise_px: float,
    camera_info: bool = False,
    config: MultiviewConfig | None = None,
) -> dict:
    """Run the pipeline over one generated multi-camera sequence; return its camera and hand metrics.
    ``camera_info``: every camera publishes its true intrinsics (only the poses are estimated)."""
    sequence = MultiViewSequence(seed, num_views=num_views, num_hands=num_hands)
    names = [view.name for view in sequence.views]
    detectors = [OracleViewDetector(i, noise_px, seed) for i in range(num_views)] if oracle else None
    blanks = [np.zeros((v.camera.height, v.camera.width, 3), np.uint8) for v in sequence.views]
    T_ref_world = sequence.views[0].world_to_camera
    estimates, truths = [], []
    converged_from, seconds, results, visible, detected = None, 0.0, 0, 0, 0
    # adjustments inside process(): the numbers must not depend on thread timing (bench multiview measures the
    # default, background mode)
    config = config or MultiviewConfig(background_calibration=False)
    with MultiviewPipeline(names, config, detectors=detectors) as pipeline:
        for frame in sequence.frames(num_frames, render=not oracle):
            stamp = round(frame.stamp * NS_PER_S)
            if detectors is not None:
                for detector in detectors:
                    detector.frame = frame
            images = blanks if oracle else frame.images
            start = time.perf_counter()
            infos = [view.camera if camera_info else None for view in sequence.views]
            views = [ViewFrame(image, stamp, info) for image, info in zip(images, infos, strict=True)]
            result = pipeline.process(views)
            seconds += time.perf_counter() - start
            results += 1
            for name, hands in zip(names, frame.hands, strict=True):
                seen = sum(hand.visible for hand in hands)
                visible += seen
                detected += min(seen, result.detections.get(name, 0))
            errors = camera_errors(result.cameras, sequence)
            good = bool(np.all(errors["rotation"] <= CONVERGED_ROTATION_DEG))
            converged_from = (converged_from if converged_from is not None else frame.index) if good else None
            truth_ref = [joints @ T_ref_world[:3, :3].T + T_ref_world[:3, 3] for joints in frame.joints_world]
            for hand in result.hands:
                if hand.monocular or hand.side not in frame.sides:
                    continue
                estimates.append(hand.state.joints)
                truths.append(truth_ref[frame.sides.index(hand.side)])
        final = camera_errors(pipeline.camera_estimates(), sequence)
        state = pipeline.calibrator.state.name.lower()
    summary = {
        "seed": seed,
        "rot_err_deg": float(np.nanmean(final["rotation"][1:])),
        "trans_dir_err_deg": float(np.nanmean(final["direction"][1:])),
        "focal_err_pct": float(np.nanmean(final["focal"])),
        "rot_err_deg_max": float(np.nanmax(final["rotation"][1:])),
        "calibrated_cameras": int(np.count_nonzero(np.isfinite(final["rotation"]))),
        "frames_to_converge": converged_from,
        "state": state,
        "frames": results,
        "detection_rate": detected / visible if visible else None,
        "fused_hands": len(estimates),
        "fps": results / seconds if seconds > 0 else None,
    }
    if estimates:
        est, gt = np.array(estimates), np.array(truths)
        summary.update(
            pa_mpjpe_mm=metrics.pa_mpjpe_mm(est, gt), rr_mpjpe_mm=metrics.rr_mpjpe_mm(est, gt),
            mpjpe_mm=metrics.mpjpe_mm(est, gt),
            scale_ratio=float(np.median([palm_size_m(e) / palm_size_m(g) for e, g in zip(est, gt, strict=True)])),
        )
    return summary


def evaluate_multiview(
    seeds: Sequence[int] = (0, 1),
    num_frames: int = 150,
    num_views: int = 4,
    num_hands: int = 1,
    *,
    oracle: bool = False,
    noise_px: float = 2.0,
    camera_info: bool = False,
) -> dict:
    """`hand-scene eval multiview`: per-sequence metrics and their mean over seeds (None where undefined)."""
    runs = [
        evaluate_multiview_sequence(
            seed, num_frames, num_views, num_hands, oracle=oracle, noise_px=noise_px, camera_info=camera_info
        )
        for seed in seeds
    ]
    summary: dict = {}
    for key in ("rot_err_deg", "trans_dir_err_deg", "focal_err_pct", "pa_mpjpe_mm", "rr_mpjpe_mm", "mpjpe_mm", "fps",
                "rot_err_deg_max", "detection_rate"):
        values = [run[key] for run in runs if run.get(key) is not None and np.isfinite(run[key])]
        summary[key] = float(np.mean(values)) if values else None
    converge = [run["frames_to_converge"] for run in runs]
    summary["frames_to_converge"] = None if None in converge else int(max(converge))
    summary.update(
        mode="oracle" if oracle else "detector", views=num_views, hands=num_hands, seeds=list(seeds),
        intrinsics="camera_info" if camera_info else "estimated",
        frames_per_sequence=num_frames, runs=runs,
    )
    if oracle:
        summary["noise_px"] = noise_px
    return summary


def benchmark_multiview(
    num_frames: int = 60, num_views: int = 4, seed: int = 0, warmup: int = 10, rounds: int = 2
) -> dict:
    """`hand-scene bench multiview`: fused results per second of the pipeline (default settings: background
    calibration, one embedded detector per camera) against the embedded detectors alone on the same frames (each
    camera's images in order, the cameras two at a time as the pipeline runs them), measured in this one run.

    The frames are rendered before timing; the first ``warmup`` of each run (graph start-up) are not timed. The two
    runs alternate ``rounds`` times and each keeps its fastest, so load from elsewhere does not bias the ratio."""
    from concurrent.futures import ThreadPoolExecutor

    from ..backends.mediapipe_hands import MediaPipeHandDetector

    if num_frames < 1 or warmup < 1 or rounds < 1:
        raise ValueError("num_frames, warmup and rounds must be >= 1")
    sequence = MultiViewSequence(seed, num_views=num_views, num_hands=1)
    frames = list(sequence.frames(warmup + num_frames))
    names = [view.name for view in sequence.views]
    stamps = [round(frame.stamp * NS_PER_S) for frame in frames]

    def detectors_only() -> float:
        detectors = [MediaPipeHandDetector(max_hands=2, mode="video") for _ in names]
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                start = 0.0
                for index, (frame, stamp) in enumerate(zip(frames, stamps, strict=True)):
                    if index == warmup:
                        start = time.perf_counter()
                    pairs = zip(detectors, frame.images, strict=True)
                    for job in [pool.submit(d.detect, image, stamp) for d, image in pairs]:
                        job.result()
                return time.perf_counter() - start
        finally:
            for detector in detectors:
                detector.close()

    stage_ms: dict[str, list[float]] = {}

    def pipeline() -> float:
        with MultiviewPipeline(names) as fusion:
            start = 0.0
            for index, (frame, stamp) in enumerate(zip(frames, stamps, strict=True)):
                if index == warmup:
                    start = time.perf_counter()
                result = fusion.process([ViewFrame(image, stamp) for image in frame.images])
                if index >= warmup:
                    for stage, ms in result.timings_ms.items():
                        stage_ms.setdefault(stage, []).append(ms)
            return time.perf_counter() - start

    best = {"detectors": np.inf, "pipeline": np.inf}
    for _ in range(rounds):
        best["detectors"] = min(best["detectors"], detectors_only())
        best["pipeline"] = min(best["pipeline"], pipeline())
    return {
        "frames": num_frames,
        "views": num_views,
        "resolution": [sequence.views[0].camera.width, sequence.views[0].camera.height],
        "fps": num_frames / best["pipeline"],
        "fps_detectors": num_frames / best["detectors"],
        "ratio_to_detectors": best["pipeline"] / best["detectors"],
        "stage_ms_median": {stage: float(np.median(values)) for stage, values in stage_ms.items()},
    }

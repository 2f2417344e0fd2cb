"""Multi-camera hand fusion from uncalibrated cameras (the embedded tier of the HGGT task).

Per frame, for a rig of N static cameras (the first is the reference frame):

1. **Detect** hands in every view (one embedded MediaPipe detector per view, video mode; views run in parallel).
2. **Place** each detection metrically in its own camera (core/placement.py, as the ego pipeline does).
3. **Associate** detections across views: once the rig is calibrated, by how well each view's landmarks fit the
   previous frame's fused hands projected into it (Hungarian); before that, and for unmatched detections, by
   the detector's side label (one hand per side and view, the most confident).
4. **Calibrate** (core/rig_calibration.py): hands seen by two or more views link the cameras, seed their poses
   and feed the bundle adjustment; a camera whose landmarks stop agreeing with the others is re-calibrated.
5. **Fuse** each hand: triangulate its joints from the calibrated views that see it (a view whose landmarks do
   not agree with the others is left out), fit the hand model to the triangulated joints. A hand that only one
   calibrated camera sees, or whose joints the calibrated views cannot triangulate (their rays meet at too small
   an angle), gets that camera's monocular result, expressed in the reference frame, flagged so.

Degenerate geometry is a state, not an error: identical or co-located views, a static hand or one moving only
along a line leave the cameras concerned uncalibrated with the reason (core/rig_calibration.py CalibrationHold;
:attr:`MultiviewResult.calibration_reason` and one warning per frame), their hands monocular, until the evidence
allows a calibration. A numerical failure that still occurs in the calibrate or fuse stage (a singular system the
checks did not foresee) is a warning for that frame, never an exception out of :meth:`MultiviewPipeline.process`.

Outputs are in the reference camera's optical frame. Calibration state, per-camera intrinsics, poses and errors
come with every result (the node publishes them as CameraInfo, TF and the calibration message).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..backends.base import HandDetection, HandExpert
from ..backends.registry import create_hand_expert
from ..core.camera import PinholeCamera, same_intrinsics
from ..core.fitting import FitResult, HandFitter
from ..core.hand_model import HandModel, HandSide, create_hand_model
from ..core.hand_state import HandState, transformed_state
from ..core.images import as_rgb8
from ..core.multiview_geometry import median_finite, project_points
from ..core.placement import place_hand
from ..core.rig_calibration import (
    CalibrationConfig,
    HandViews,
    RigCalibrator,
    RigCamera,
    RigState,
    guessed_camera,
)
from .hand_estimate import HandStageConfig

LOG = logging.getLogger(__name__)
# Niceness of the background bundle-adjustment thread (0 = same as the detectors).
ADJUSTMENT_NICENESS = 10
# A previous fused hand is a usable association hint for this long.
_ASSOCIATION_MEMORY_NS = 500_000_000


@dataclass
class MultiviewConfig(HandStageConfig):
    """Pipeline settings (the multiview node exposes the same names as ROS parameters)."""

    # A view's landmarks are left out of a hand's triangulation when their median error exceeds this (pixels).
    view_gate_px: float = 20.0
    # Cross-view association: a detection belongs to a previous hand when its landmarks lie within this many
    # hand widths (wrist to middle knuckle, in pixels) of the hand's projection.
    association_gate: float = 0.6
    # Run bundle adjustments on a worker thread (frames keep flowing; results apply when done). False runs them
    # inside process(): slower frames, but results that do not depend on timing (evaluation, tests).
    background_calibration: bool = True
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)

    def __post_init__(self) -> None:
        """Reject values that would make the pipeline misbehave silently."""
        super().__post_init__()
        if not self.view_gate_px > 0 or not self.association_gate > 0:
            raise ValueError("view_gate_px and association_gate must be > 0")


@dataclass(frozen=True)
class ViewFrame:
    """One camera's image for one fused frame. camera: its CameraInfo intrinsics when the driver publishes
    them, else None (the focal length is then estimated)."""

    image_rgb: np.ndarray
    stamp_ns: int
    camera: PinholeCamera | None = None


@dataclass(frozen=True)
class CameraEstimate:
    """One camera as the rig calibration currently sees it. T_ref_cam is None while uncalibrated (``hold``: why,
    core/rig_calibration.py CalibrationHold with this rig's numbers); quality in [0, 1] (0 uncalibrated, 1
    converged with a small reprojection error)."""

    name: str
    camera: PinholeCamera
    focal_known: bool
    T_ref_cam: np.ndarray | None
    reprojection_error_px: float
    observations: int
    converged: bool
    quality: float
    hold: str = ""


@dataclass(frozen=True)
class FusedHand:
    """One hand in the reference frame. views: the cameras whose landmarks made it; monocular: only one did."""

    side: HandSide
    state: HandState
    views: tuple[str, ...]
    reprojection_error_px: float
    monocular: bool


@dataclass(frozen=True)
class MultiviewResult:
    """Everything one fused frame produced; timings in milliseconds per stage."""

    stamp_ns: int
    hands: list[FusedHand]
    cameras: list[CameraEstimate]
    state: RigState
    detections: dict[str, int]
    timings_ms: dict[str, float]
    calibration_changed: bool = False
    warnings: list[str] = field(default_factory=list)
    # why cameras are not calibrated yet (RigCalibrator.reason), '' when none is held back
    calibration_reason: str = ""


@dataclass
class _Observed:
    """One detection in one view with its metric placement."""

    view: int
    detection: HandDetection
    joints_cam: np.ndarray
    pixels: np.ndarray  # pinhole (undistorted) landmarks


class MultiviewPipeline:
    """Views in, :class:`MultiviewResult` out (module notes: the stages)."""

    def __init__(
        self,
        camera_names: Sequence[str],
        config: MultiviewConfig | None = None,
        detectors: Sequence[HandExpert] | None = None,
        model: HandModel | None = None,
    ) -> None:
        names = list(camera_names)
        if not names:
            raise ValueError("camera_names must name at least one camera")
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
        self.camera_names = names
        self.config = config or MultiviewConfig()
        self.model = model or create_hand_model(self.config.hand_model, mano_dir=self.config.mano_dir)
        if detectors is None:  # one per camera: a video-mode expert follows one stream's hands
            detectors = [create_hand_expert(self.config.backend, max_hands=self.config.max_hands, redetect=False)
                         for _ in names]
        if len(detectors) != len(names):
            raise ValueError(f"need one detector per camera ({len(names)}), got {len(detectors)}")
        self.detectors = list(detectors)
        self._size_sigma = self.config.size_sigma(self.detectors[0])
        self.fitter = HandFitter(self.model)
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="multiview-detect")
        self._adjuster = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="multiview-adjust", initializer=_lower_thread_priority
        )
        self._adjusting: Future | None = None
        self.calibrator: RigCalibrator | None = None
        self._pending_calibration: Path | None = None
        self._previous: dict[HandSide, tuple[int, np.ndarray, FitResult]] = {}

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Release the worker threads and the detectors."""
        self._pool.shutdown(wait=True)
        self._adjuster.shutdown(wait=True, cancel_futures=True)
        for detector in self.detectors:
            close = getattr(detector, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> MultiviewPipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def reset_calibration(self) -> None:
        """Forget the rig calibration and start self-calibrating again."""
        if self.calibrator is not None:
            self.calibrator.reset()
        self._previous.clear()

    def save_calibration(self, path: str | Path) -> Path:
        """Write the current calibration as YAML (core/rig_calibration.py)."""
        if self.calibrator is None:
            raise RuntimeError("no calibration yet: no frame has been processed")
        return self.calibrator.save(path)

    def load_calibration(self, path: str | Path) -> None:
        """Use a saved calibration. Before the first frame the cameras' image sizes are unknown, so the file is
        checked and applied when the first frame arrives (a mismatch raises there, naming the camera)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"calibration file not found: {path}")
        if self.calibrator is None:
            self._pending_calibration = path
            return
        self.calibrator.load(path)
        self._previous.clear()

    # ------------------------------------------------------------------ per frame

    def process(self, views: Sequence[ViewFrame | None]) -> MultiviewResult:
        """Fuse one frame; ``views`` has one entry per camera, None for a camera without an image this time."""
        if len(views) != len(self.camera_names):
            raise ValueError(f"expected {len(self.camera_names)} views ({self.camera_names}), got {len(views)}")
        present = [i for i, v in enumerate(views) if v is not None]
        if not present:
            raise ValueError("process() needs at least one view with an image")
        images = {i: as_rgb8(views[i].image_rgb) for i in present}
        stamp_ns = max(int(views[i].stamp_ns) for i in present)
        warnings = self._update_cameras(views, images)
        start = time.perf_counter()
        futures = {i: self._pool.submit(self.detectors[i].detect, images[i], int(views[i].stamp_ns)) for i in present}
        detections = {i: future.result() for i, future in futures.items()}
        detected = time.perf_counter()
        observed = {i: self._placed(i, dets) for i, dets in detections.items()}
        groups = self._associate(observed, stamp_ns)
        placed = time.perf_counter()
        calibrator = self.calibrator
        hand_views = [
            HandViews({o.view: o.pixels for o in group}, {o.view: o.joints_cam for o in group}, hand=side)
            for side, group in groups.items()
        ]
        changed = self._calibrate(hand_views, warnings)
        calibrated = time.perf_counter()
        hands = []
        for side, group in groups.items():
            hand = self._fuse(side, group, stamp_ns, warnings)
            if hand is not None:
                hands.append(hand)
        fused = time.perf_counter()
        if len(self.camera_names) == 1:
            warnings.append("single camera: hands are the monocular result of that camera")
        if calibrator.reason:
            warnings.append(f"not calibrated yet, hands seen there are monocular: {calibrator.reason}")
        return MultiviewResult(
            stamp_ns=stamp_ns,
            hands=hands,
            cameras=self.camera_estimates(),
            state=calibrator.state,
            detections={self.camera_names[i]: len(dets) for i, dets in detections.items()},
            timings_ms={
                "detect": 1e3 * (detected - start),
                "place": 1e3 * (placed - detected),
                "calibrate": 1e3 * (calibrated - placed),
                "fuse": 1e3 * (fused - calibrated),
                "total": 1e3 * (fused - start),
            },
            calibration_changed=changed,
            warnings=warnings,
            calibration_reason=calibrator.reason,
        )

    def _calibrate(self, hand_views: list[HandViews], warnings: list[str]) -> bool:
        """The calibrate stage (module notes, step 4); True when the rig changed. Its evidence checks keep
        degenerate geometry out of the solvers; a numerical failure they did not foresee costs this frame's
        calibration update (a warning), not the frame."""
        try:
            changed = self.calibrator.observe(hand_views, adjust=False)
            return self._adjust_calibration() or changed
        except np.linalg.LinAlgError as error:
            LOG.warning("calibration update failed numerically (%s): calibration unchanged", error)
            warnings.append(f"calibration update failed numerically ({error}): calibration unchanged this frame")
            return False

    def _adjust_calibration(self) -> bool:
        """Apply a finished background adjustment and start the next one when due (or run it here)."""
        calibrator = self.calibrator
        applied = False
        if self._adjusting is not None and self._adjusting.done():
            adjusting, self._adjusting = self._adjusting, None
            applied = calibrator.apply_adjustment(adjusting.result())
        if self._adjusting is None and calibrator.adjustment_due:
            job = calibrator.adjustment_job()
            if job is not None and self.config.background_calibration:
                self._adjusting = self._adjuster.submit(job.run)
            elif job is not None:
                applied |= calibrator.apply_adjustment(job.run())
        return applied

    def camera_estimates(self) -> list[CameraEstimate]:
        """The rig's cameras as currently calibrated (empty before the first frame)."""
        if self.calibrator is None:
            return []
        estimates = []
        for camera in self.calibrator.cameras:
            error = camera.reprojection_error_px
            quality = 0.0
            if camera.calibrated:
                fit = 1.0 / (1.0 + (error / 5.0) ** 2) if np.isfinite(error) else 0.5
                quality = fit if camera.converged else 0.5 * fit
            estimates.append(
                CameraEstimate(
                    name=camera.name,
                    camera=camera.camera,
                    focal_known=camera.focal_known,
                    T_ref_cam=None if camera.T_ref_cam is None else camera.T_ref_cam.copy(),
                    reprojection_error_px=error,
                    observations=camera.observations,
                    converged=camera.converged,
                    quality=float(quality),
                    hold=camera.hold_detail,
                )
            )
        return estimates

    # ------------------------------------------------------------------ stages

    def _update_cameras(self, views: Sequence[ViewFrame | None], images: dict[int, np.ndarray]) -> list[str]:
        """Create the rig on the first frame (a camera without an image yet gets a placeholder until its first one);
        re-calibrate a camera whose image size or CameraInfo changed."""
        warnings: list[str] = []
        if self.calibrator is None:
            size = next(iter(images.values())).shape[:2]
            cameras = [
                self._rig_camera(name, views[i], images[i]) if i in images else self._placeholder(name, size)
                for i, name in enumerate(self.camera_names)
            ]
            self.calibrator = RigCalibrator(cameras, self.config.calibration)
            if self._pending_calibration is not None:
                path, self._pending_calibration = self._pending_calibration, None
                self.calibrator.load(path)
        waiting = [c.name for c in self.calibrator.cameras if not c.seen]
        for index, image in images.items():
            current = self.calibrator.cameras[index]
            view = views[index]
            size_changed = (image.shape[1], image.shape[0]) != (current.camera.width, current.camera.height)
            info_changed = view.camera is not None and (
                not current.focal_known or not same_intrinsics(view.camera, current.camera)
            )
            if size_changed or info_changed:
                fresh = self._rig_camera(current.name, view, image)
                current.camera, current.focal_known = fresh.camera, fresh.focal_known
                if current.seen or current.calibrated:
                    warnings.append(f"camera {current.name!r}: image size or CameraInfo changed, re-calibrating it")
                self.calibrator.forget_camera(index)
            current.seen = True
        if waiting:
            warnings.append(f"no image yet from {waiting}: they join the rig with their first image")
        return warnings

    def _placeholder(self, name: str, size: tuple[int, int]) -> RigCamera:
        """Stand-in for a camera that has not sent an image yet (replaced by its first image's size and CameraInfo)."""
        height, width = size
        guess = guessed_camera(width, height, self.config.calibration.default_hfov_deg)
        return RigCamera(name, guess, focal_known=False, seen=False)

    def _rig_camera(self, name: str, view: ViewFrame, image: np.ndarray) -> RigCamera:
        """A rig camera from the view's CameraInfo (checked against the image) or a guessed focal length."""
        height, width = image.shape[:2]
        if view.camera is None:
            return RigCamera(name, guessed_camera(width, height, self.config.calibration.default_hfov_deg), False)
        if (view.camera.width, view.camera.height) != (width, height):
            raise ValueError(
                f"camera {name!r}: CameraInfo is {view.camera.width}x{view.camera.height} but the image is "
                f"{width}x{height}"
            )
        return RigCamera(name, view.camera, True)

    def _placed(self, view: int, detections: list[HandDetection]) -> list[_Observed]:
        """Metric placement of each detection in its camera; a detection that cannot be placed is dropped."""
        rig_camera = self.calibrator.cameras[view]
        observed = []
        for detection in detections:
            try:
                placement = place_hand(
                    rig_camera.camera, detection.landmarks_px, detection.world_landmarks_m, detection.side,
                    size_sigma=self._size_sigma,
                )
            except ValueError:
                continue
            pixels = rig_camera.pinhole_pixels(detection.landmarks_px)
            observed.append(_Observed(view, detection, placement.joints_cam_m, pixels))
        return observed

    def _associate(self, observed: dict[int, list[_Observed]], stamp_ns: int) -> dict[HandSide, list[_Observed]]:
        """Group detections of the same hand across views (module notes, step 3): at most one per view and hand."""
        groups: dict[HandSide, list[_Observed]] = {}
        intrinsics, T_cam_ref, calibrated = self.calibrator.rig_arrays()
        recent = {
            side: joints
            for side, (stamp, joints, _) in self._previous.items()
            if 0 <= stamp_ns - stamp <= _ASSOCIATION_MEMORY_NS
        }
        sides = list(recent)
        for view, candidates in observed.items():
            assigned: dict[HandSide, _Observed] = {}
            remaining = list(candidates)
            if calibrated[view] and sides and remaining:
                projected = [_project(intrinsics[view], T_cam_ref[view], recent[s]) for s in sides]
                cost = np.array([[_landmark_distance(o.pixels, p) for p in projected] for o in remaining])
                rows, cols = linear_sum_assignment(np.nan_to_num(cost, nan=1e9))
                for r, c in zip(rows, cols, strict=True):
                    if cost[r, c] <= self.config.association_gate:
                        assigned[sides[c]] = remaining[r]
                remaining = [o for o in remaining if all(o is not a for a in assigned.values())]
            for candidate in sorted(remaining, key=lambda o: -o.detection.score):
                assigned.setdefault(candidate.detection.side, candidate)
            for side, candidate in assigned.items():
                groups.setdefault(side, []).append(candidate)
        return groups

    def _fuse(self, side: HandSide, group: list[_Observed], stamp_ns: int, warnings: list[str]) -> FusedHand | None:
        """Triangulate and fit one hand in the reference frame (module notes, step 5)."""
        calibrator = self.calibrator
        usable = [o for o in group if calibrator.cameras[o.view].calibrated]
        if not usable:
            return None
        if len(usable) >= 2:
            pixels = {o.view: o.pixels for o in usable}
            self._check_moved(pixels, warnings)
            usable = [o for o in usable if calibrator.cameras[o.view].calibrated]
        if len(usable) >= 2:
            try:
                hand = self._triangulated(side, usable, stamp_ns)
            except np.linalg.LinAlgError as error:
                hand = None
                warnings.append(f"{side.value} hand: triangulation failed numerically ({error}), monocular result")
            if hand is not None:
                return hand
        best = max(usable, key=lambda o: o.detection.score)
        name = calibrator.cameras[best.view].name
        if len(usable) >= 2:
            warnings.append(f"{side.value} hand: its calibrated views cannot triangulate it, monocular result ({name})")
        elif len(group) == 1:  # seen by uncalibrated cameras too: the rig-level reason says why (process())
            warnings.append(f"{side.value} hand: one calibrated camera ({name}) sees it, monocular result")
        return self._monocular(side, best, stamp_ns)

    def _triangulated(self, side: HandSide, usable: list[_Observed], stamp_ns: int) -> FusedHand | None:
        """The hand triangulated from calibrated views (the worst left out of three or more when it disagrees),
        or None where the views do not determine every joint (too little parallax)."""
        calibrator = self.calibrator
        pixels = {o.view: o.pixels for o in usable}
        joints, errors = calibrator.triangulate(pixels)
        worst = max(errors, key=lambda v: np.nan_to_num(errors[v], nan=np.inf))
        if len(usable) >= 3 and not errors[worst] <= self.config.view_gate_px:
            del pixels[worst]
            joints, errors = calibrator.triangulate(pixels)
        if not np.isfinite(joints).all():
            return None
        return self._fitted(side, joints, [o for o in usable if o.view in pixels], errors, stamp_ns)

    def _check_moved(self, pixels: dict[int, np.ndarray], warnings: list[str]) -> None:
        """Leave-one-out check of each view against the others' triangulation (needs two others)."""
        if len(pixels) < 3:
            return
        intrinsics, T_cam_ref, _ = self.calibrator.rig_arrays()
        for view in list(pixels):
            others = {v: p for v, p in pixels.items() if v != view}
            joints, _ = self.calibrator.triangulate(others)
            projected = _project(intrinsics[view], T_cam_ref[view], joints)
            error = median_finite(np.linalg.norm(projected - pixels[view], axis=1))
            if self.calibrator.check_consistency(view, error):
                name = self.calibrator.cameras[view].name
                LOG.warning("camera %s no longer agrees with the rig (moved?): re-calibrating it", name)
                warnings.append(f"camera {name!r} moved: re-calibrating it")

    def _fitted(
        self, side: HandSide, joints: np.ndarray, used: list[_Observed], errors: dict[int, float], stamp_ns: int
    ) -> FusedHand:
        """The hand model fitted to triangulated reference-frame joints (warm-started from the last frame)."""
        previous = self._previous.get(side)
        fit = self.fitter.fit(joints, side, previous=previous[2] if previous else None)
        self._previous[side] = (stamp_ns, fit.joints_cam, fit)
        score = float(np.clip(np.mean([o.detection.score for o in used]), 0.0, 1.0))
        reference = next((o for o in used if o.view == 0), None)
        state = self._state(side, fit, score, reference)
        names = tuple(self.calibrator.cameras[o.view].name for o in used)
        error = float(np.mean([errors[o.view] for o in used]))
        return FusedHand(side=side, state=state, views=names, reprojection_error_px=error, monocular=False)

    def _monocular(self, side: HandSide, observed: _Observed, stamp_ns: int) -> FusedHand:
        """One camera's metric placement and fit, expressed in the reference frame."""
        rig_camera = self.calibrator.cameras[observed.view]
        fit = self.fitter.fit(observed.joints_cam, side, observed.detection.landmarks_px, rig_camera.camera)
        reference = observed if observed.view == 0 else None  # landmarks are reported in the reference image only
        state = transformed_state(self._state(side, fit, observed.detection.score, reference), rig_camera.T_ref_cam)
        self._previous[side] = (stamp_ns, state.joints, None)
        return FusedHand(
            side=side,
            state=state,
            views=(rig_camera.name,),
            reprojection_error_px=float(fit.reprojection_error_px or np.nan),
            monocular=True,
        )

    def _state(self, side: HandSide, fit: FitResult, score: float, reference: _Observed | None) -> HandState:
        """HandState of a fit (in the fit's frame), with the reference camera's landmarks when it saw the hand."""
        return HandState(
            track_id=0 if side is HandSide.LEFT else 1,
            side=side,
            confidence=float(np.clip(score, 0.0, 1.0)),
            joints=fit.joints_cam,
            wrist_pose=fit.wrist_pose,
            model_name=self.model.name,
            model_pose=fit.pose,
            model_shape=fit.shape,
            model_translation=fit.transl,
            vertices=fit.vertices_cam,
            landmarks_px=None if reference is None else reference.detection.landmarks_px,
            image_frame_id="" if reference is None else self.camera_names[0],
        )


def _lower_thread_priority() -> None:
    """Let the detectors win the cores over a background bundle adjustment (Linux: per-thread niceness)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), ADJUSTMENT_NICENESS)


def _project(intrinsics: np.ndarray, T_cam_ref: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(21, 2) pixels of reference-frame joints in one camera (intrinsics (4,), T_cam_ref (4, 4))."""
    return project_points(intrinsics[None], T_cam_ref[None], joints)[0]


def _landmark_distance(pixels: np.ndarray, projected: np.ndarray) -> float:
    """Median landmark distance in units of the detection's hand size (wrist to middle knuckle, pixels)."""
    size = float(np.linalg.norm(pixels[9] - pixels[0]))
    if not np.isfinite(size) or size <= 1.0:
        return float("nan")
    return median_finite(np.linalg.norm(pixels - projected, axis=1)) / size


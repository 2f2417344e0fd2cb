"""Self-calibration of a static multi-camera rig from the hands it sees (the embedded tier of HGGT's task).

Method (no calibration target, no learned multi-view weights):

1. **Links**: whenever two cameras see the same hand in one frame, each camera's metric hand placement
   (core/placement.py: the hand's size against its landmarks) gives the hand's joints in that camera; a rigid
   alignment of the two joint sets is one sample of the cameras' relative pose. Samples are kept per pair.
2. **Initialisation**: once a pair has ``min_link_frames`` samples, its relative rotation is the robust chordal
   mean of the samples (core/multiview_geometry.py robust_rotation_mean: a frame with a flipped placement or a
   swapped hand is rejected) and its translation the median over the inlier samples. Cameras are chained to the
   reference camera (the first) along the best-supported links (maximum spanning tree by sample count).
   **Evidence gates**: a pair is linked only when its evidence can determine a rig (else the camera stays
   uncalibrated with a :class:`CalibrationHold` and its reason, and the hands it sees stay monocular): its
   baseline is at least ``min_baseline_ratio`` of the hand's distance (identical views or cameras millimetres
   apart cannot triangulate: their evidence is dropped so that a later distinct viewpoint starts afresh), and the
   hand was seen by both in ``min_link_frames`` distinct poses (keyframes, step 3) whose positions span a plane,
   not a point (a static hand) or a line (a hand moving only along one line), by ``min_hand_spread_m``.
3. **Refinement**: bundle adjustment (pycolmap) of all calibrated cameras' poses, the unknown focal lengths and
   the joints of up to ``max_keyframes`` kept hand observations (kept when the hand moved or turned since the
   last one, so the joints span a volume), every ``adjust_every`` new keyframes (``refine_every`` once converged:
   online refinement at a fraction of the cost). The adjuster leaves the scale
   free; it is set from the hands' metric size (median palm size of the placements against the triangulated one).
4. **Convergence**: the rig is CONVERGED once two successive adjustments moved no camera by more than
   ``converged_rotation_deg`` and no focal length by more than ``converged_focal_pct``.
5. **Moved cameras**: each calibrated camera's landmarks are compared with the joints triangulated from the
   other cameras (leave-one-out). If the median error over ``moved_window`` frames exceeds ``moved_error_px``
   (or four times its calibrated error), the camera's calibration is dropped and it is linked and adjusted anew
   (state RECALIBRATING) instead of producing silently wrong output.

Limits: the scale is as good as the metric hand size (MediaPipe's world landmarks fused with the average adult
hand, core/placement.py), so rig translations carry that relative error; directions do not. Principal points
are
taken as the image centre for cameras without CameraInfo and there is no lens distortion estimate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum, IntEnum
from pathlib import Path

import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from .alignment import umeyama
from .camera import PinholeCamera
from .files import atomic_write
from .multiview_geometry import (
    BundleResult,
    bundle_adjust,
    median_finite,
    reprojection_errors,
    robust_rotation_mean,
    scale_rig,
    triangulate_points,
)
from .placement import palm_size_m
from .transforms import inverse_matrices

CALIBRATION_FORMAT = "hand_scene_perception/rig_calibration/v1"

_MAX_LINK_SAMPLES = 200
_PALM_JOINTS = [0, 5, 9, 13, 17]  # wrist and the four knuckles
# Calibrated cameras an adjustment needs before it estimates focal lengths.
MIN_CAMERAS_FOR_FOCAL = 3
# Horizontal fields of view a real camera has; an estimate outside means the data could not determine it.
PLAUSIBLE_HFOV_DEG = (20.0, 150.0)


class RigState(IntEnum):
    """Rig calibration state (same values as hand_scene_msgs/MultiCameraCalibration STATE_*)."""

    UNCALIBRATED = 0
    CONVERGING = 1
    CONVERGED = 2
    RECALIBRATING = 3


class CalibrationHold(Enum):
    """Why an uncalibrated camera is not linked to the rig yet: the evidence it lacks (module notes, step 2).
    SMALL_BASELINE, STATIC_HAND and COLLINEAR_MOTION are degenerate geometry, decided on full evidence; they stay
    reported while new evidence is collected, until the camera is linked or another such reason replaces them."""

    NO_SHARED_VIEW = "no hand seen together with a calibrated camera yet"
    FEW_FRAMES = "too few frames with a hand seen together with a calibrated camera"
    SMALL_BASELINE = "viewpoint coincides with a calibrated camera's"
    STATIC_HAND = "the hand has not moved"
    COLLINEAR_MOTION = "the hand moved only along one line"

    @property
    def degenerate(self) -> bool:
        """A verdict on the geometry (not just too little evidence so far)."""
        return self not in (CalibrationHold.NO_SHARED_VIEW, CalibrationHold.FEW_FRAMES)


@dataclass
class CalibrationConfig:
    """Self-calibration settings (module notes: the method)."""

    default_hfov_deg: float = 65.0
    min_link_frames: int = 8
    max_keyframes: int = 100
    keyframe_motion_m: float = 0.01
    keyframe_rotation_deg: float = 5.0
    adjust_every: int = 10
    refine_every: int = 40
    huber_px: float = 3.0
    outlier_px: float = 30.0
    converged_rotation_deg: float = 0.5
    converged_focal_pct: float = 2.0
    moved_error_px: float = 25.0
    moved_window: int = 15
    # a pair is linked only when its baseline is at least this fraction of the hand's distance (0.05: rays meet at
    # about 3 deg); and when the hand's positions seen by both span this much (std, m) in two directions
    min_baseline_ratio: float = 0.05
    min_hand_spread_m: float = 0.005

    def __post_init__(self) -> None:
        """Reject settings that would stall or corrupt the calibration."""
        if not 10.0 < self.default_hfov_deg < 170.0:
            raise ValueError(f"default_hfov_deg must be in (10, 170), got {self.default_hfov_deg}")
        for name in ("min_link_frames", "max_keyframes", "adjust_every", "refine_every", "moved_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("keyframe_motion_m", "keyframe_rotation_deg", "huber_px", "outlier_px", "moved_error_px",
                     "converged_rotation_deg", "converged_focal_pct", "min_baseline_ratio", "min_hand_spread_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


@dataclass
class RigCamera:
    """One camera of the rig: its intrinsics (known from CameraInfo or estimated) and its pose, once calibrated.

    camera: the pinhole model with the current intrinsics (the user's, with their distortion, when known).
    T_ref_cam: (4, 4) pose of the optical frame in the reference frame, or None while uncalibrated.
    """

    name: str
    camera: PinholeCamera
    focal_known: bool
    T_ref_cam: np.ndarray | None = None
    reprojection_error_px: float = float("nan")
    observations: int = 0
    converged: bool = False
    # False for a placeholder: a camera that has not sent an image yet (its size and intrinsics are guesses)
    seen: bool = True
    # while uncalibrated: why it is not linked yet, and that reason with this rig's numbers
    hold: CalibrationHold | None = None
    hold_detail: str = ""

    @property
    def calibrated(self) -> bool:
        """Whether this camera has a pose in the reference frame."""
        return self.T_ref_cam is not None

    def pinhole_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(..., 2) landmarks as an undistorted pinhole with this camera's fx, fy, cx, cy would see them."""
        if not self.camera.is_distorted:
            return np.asarray(pixels, dtype=np.float64)
        xy = self.camera.undistort_points(pixels)
        cam = self.camera
        return np.stack([cam.fx * xy[..., 0] + cam.cx, cam.fy * xy[..., 1] + cam.cy], axis=-1)


def guessed_camera(width: int, height: int, hfov_deg: float) -> PinholeCamera:
    """Pinhole for a camera without CameraInfo: square pixels, centred principal point, a typical field of view."""
    focal = 0.5 * width / np.tan(np.radians(hfov_deg) / 2)
    return PinholeCamera.from_intrinsics(focal, focal, (width - 1) / 2, (height - 1) / 2, width, height)


@dataclass
class _Keyframe:
    """One hand seen by two or more cameras: pinhole pixels (V, 21, 2) and the palm centre of its placement in each
    camera (V, 3) (NaN where unseen), and its metric palm size (the size the placements fused with the adult
    prior, core/placement.py)."""

    pixels: np.ndarray
    centres_m: np.ndarray
    palm_size_m: float


@dataclass(frozen=True)
class HandViews:
    """One hand in one frame as the cameras saw it: per camera index, pinhole landmarks (21, 2) and the metric
    placement of its joints in that camera (21, 3). ``hand``: which hand it is (e.g. its side), so each hand's
    motion is judged against its own last keyframe."""

    pixels: dict[int, np.ndarray]
    joints_cam: dict[int, np.ndarray]
    hand: object = None


@dataclass(frozen=True)
class AdjustmentOutcome:
    """A finished adjustment: per adjusted camera (``views``) its pose T_ref_cam, focal length, RMS error and the
    hand observations (frames) that constrained it."""

    generation: int
    views: np.ndarray
    T_ref_cam: np.ndarray
    focal: np.ndarray
    rms_px: np.ndarray
    observations: np.ndarray


@dataclass(frozen=True)
class AdjustmentJob:
    """Everything one bundle adjustment needs, copied from the calibrator: :meth:`run` touches no shared state,
    so it may run on a worker thread while frames keep coming (:meth:`RigCalibrator.apply_adjustment`)."""

    generation: int
    views: np.ndarray
    intrinsics: np.ndarray
    T_cam_ref: np.ndarray
    pixels: np.ndarray
    image_sizes: np.ndarray
    optimize_focal: np.ndarray
    palm_sizes_m: np.ndarray
    huber_px: float
    outlier_px: float

    def run(self) -> AdjustmentOutcome | None:
        """Two passes of bundle adjustment (the second without the observations the first could not explain:
        a wrong hand, bad landmarks), then the metric scale from the hands' size. A focal length that leaves the
        plausible range (the data cannot pin it: e.g. two cameras that both lack CameraInfo) is held at its
        starting value and the adjustment redone."""
        points = triangulate_points(self.intrinsics, self.T_cam_ref, self.pixels)
        if np.count_nonzero(np.isfinite(points).all(axis=1)) < 21:
            return None
        optimize = self.optimize_focal.copy()
        while True:
            result = self._two_passes(points, optimize)
            fov = np.degrees(2 * np.arctan(0.5 * self.image_sizes[:, 0] / result.intrinsics[:, 0]))
            implausible = optimize & ~((fov >= PLAUSIBLE_HFOV_DEG[0]) & (fov <= PLAUSIBLE_HFOV_DEG[1]))
            if not implausible.any():
                break
            optimize &= ~implausible
        rig, _ = scale_rig(result.T_cam_ref, result.points, self._metric_scale(result.points))
        return AdjustmentOutcome(
            generation=self.generation,
            views=self.views,
            T_ref_cam=inverse_matrices(rig),
            focal=result.intrinsics[:, 0],
            rms_px=result.rms_px,
            observations=result.observations // 21,  # hand observations (frames)
        )

    def _two_passes(self, points: np.ndarray, optimize_focal: np.ndarray) -> BundleResult:
        first = bundle_adjust(
            self.intrinsics, self.T_cam_ref, points, self.pixels, self.image_sizes,
            optimize_focal=optimize_focal, huber_px=self.huber_px,
        )
        return bundle_adjust(
            first.intrinsics, first.T_cam_ref, first.points, self.pixels, self.image_sizes,
            optimize_focal=optimize_focal, huber_px=self.huber_px, outlier_px=self.outlier_px,
        )

    def _metric_scale(self, points: np.ndarray) -> float:
        """Factor taking the adjusted rig to metres: the keyframes' metric palm size over the triangulated one."""
        sizes = np.array([palm_size_m(joints) for joints in points.reshape(-1, 21, 3)])
        ok = np.isfinite(sizes) & (sizes > 0)
        return float(np.median(self.palm_sizes_m[ok]) / np.median(sizes[ok])) if ok.any() else 1.0


class RigCalibrator:
    """Accumulates hand observations from the rig's cameras and keeps the rig calibrated (module notes)."""

    def __init__(self, cameras: list[RigCamera], config: CalibrationConfig | None = None) -> None:
        if len(cameras) < 1:
            raise ValueError("a rig needs at least one camera")
        names = [c.name for c in cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names must be unique, got {names}")
        self.config = config or CalibrationConfig()
        self.cameras = cameras
        self.cameras[0].T_ref_cam = np.eye(4)
        self.state = RigState.UNCALIBRATED
        self._links: dict[tuple[int, int], deque] = {}
        self._keyframes: deque[_Keyframe] = deque(maxlen=self.config.max_keyframes)
        # per hand: the camera its last keyframe was judged in, and the palm there (centre, wrist-to-knuckle vectors)
        self._last_keyframe: dict[object, tuple[int, np.ndarray, np.ndarray]] = {}
        # per camera: its recent leave-one-out errors (moved-camera check)
        self._recent_errors = [deque(maxlen=self.config.moved_window) for _ in cameras]
        self._new_keyframes = 0
        self._stable_adjustments = 0
        self._relinked = False
        # bumped whenever cameras are linked, dropped, reset or loaded: a bundle adjustment started before is stale
        self._generation = 0
        self.adjustments = 0

    # ------------------------------------------------------------------ observations

    def observe(self, hands: list[HandViews], *, adjust: bool = True) -> bool:
        """Add one frame's multi-camera hand observations and link cameras that have enough of them; with
        ``adjust``, also run the bundle adjustment here when one is due (else the caller runs
        :meth:`adjustment_job` when :attr:`adjustment_due`, e.g. on another thread). Returns True when the rig
        changed."""
        for hand in hands:
            views = sorted(hand.pixels)
            if len(views) < 2:
                continue
            for a_index, a in enumerate(views):
                for b in views[a_index + 1 :]:
                    self._add_link(a, b, hand.joints_cam[a], hand.joints_cam[b])
            self._maybe_keyframe(hand, views)
        changed = self._link_uncalibrated()
        if adjust and self.adjustment_due:
            changed |= self.adjust()
        return changed

    @property
    def adjustment_due(self) -> bool:
        """A camera was linked since the last adjustment, or ``adjust_every`` new keyframes arrived
        (``refine_every`` once converged)."""
        every = self.config.refine_every if self.state is RigState.CONVERGED else self.config.adjust_every
        enough = self._relinked or self._new_keyframes >= every
        return enough and self._calibrated_count() >= 2 and bool(self._keyframes)

    def _add_link(self, a: int, b: int, joints_a: np.ndarray, joints_b: np.ndarray) -> None:
        """One sample of T_a_b (camera b's optical frame in camera a's) from the hand's joints in both, with the
        hand's distance from camera a (the baseline gate's yardstick)."""
        _, rotation, translation = umeyama(joints_b, joints_a, with_scale=False, strict=False)
        samples = self._links.setdefault((a, b), deque(maxlen=_MAX_LINK_SAMPLES))
        samples.append((rotation, translation, float(np.linalg.norm(_palm_centre(joints_a)))))

    def _maybe_keyframe(self, hand: HandViews, views: list[int]) -> None:
        """Keep the observation when the hand moved or turned since the last keyframe (seen from the same camera)."""
        first = views[0]
        palm = hand.joints_cam[first][_PALM_JOINTS]
        centre, spokes = palm.mean(axis=0), palm[1:] - palm[0]
        last = self._last_keyframe.get(hand.hand)
        if last is not None and last[0] == first:
            moved = np.linalg.norm(centre - last[1])
            _, rotation, _ = umeyama(last[2], spokes, with_scale=False, strict=False)
            turned = np.degrees(Rotation.from_matrix(rotation).magnitude())
            if moved < self.config.keyframe_motion_m and turned < self.config.keyframe_rotation_deg:
                return
        self._last_keyframe[hand.hand] = (first, centre, spokes)
        pixels = np.full((len(self.cameras), 21, 2), np.nan)
        centres = np.full((len(self.cameras), 3), np.nan)
        for view in views:
            pixels[view] = hand.pixels[view]
            centres[view] = _palm_centre(hand.joints_cam[view])
        sizes = [palm_size_m(hand.joints_cam[view]) for view in views]
        self._keyframes.append(_Keyframe(pixels=pixels, centres_m=centres, palm_size_m=float(np.median(sizes))))
        self._new_keyframes += 1

    # ------------------------------------------------------------------ linking

    def _calibrated_count(self) -> int:
        return sum(c.calibrated for c in self.cameras)

    def _link_uncalibrated(self) -> bool:
        """Give uncalibrated cameras a pose through their best-supported link to a calibrated one that passes the
        evidence gates (Prim's order); record why each camera left uncalibrated is held."""
        linked = False
        while True:
            best = None
            holds: dict[int, tuple[int, CalibrationHold, str]] = {}  # per camera: its best-supported pair's hold
            for (a, b), samples in self._links.items():
                for known, unknown in ((a, b), (b, a)):
                    if not self.cameras[known].calibrated or self.cameras[unknown].calibrated:
                        continue
                    hold = self._link_hold(known, unknown)
                    if hold is None and (best is None or len(samples) > best[0]):
                        best = (len(samples), known, unknown)
                    elif hold is not None and (unknown not in holds or len(samples) > holds[unknown][0]):
                        holds[unknown] = (len(samples), *hold)
            if best is None:
                self._record_holds(holds)
                return linked
            _, known, unknown = best
            T_known_unknown = self._averaged_link(known, unknown)
            self.cameras[unknown].T_ref_cam = self.cameras[known].T_ref_cam @ T_known_unknown
            self.cameras[unknown].hold, self.cameras[unknown].hold_detail = None, ""
            self._stable_adjustments = 0
            self._relinked = True
            self._generation += 1
            if self.state is RigState.UNCALIBRATED:
                self.state = RigState.CONVERGING
            linked = True

    def _link_hold(self, known: int, unknown: int) -> tuple[CalibrationHold, str] | None:
        """Why the pair's evidence cannot give ``unknown`` a pose yet (and the reason with its numbers), or None."""
        config, name = self.config, self.cameras[known].name
        pair = (min(known, unknown), max(known, unknown))
        samples = self._links[pair]
        if len(samples) < config.min_link_frames:
            return CalibrationHold.FEW_FRAMES, (
                f"{len(samples)} of {config.min_link_frames} frames with a hand seen together with {name} so far")
        baseline = float(np.linalg.norm(self._averaged_link(known, unknown)[:3, 3]))
        distance = float(np.median([d for _, _, d in samples]))
        if baseline < config.min_baseline_ratio * distance:
            return CalibrationHold.SMALL_BASELINE, (
                f"its viewpoint coincides with {name}'s (baseline {1e3 * baseline:.1f} mm at a hand distance of "
                f"{distance:.2f} m, under {config.min_baseline_ratio:.0%} of it): identical or co-located views "
                "cannot triangulate depth; hands stay monocular until the cameras have distinct viewpoints")
        centres = np.array([k.centres_m[pair[0]] for k in self._keyframes if np.isfinite(k.centres_m[pair, 0]).all()])
        spread = np.zeros(3)
        if len(centres) >= 2:
            spread = np.linalg.svd(centres - centres.mean(axis=0), compute_uv=False) / np.sqrt(len(centres))
        needed = f"{100 * config.min_hand_spread_m:.1f} cm"
        if len(centres) < config.min_link_frames or spread[0] < config.min_hand_spread_m:
            return CalibrationHold.STATIC_HAND, (
                f"the hand it sees with {name} has not moved ({len(centres)} distinct poses of "
                f"{config.min_link_frames} needed, positions spread {100 * spread[0]:.1f} cm of {needed}): "
                "move it around to calibrate")
        if spread[1] < config.min_hand_spread_m:
            return CalibrationHold.COLLINEAR_MOTION, (
                f"the hand it sees with {name} moved only along one line (positions spread {100 * spread[0]:.1f} cm "
                f"along it, {100 * spread[1]:.1f} cm across, {needed} needed): move it in another direction too")
        return None

    def _record_holds(self, holds: dict[int, tuple[int, CalibrationHold, str]]) -> None:
        """Set each uncalibrated camera's hold. A degenerate verdict stays while new evidence is only being
        collected; a small baseline also drops the camera's evidence, so a distinct viewpoint starts afresh."""
        for index, camera in enumerate(self.cameras):
            if camera.calibrated or not camera.seen:
                continue
            unseen = CalibrationHold.NO_SHARED_VIEW
            _, hold, detail = holds.get(index, (0, unseen, unseen.value))
            if hold is CalibrationHold.SMALL_BASELINE:
                self._drop_evidence(index)
            if hold.degenerate or camera.hold is None or not camera.hold.degenerate:
                camera.hold, camera.hold_detail = hold, detail

    @property
    def reason(self) -> str:
        """Why cameras are not calibrated yet, one clause per camera ('' when none is held)."""
        return "; ".join(f"{c.name}: {c.hold_detail}" for c in self.cameras if c.hold is not None)

    def _averaged_link(self, a: int, b: int) -> np.ndarray:
        """T_a_b from the pair's samples: robust rotation mean, median translation of the inlier samples."""
        samples = self._links[(min(a, b), max(a, b))]
        rotations = np.array([r for r, _, _ in samples])
        translations = np.array([t for _, t, _ in samples])
        rotation, inliers = robust_rotation_mean(rotations)
        transform = np.eye(4)
        transform[:3, :3] = rotation
        transform[:3, 3] = np.median(translations[inliers], axis=0)
        return transform if a < b else inverse_matrices(transform)

    # ------------------------------------------------------------------ adjustment

    def rig_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(intrinsics (V, 4), T_cam_ref (V, 4, 4) with NaN for uncalibrated cameras, calibrated mask (V,))."""
        intrinsics = np.array([[c.camera.fx, c.camera.fy, c.camera.cx, c.camera.cy] for c in self.cameras])
        calibrated = np.array([c.calibrated for c in self.cameras])
        T_cam_ref = np.full((len(self.cameras), 4, 4), np.nan)
        for index, camera in enumerate(self.cameras):
            if camera.calibrated:
                T_cam_ref[index] = inverse_matrices(camera.T_ref_cam)
        return intrinsics, T_cam_ref, calibrated

    def adjustment_job(self) -> AdjustmentJob | None:
        """Snapshot of the calibrated cameras and keyframes for one bundle adjustment (None if too little data)."""
        self._new_keyframes = 0
        self._relinked = False
        intrinsics, T_cam_ref, calibrated = self.rig_arrays()
        views = np.flatnonzero(calibrated)
        if len(views) < 2 or not self._keyframes:
            return None
        return AdjustmentJob(
            generation=self._generation,
            views=views,
            intrinsics=intrinsics[views],
            T_cam_ref=T_cam_ref[views],
            pixels=np.concatenate([k.pixels[views] for k in self._keyframes], axis=1),
            image_sizes=np.array([[self.cameras[v].camera.width, self.cameras[v].camera.height] for v in views]),
            # two cameras cannot pin their unknown focal lengths from a hand-sized volume (measured: 40-60 % off,
            # poses flipped): with fewer than MIN_CAMERAS_FOR_FOCAL the guesses are held
            optimize_focal=np.array([not self.cameras[v].focal_known and len(views) >= MIN_CAMERAS_FOR_FOCAL
                                     for v in views]),
            palm_sizes_m=np.array([k.palm_size_m for k in self._keyframes]),
            huber_px=self.config.huber_px,
            outlier_px=self.config.outlier_px,
        )

    def adjust(self) -> bool:
        """Run one bundle adjustment here and now; True when it was applied."""
        job = self.adjustment_job()
        return job is not None and self.apply_adjustment(job.run())

    def apply_adjustment(self, outcome: AdjustmentOutcome | None) -> bool:
        """Take an adjustment's result, unless the rig changed since its snapshot; update convergence."""
        if outcome is None or outcome.generation != self._generation:
            return False
        views = outcome.views
        before = [self.cameras[v].T_ref_cam for v in views]
        before_focal = np.array([self.cameras[v].camera.fx for v in views])
        for k, view in enumerate(views):
            camera = self.cameras[view]
            camera.T_ref_cam = outcome.T_ref_cam[k] if view != 0 else np.eye(4)
            if not camera.focal_known:
                f = float(outcome.focal[k])
                camera.camera = PinholeCamera.from_intrinsics(
                    f, f, camera.camera.cx, camera.camera.cy, camera.camera.width, camera.camera.height
                )
            camera.reprojection_error_px = float(outcome.rms_px[k])
            camera.observations = int(outcome.observations[k])
        self.adjustments += 1
        self._update_convergence(views, before, before_focal)
        return True

    def _update_convergence(self, views: np.ndarray, before: list, before_focal: np.ndarray) -> None:
        """CONVERGED after two successive adjustments that changed no camera beyond the tolerances."""
        changes = []
        for k, view in enumerate(views):
            camera = self.cameras[view]
            if before[k] is None:
                changes.append(np.inf)
                continue
            rotation = before[k][:3, :3].T @ camera.T_ref_cam[:3, :3]
            angle = np.degrees(Rotation.from_matrix(rotation).magnitude())
            focal = 100.0 * abs(camera.camera.fx / before_focal[k] - 1.0)
            changes.append(max(angle / self.config.converged_rotation_deg, focal / self.config.converged_focal_pct))
        stable = max(changes) <= 1.0
        self._stable_adjustments = self._stable_adjustments + 1 if stable else 0
        done = self._stable_adjustments >= 2 and self._calibrated_count() == len(self.cameras)
        for view in views:
            self.cameras[view].converged = self._stable_adjustments >= 2
        if done:
            self.state = RigState.CONVERGED
        elif self.state is RigState.CONVERGED:
            self.state = RigState.CONVERGING

    # ------------------------------------------------------------------ moved cameras

    def check_consistency(self, view: int, error_px: float) -> bool:
        """Record a calibrated camera's leave-one-out landmark error for one frame; drop its calibration and return
        True when it has been inconsistent for a whole window (it moved)."""
        camera = self.cameras[view]
        if not camera.calibrated or not np.isfinite(error_px):
            return False
        window = self._recent_errors[view]
        window.append(float(error_px))
        limit = max(self.config.moved_error_px, 4.0 * np.nan_to_num(camera.reprojection_error_px))
        if len(window) < window.maxlen or np.median(window) <= limit:
            return False
        self.forget_camera(view)
        return True

    def forget_camera(self, view: int) -> None:
        """Drop one camera's calibration and evidence (it moved): it is linked and adjusted again from new frames."""
        camera = self.cameras[view]
        was_calibrated = camera.calibrated and view != 0
        self._recent_errors[view].clear()
        camera.converged = False
        camera.reprojection_error_px = float("nan")
        camera.observations = 0
        self._drop_evidence(view)
        self._stable_adjustments = 0
        self._generation += 1
        if view == 0:
            # the reference frame is defined by camera 0: the others are re-expressed relative to it anew
            if any(other.calibrated for other in self.cameras[1:]):
                self.state = RigState.RECALIBRATING
            for other in self.cameras[1:]:
                other.T_ref_cam = None
            self._links.clear()
            self._keyframes.clear()
            return
        camera.T_ref_cam = None
        if was_calibrated:
            self.state = RigState.RECALIBRATING

    def _drop_evidence(self, view: int) -> None:
        """Forget one camera's links and its part of the keyframes."""
        for pair in [p for p in self._links if view in p]:
            del self._links[pair]
        for keyframe in self._keyframes:
            keyframe.pixels[view] = np.nan
            keyframe.centres_m[view] = np.nan

    def reset(self) -> None:
        """Forget everything learned (cameras without CameraInfo go back to the guessed focal length)."""
        for camera in self.cameras:
            camera.T_ref_cam = None
            camera.hold, camera.hold_detail = None, ""
            camera.converged = False
            camera.reprojection_error_px = float("nan")
            camera.observations = 0
            if not camera.focal_known:
                cam = camera.camera
                camera.camera = guessed_camera(cam.width, cam.height, self.config.default_hfov_deg)
        self.cameras[0].T_ref_cam = np.eye(4)
        self._links.clear()
        self._keyframes.clear()
        self._last_keyframe.clear()
        for window in self._recent_errors:
            window.clear()
        self._new_keyframes = self._stable_adjustments = 0
        self._relinked = False
        self._generation += 1
        self.state = RigState.UNCALIBRATED

    # ------------------------------------------------------------------ triangulation with the current rig

    def triangulate(self, pixels: dict[int, np.ndarray]) -> tuple[np.ndarray, dict[int, float]]:
        """(21, 3) reference-frame joints from the calibrated cameras' landmarks and each camera's median error."""
        intrinsics, T_cam_ref, calibrated = self.rig_arrays()
        views = [v for v in sorted(pixels) if calibrated[v]]
        stacked = np.array([pixels[v] for v in views])
        joints = triangulate_points(intrinsics[views], T_cam_ref[views], stacked)
        errors = reprojection_errors(intrinsics[views], T_cam_ref[views], joints, stacked)
        return joints, {v: median_finite(errors[k]) for k, v in enumerate(views)}

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """Write the calibration as YAML (atomic): per camera intrinsics, pose, error and observations."""
        document = {
            "format": CALIBRATION_FORMAT,
            "state": self.state.name.lower(),
            "reference": self.cameras[0].name,
            "cameras": [_camera_entry(c) for c in self.cameras],
        }
        path = Path(path)
        with atomic_write(path, "w") as handle:
            yaml.safe_dump(document, handle, sort_keys=False)
        return path

    def load(self, path: str | Path) -> None:
        """Read a calibration written by :meth:`save` for this rig's cameras (names and image sizes must match)."""
        document = yaml.safe_load(Path(path).read_text())
        if not isinstance(document, dict) or document.get("format") != CALIBRATION_FORMAT:
            raise ValueError(f"{path} is not a rig calibration file ({CALIBRATION_FORMAT})")
        entries = {entry["name"]: entry for entry in document.get("cameras", [])}
        names = [c.name for c in self.cameras]
        if sorted(entries) != sorted(names) or document.get("reference") != names[0]:
            raise ValueError(
                f"{path} calibrates cameras {sorted(entries)} (reference {document.get('reference')!r}) but this rig "
                f"has {names} (reference {names[0]!r})"
            )
        loaded = []
        for camera in self.cameras:
            entry = entries[camera.name]
            if camera.seen and (entry["width"], entry["height"]) != (camera.camera.width, camera.camera.height):
                raise ValueError(
                    f"{path}: camera {camera.name!r} was calibrated at {entry['width']}x{entry['height']}, "
                    f"its images are {camera.camera.width}x{camera.camera.height}"
                )
            pose = entry.get("T_reference_camera")
            if pose is not None:
                pose = np.asarray(pose, dtype=np.float64)
                if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
                    raise ValueError(f"{path}: camera {camera.name!r} T_reference_camera must be a finite 4x4 matrix")
            loaded.append((camera, entry, pose))
        for camera, entry, pose in loaded:
            if not camera.focal_known:
                fx, fy, cx, cy = (float(entry["intrinsics"][k]) for k in ("fx", "fy", "cx", "cy"))
                camera.camera = PinholeCamera.from_intrinsics(fx, fy, cx, cy, int(entry["width"]), int(entry["height"]))
            camera.T_ref_cam = pose
            camera.hold, camera.hold_detail = None, ""  # the next frame judges the evidence of those still uncalibrated
            error = entry.get("reprojection_error_px")
            camera.reprojection_error_px = float("nan") if error is None else float(error)
            camera.observations = int(entry.get("observations", 0))
            camera.converged = bool(entry.get("converged", False))
        self.state = RigState[str(document.get("state", "converging")).upper()]
        self._generation += 1


def _palm_centre(joints: np.ndarray) -> np.ndarray:
    """(3,) mean of the wrist and the four knuckles: where the hand is, whatever its fingers do."""
    return joints[_PALM_JOINTS].mean(axis=0)


def _camera_entry(camera: RigCamera) -> dict:
    """One camera's YAML entry (plain lists and floats, readable and diffable)."""
    cam = camera.camera
    return {
        "name": camera.name,
        "width": cam.width,
        "height": cam.height,
        "intrinsics": {"fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy},
        "intrinsics_source": "camera_info" if camera.focal_known else "estimated",
        "distortion_model": cam.distortion_model,
        "distortion": list(cam.d),
        "T_reference_camera": None if camera.T_ref_cam is None else np.round(camera.T_ref_cam, 9).tolist(),
        "reprojection_error_px": (
            float(camera.reprojection_error_px) if np.isfinite(camera.reprojection_error_px) else None
        ),
        "observations": camera.observations,
        "converged": camera.converged,
    }

"""Ego pipeline (the Hand3R task, embedded tier): one moving camera in, hands and scene in a metric world out.

Per frame, in this order:
1. Odometry and hand detection run concurrently (OpenCV and MediaPipe both release the GIL, and
   this machine has two cores; MediaPipe keeps to one): odometry masks out the previous frame's
   hands, dilated, since it cannot wait for this frame's detections. With depth: RGB-D odometry,
   then the frame's points are put into the world at the tracked pose (the mask-free half of map
   fusion); without: monocular odometry whose metric scale comes from the hands placed in step 2
   (added to it once they are placed).
2. Each detected hand is placed metrically in the camera frame (intrinsics, depth when present)
   and the hand model is fitted to it (pipelines/hand_estimate.py, warm-started from the same hand's previous fit).
3. The fits are moved into the world frame, associated to tracks (stable ids, voted sides) and
   temporally filtered; filtering acts on the model parameters (by default the wrist position only: the
   fitter's temporal prior steadies the angles, see EgoConfig.tracker; the shape is the fitter's running
   average) and the mesh is posed again from the filtered parameters, so joints, vertices and the published
   parameters always agree.
4. With depth, the frame's non-hand points are fused into the coloured voxel map (on the worker,
   during steps 2-3), and contacts between the hand meshes and the map are found.

:meth:`EgoPipeline.process` returns a frame's result before it takes the next frame.
:meth:`EgoPipeline.process_stream` gives the same results one frame later, and in exchange hands
frame t+1 to the detector while steps 2-4 of frame t run, so the detector's core never waits on the
rest of the pipeline: the choice for throughput (bags, files), measured by ``hand-scene bench ego``.

World frame: the first camera pose of a session (or ``EgoConfig.initial_pose``); a time jump
backwards (bag loop) or :meth:`EgoPipeline.reset` starts a new session. ``EgoConfig.camera_pose_source``
replaces odometry: ``tf``, each frame brings its pose (``EgoFrame.T_world_camera``, in whatever frame the
caller chose); ``static``, the camera stays at the initial pose.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from ..backends.base import HandDetection, HandExpert
from ..backends.registry import create_hand_expert
from ..core.arm_mask import arm_pixel_mask
from ..core.camera import CAMERA_POSE_SOURCES, PinholeCamera
from ..core.contacts import Contact, find_map_contacts, hand_regions
from ..core.depth import aligned_depth_metres
from ..core.fitting import FitResult
from ..core.hand_model import HandModel, HandSide, create_hand_model
from ..core.hand_model.wrist_frame import wrist_frame_from_joints
from ..core.hand_state import HandState, transformed_state
from ..core.images import as_rgb8
from ..core.mapping import FrameCloud, VoxelMap
from ..core.odometry import MonocularOdometry, OdometryResult, RgbdOdometry
from ..core.tracking import HandObservation, HandTracker, TrackerConfig
from ..core.transforms import check_rigid_matrices
from .hand_estimate import HandEstimator, HandStageConfig

NS_PER_S = 1e9
# Forearm band masked beyond the wrist, in wrist-to-middle-knuckle lengths: without depth, a guess along the
# hand's axis that reaches the image border; with depth, only the wrist (core/arm_mask finds the arm itself).
FOREARM_LENGTHS = 5.0
FOREARM_LENGTHS_WITH_DEPTH = 1.0


@dataclass
class EgoConfig(HandStageConfig):
    """Pipeline settings (the ego node exposes the same names as ROS parameters)."""

    voxel_size_m: float = 0.01
    max_voxels: int = 500_000
    map_stride: int = 2
    contact_threshold_m: float = 0.01
    hand_mask_margin_px: int = 20
    max_fit_match_m: float = 0.12
    # Expected change of a finger joint's angles between frames (core/fitting.py temporal_sigma_rad): on the RGB-D
    # benchmark 0.3 -> 0.07 rad took Acc Err 3.9 -> 2.6 mm/frame² and C-MPJPE 14.2 -> 13.2 mm (a grasp moves a
    # finger joint ~0.03 rad per frame at 30 Hz, so this holds no real motion back); on real video (RGB) no prior ->
    # 0.07 took Acc Err 16.7 -> 16.4 mm/frame² at the same C-MPJPE.
    fit_temporal_sigma_rad: float = 0.07
    # With depth: move the wrist, knuckles and PIPs onto the depth image before fitting (core/placement.py), unless the
    # detector's metric output is exact (detector_size_sigma 0: its own joints are better than the depth's).
    lift_joints_to_depth: bool = True
    initial_pose: np.ndarray | None = None
    # Where the camera pose comes from (CAMERA_POSE_SOURCES): odometry (visual odometry, the world is the first
    # pose); tf (every frame brings its pose, EgoFrame.T_world_camera: the node looks it up in TF); static (no
    # odometry, the camera stays at initial_pose: a fixed rig, where odometry would only add drift).
    camera_pose_source: str = "odometry"
    tracker: TrackerConfig = field(
        default_factory=lambda: TrackerConfig(
            filters={
                # No One-Euro filter on the angles: on real video with 3D ground truth it lagged the hand (C-MPJPE
                # 28.4 -> 31.7 mm, RR 19.0 -> 23.5) for little smoothing (Acc Err 16.4 -> 17.6 mm/frame²); the
                # fitter's temporal prior already keeps the angles steady. The wrist keeps the default position
                # filter (real video: Acc Err 19.2 -> 16.4 mm/frame² for +0.8 mm C-MPJPE).
                "rotation": None,
                "articulation": None,
                # The fitter already keeps a running average of the shape (core/fitting.py shape_rate), and
                # the articulation is fitted with that shape: a second, slower filter here held the first
                # frames' noisy shape and posed the filtered angles on other bones (+5 mm C-MPJPE).
                "shape": None,
            }
        )
    )

    def __post_init__(self) -> None:
        """Reject values that would make the pipeline misbehave silently."""
        super().__post_init__()
        for name in ("voxel_size_m", "contact_threshold_m", "max_fit_match_m", "fit_temporal_sigma_rad"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_voxels < 1 or self.map_stride < 1 or self.hand_mask_margin_px < 0:
            raise ValueError("max_voxels and map_stride must be >= 1 and hand_mask_margin_px >= 0")
        if self.camera_pose_source not in CAMERA_POSE_SOURCES:
            raise ValueError(f"camera_pose_source must be one of {', '.join(CAMERA_POSE_SOURCES)}, "
                             f"got {self.camera_pose_source!r}")


@dataclass(frozen=True)
class EgoFrame:
    """One input: the colour image, its camera, the image stamp, optional aligned depth.

    image_rgb: (H, W, 3) uint8 RGB; grey, RGBA and uint16 colour are converted (core/images.py as_rgb8).

    depth: uint16 millimetres or float metres, any resolution (resampled to the colour image), 0/NaN = none.

    T_world_camera: the camera's known pose at the stamp (4x4 rigid), for ``camera_pose_source`` tf only.
    """

    image_rgb: np.ndarray
    camera: PinholeCamera
    stamp_ns: int
    depth: np.ndarray | None = None
    T_world_camera: np.ndarray | None = None

    def __post_init__(self) -> None:
        """A given pose must be one rigid transform: a bad one would put every hand and map point elsewhere."""
        if self.T_world_camera is not None:
            pose = check_rigid_matrices(self.T_world_camera, "T_world_camera")
            if pose.shape != (4, 4):
                raise ValueError(f"T_world_camera must be one 4x4 transform, got shape {pose.shape}")
            object.__setattr__(self, "T_world_camera", pose.copy())


@dataclass(frozen=True)
class EgoHand:
    """One tracked hand: the same state in the camera frame and in the world frame."""

    track_id: int
    side: HandSide
    side_confidence: float
    camera: HandState
    world: HandState
    reprojection_error_px: float | None


@dataclass(frozen=True)
class EgoResult:
    """Everything one frame produced; timings in milliseconds per stage."""

    stamp_ns: int
    hands: list[EgoHand]
    T_world_camera: np.ndarray
    odometry: OdometryResult
    map_points_added: int
    contacts: list[Contact]
    timings_ms: dict[str, float]
    session_reset: str | None = None
    detections: int = 0


@dataclass
class _Started:
    """A frame handed to the detector: its validated inputs and the jobs under way for it."""

    frame: EgoFrame
    image: np.ndarray
    depth: np.ndarray | None
    session_reset: str | None
    start: float
    detections: Future
    odometry: Future | None = None


def hand_pixel_mask(
    landmarks: list[np.ndarray], height: int, width: int, margin_px: int, forearm_lengths: float = FOREARM_LENGTHS
) -> np.ndarray:
    """(H, W) bool mask covering each hand's landmark hull and its forearm, grown by margin_px.

    Hands and arms move independently of the scene, so odometry and mapping must not use these pixels.
    The forearm continues from the wrist away from the fingers as a band as wide as the palm (widened by
    a third for the sleeve), ``forearm_lengths`` wrist-to-middle-knuckle lengths long: by default far enough
    to reach the image border in an egocentric view, where the arm enters. The margin is added to each
    polygon's corners (a disc of 16 points each) before filling: the hull of the grown corners is the
    dilated polygon, at a fraction of the cost of dilating the whole image.
    """
    mask = np.zeros((height, width), np.uint8)
    angles = np.linspace(0.0, 2.0 * np.pi, 16, endpoint=False)
    disc = margin_px * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    for points in landmarks:
        pts = np.asarray(points, np.float64)
        if pts.shape != (21, 2):
            continue
        finite = np.all(np.isfinite(pts), axis=1)
        polygons = [pts[finite]] if finite.sum() >= 3 else []
        if finite[[0, 5, 9, 17]].all():
            along = pts[0] - pts[9]
            across = np.array([-along[1], along[0]]) / max(float(np.linalg.norm(along)), 1e-9)
            half_width = 0.65 * float(np.linalg.norm(pts[5] - pts[17])) * across
            far = pts[0] + forearm_lengths * along
            polygons.append(np.stack([pts[0] + half_width, pts[0] - half_width, far - half_width, far + half_width]))
        for polygon in polygons:
            grown = (polygon[:, None, :] + disc[None]).reshape(-1, 2).astype(np.float32)
            cv2.fillConvexPoly(mask, cv2.convexHull(grown).astype(np.int32), 1)
    return mask.astype(bool)


def hand_estimator(config: EgoConfig, detector: HandExpert, model: HandModel | None = None) -> HandEstimator:
    """The per-frame estimate for ``detector`` (its metric-size uncertainty: HandStageConfig.size_sigma)."""
    return HandEstimator(model or config.hand_model, config.mano_dir, size_sigma=config.size_sigma(detector),
                         temporal_sigma_rad=config.fit_temporal_sigma_rad, lift_joints=config.lift_joints_to_depth)


def _orthonormal(matrix: np.ndarray) -> np.ndarray:
    """Nearest rotation to a (filtered, slightly non-orthogonal) 3x3 matrix."""
    u, _, vt = np.linalg.svd(matrix)
    rotation = u @ vt
    if np.linalg.det(rotation) < 0:
        u[:, -1] *= -1
        rotation = u @ vt
    return rotation


class EgoPipeline:
    """Frames in, :class:`EgoResult` out (see the module notes for the stages)."""

    def __init__(
        self,
        config: EgoConfig | None = None,
        detector: HandExpert | None = None,
        model: HandModel | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.config = config or EgoConfig()
        self.model = model or create_hand_model(self.config.hand_model, mano_dir=self.config.mano_dir)
        if detector is None:
            detector = create_hand_expert(self.config.backend, max_hands=self.config.max_hands)
        self.detector = detector
        self.estimator = hand_estimator(self.config, detector, self.model)
        self.map = VoxelMap(self.config.voxel_size_m, self.config.max_voxels)
        self._regions = {side: hand_regions(self.model, side) for side in HandSide}
        self._clock = clock
        # One thread for the detector (its calls must stay in order) and one for odometry and map fusion.
        self._detection_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ego-detect")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ego-odometry")
        self._rgbd = RgbdOdometry(initial_pose=self.config.initial_pose)
        self._mono = MonocularOdometry(initial_pose=self.config.initial_pose)
        self.reset()

    def reset(self) -> None:
        """Start a new session: new world frame, empty map, no tracks."""
        self._rgbd.reset()
        self._mono.reset()
        self.map.clear()
        self.tracker = HandTracker(self.config.tracker)
        self._last_stamp: int | None = None
        self._last_mask: np.ndarray | None = None
        self._last_fits: list[FitResult] = []
        self._pose = np.eye(4) if self.config.initial_pose is None else np.asarray(self.config.initial_pose, float)

    def close(self) -> None:
        """Release the worker thread and the detector."""
        self._detection_pool.shutdown(wait=True)
        self._pool.shutdown(wait=True)
        close = getattr(self.detector, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> EgoPipeline:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ per frame

    def process(self, frame: EgoFrame) -> EgoResult:
        """Run one frame through every stage; bad input raises ValueError before any state changes."""
        started = self._start(frame)
        self._submit_odometry(started)
        return self._finish(started)

    def process_stream(self, frames: Iterable[EgoFrame]) -> Iterator[EgoResult]:
        """Results of a stream of frames, in order, one frame behind: for throughput (bags, files, replays).

        While frame t's hands are fitted, tracked and mapped, frame t+1 is already in the detector, so the
        detector's core never idles. Every result equals what :meth:`process` gives for the same frames (the
        stages run in the same order on the same inputs); a result comes out once the next frame has come in
        (or the stream has ended). A time jump backwards finishes the pending frame before the new session;
        a stream left early still completes the frame under way, so the pipeline stays consistent.
        """
        pending: _Started | None = None
        try:
            for frame in frames:
                if pending is not None and frame.stamp_ns < pending.frame.stamp_ns:
                    done, pending = pending, None
                    yield self._finish(done)
                try:
                    started = self._start(frame)
                except ValueError:
                    if pending is not None:
                        done, pending = pending, None
                        yield self._finish(done)
                    raise
                done, pending = pending, started
                if done is None:
                    self._submit_odometry(started)
                else:
                    yield self._finish(done, following=started)
            if pending is not None:
                done, pending = pending, None
                yield self._finish(done)
        finally:
            if pending is not None:  # left early (or an error): complete the frame under way, result dropped
                self._finish(pending)

    def _start(self, frame: EgoFrame) -> _Started:
        """Validate the frame, start a new session on a time jump back, and hand the image to the detector."""
        image = self._validated_image(frame)
        self._check_given_pose(frame)
        height, width = image.shape[:2]
        depth = None if frame.depth is None else aligned_depth_metres(frame.depth, height, width)
        session_reset = None
        if self._last_stamp is not None and frame.stamp_ns < self._last_stamp:
            session_reset = f"time jumped back {(self._last_stamp - frame.stamp_ns) / NS_PER_S:.3f} s: new session"
            self.reset()
        elif self._last_mask is not None and self._last_mask.shape != (height, width):
            # another camera mode (or unrelated images): odometry cannot match frames of two sizes
            previous = f"{self._last_mask.shape[1]}x{self._last_mask.shape[0]}"
            session_reset = f"image size changed from {previous} to {width}x{height}: new session"
            self.reset()
        self._last_stamp = frame.stamp_ns
        start = self._clock()
        detections = self._detection_pool.submit(self._timed_detect, image, frame.stamp_ns)
        return _Started(frame, image, depth, session_reset, start, detections)

    def _timed_detect(self, image: np.ndarray, stamp_ns: int) -> tuple[list[HandDetection], float]:
        mark = self._clock()
        detections = self.detector.detect(image, stamp_ns)[: self.config.max_hands]
        return detections, 1e3 * (self._clock() - mark)

    def _check_given_pose(self, frame: EgoFrame) -> None:
        """A frame brings a camera pose exactly when camera_pose_source is tf (ValueError before any state changes:
        a pose ignored, or one missing, would be a guess)."""
        source = self.config.camera_pose_source
        if source == "tf" and frame.T_world_camera is None:
            raise ValueError("camera_pose_source tf: the frame must bring its T_world_camera")
        if source != "tf" and frame.T_world_camera is not None:
            raise ValueError(f"a frame's T_world_camera is used with camera_pose_source tf only, not {source}")

    def _known_pose(self, frame: EgoFrame) -> OdometryResult | None:
        """The frame's camera pose when it is known without odometry (tf: the frame's; static: the session's
        initial pose, which never changes then); None with camera_pose_source odometry."""
        source = self.config.camera_pose_source
        if source == "odometry":
            return None
        pose = frame.T_world_camera if source == "tf" else self._pose
        return OdometryResult(pose.copy(), ok=True, inliers=0, status=f"camera pose from {source}",
                              stamp_ns=frame.stamp_ns)

    def _submit_odometry(self, started: _Started) -> None:
        """Track the camera for ``started`` on the worker. It cannot wait for this frame's hands, so it masks
        the previous frame's (dilated); the monocular scale hint is added once this frame's hands are placed.
        With a known pose (camera_pose_source tf or static) no odometry runs: with depth the worker only puts
        the frame's points into the world at that pose. Submitted once: later calls for the same frame do nothing."""
        if started.odometry is not None:
            return
        image, depth, frame = started.image, started.depth, started.frame
        known = self._known_pose(frame)
        previous = self._last_mask if self._last_mask is not None else np.zeros(image.shape[:2], bool)
        if depth is not None:
            started.odometry = self._pool.submit(self._track_rgbd, image, depth, frame.camera, frame.stamp_ns, previous,
                                                 known)  # fmt: skip
        elif known is not None:
            started.odometry = Future()
            started.odometry.set_result((known, None))
        else:
            started.odometry = self._pool.submit(
                lambda: (self._mono.track(image, frame.camera, frame.stamp_ns, previous), None))

    def _track_rgbd(self, image: np.ndarray, depth: np.ndarray, camera: PinholeCamera, stamp_ns: int,
                    previous_mask: np.ndarray,
                    known: OdometryResult | None) -> tuple[OdometryResult, FrameCloud | None]:
        """RGB-D odometry (or the ``known`` pose), then the frame's points in the world at that pose (the mask-free
        half of map fusion, done here while the detector still runs)."""
        odometry = known if known is not None else self._rgbd.track(image, depth, camera, stamp_ns, previous_mask)
        if not odometry.ok:
            return odometry, None
        return odometry, self.map.observe(depth, image, camera, odometry.T_world_camera, self.config.map_stride)

    def _finish(self, started: _Started, following: _Started | None = None) -> EgoResult:
        """Everything after detection for ``started``; ``following`` (the next frame, already in the detector)
        gets its odometry submitted as soon as this frame's hand mask (and monocular scale hint) exist."""
        try:
            return self._finish_stages(started, following)
        finally:
            if following is not None:  # (again) in case an error ended this frame early
                self._submit_odometry(following)

    def _finish_stages(self, started: _Started, following: _Started | None) -> EgoResult:
        frame, image, depth = started.frame, started.image, started.depth
        height, width = image.shape[:2]
        timings: dict[str, float] = {}
        try:
            detections, timings["detect"] = started.detections.result()
        finally:
            mark = self._clock()  # "odometry": the wait for the tracker beyond detection, and the masks
            odometry, cloud = started.odometry.result()  # never leave the tracker running into the next frame

        landmarks = [d.landmarks_px for d in detections]
        if depth is None:
            mask = hand_pixel_mask(landmarks, height, width, self.config.hand_mask_margin_px)
        else:
            mask = hand_pixel_mask(landmarks, height, width, self.config.hand_mask_margin_px,
                                   FOREARM_LENGTHS_WITH_DEPTH)
            mask |= arm_pixel_mask(depth, landmarks, frame.camera.fx)
            self._apply_odometry(odometry)
        self._last_mask = mask
        map_job = None
        if cloud is not None:  # fused on the worker while the hands are fitted and tracked
            map_job = self._pool.submit(self.map.fuse, cloud, mask)
        if following is not None and following.depth is not None:
            self._submit_odometry(following)
        timings["odometry"] = 1e3 * (self._clock() - mark)

        try:
            mark = self._clock()
            fits = self._fit_hands(detections, frame.camera, depth)
            if depth is None:
                if self.config.camera_pose_source == "odometry":
                    hand_points = np.array([fit.joints_cam[0] for _, fit in fits]) if fits else None
                    odometry = self._mono.add_scale_hint(odometry, hand_points)
                self._apply_odometry(odometry)
            if following is not None:
                self._submit_odometry(following)
            timings["fit"] = 1e3 * (self._clock() - mark)

            mark = self._clock()
            hands = self._track_hands(fits, frame)
            timings["track"] = 1e3 * (self._clock() - mark)
        finally:
            mark = self._clock()
            added = 0 if map_job is None else map_job.result()
        contacts = self._contacts(hands) if len(self.map) else []
        timings["map"] = 1e3 * (self._clock() - mark)
        timings["total"] = 1e3 * (self._clock() - started.start)
        return EgoResult(
            stamp_ns=frame.stamp_ns,
            hands=hands,
            T_world_camera=self._pose.copy(),
            odometry=odometry,
            map_points_added=added,
            contacts=contacts,
            timings_ms=timings,
            session_reset=started.session_reset,
            detections=len(detections),
        )

    def _apply_odometry(self, odometry: OdometryResult) -> None:
        """Take the tracked pose: whole when metric; only the rotation while a monocular scale is unknown."""
        if odometry.ok and odometry.metric:
            self._pose = odometry.T_world_camera
        elif odometry.ok:
            # Scale still unknown (monocular): the rotation is scale-free, the position waits for a scale.
            self._pose = self._pose.copy()
            self._pose[:3, :3] = odometry.T_world_camera[:3, :3]

    @staticmethod
    def _validated_image(frame: EgoFrame) -> np.ndarray:
        image = as_rgb8(frame.image_rgb)
        if (frame.camera.height, frame.camera.width) != image.shape[:2]:
            camera_size = f"{frame.camera.width}x{frame.camera.height}"
            raise ValueError(f"camera is {camera_size} but the image is {image.shape[1]}x{image.shape[0]}")
        if frame.stamp_ns < 0:
            raise ValueError(f"stamp must be non-negative nanoseconds, got {frame.stamp_ns}")
        return image

    def _fit_hands(
        self, detections: list[HandDetection], camera: PinholeCamera, depth: np.ndarray | None
    ) -> list[tuple[HandDetection, FitResult]]:
        """Place and fit every detection; a hand whose placement or fit fails (inconsistent landmarks) is
        dropped (the others go on)."""
        fits: list[tuple[HandDetection, FitResult]] = []
        for detection in detections:
            try:
                fit = self.estimator.estimate(detection, camera, depth,
                                              lambda wrist, side=detection.side: self._previous_fit(side, wrist))
            except ValueError:
                continue
            fits.append((detection, fit))
        self._last_fits = [fit for _, fit in fits]
        return fits

    def _previous_fit(self, side: HandSide, wrist_cam: np.ndarray) -> FitResult | None:
        """Last frame's fit of the same hand: same side, wrist within max_fit_match_m (warm start)."""
        candidates = [f for f in self._last_fits if f.side is side]
        if not candidates:
            return None
        best = min(candidates, key=lambda f: float(np.linalg.norm(f.joints_cam[0] - wrist_cam)))
        return best if np.linalg.norm(best.joints_cam[0] - wrist_cam) <= self.config.max_fit_match_m else None

    def _track_hands(self, fits: list[tuple[HandDetection, FitResult]], frame: EgoFrame) -> list[EgoHand]:
        """World-frame tracking and filtering of the fitted model parameters, then one forward pass per hand."""
        pose = self._pose
        observations = []
        for detection, fit in fits:
            rotation_world = pose[:3, :3] @ Rotation.from_rotvec(fit.pose[0]).as_matrix()
            wrist_world = pose[:3, :3] @ fit.joints_cam[0] + pose[:3, 3]
            observations.append(
                HandObservation(
                    side_label=fit.side,
                    score=float(np.clip(detection.score, 0.0, 1.0)),
                    position=wrist_world,
                    arrays={
                        "wrist": wrist_world,
                        "rotation": rotation_world,
                        "articulation": fit.pose[1:],
                        "shape": fit.shape,
                    },
                )
            )
        tracked = self.tracker.update(frame.stamp_ns, observations)
        camera_from_world = np.linalg.inv(pose)
        hands = []
        for track in tracked:
            detection, fit = fits[track.observation_index]
            world = self._posed_state(track, detection.landmarks_px)
            hands.append(
                EgoHand(
                    track_id=track.track_id,
                    side=track.side,
                    side_confidence=track.side_confidence,
                    camera=transformed_state(world, camera_from_world),
                    world=world,
                    reprojection_error_px=fit.reprojection_error_px,
                )
            )
        return hands

    def _posed_state(self, track, landmarks_px: np.ndarray) -> HandState:
        """World-frame HandState from the track's filtered parameters (one model forward pass).

        landmarks_px: this frame's detected 2D landmarks (unfiltered: they are the evidence, in the image)."""
        arrays = track.arrays
        global_rotation = _orthonormal(arrays["rotation"])
        model_pose = np.vstack([Rotation.from_matrix(global_rotation).as_rotvec()[None], arrays["articulation"]])
        shape = arrays["shape"]
        out = self.model.forward(model_pose.astype(np.float32), shape.astype(np.float32), side=track.side)
        # Rotation keeps the root (wrist) fixed, so the translation puts the posed root at the filtered wrist.
        translation = arrays["wrist"] - out.joints[0, 0]
        joints = out.joints[0] + translation
        return HandState(
            track_id=track.track_id,
            side=track.side,
            confidence=float(np.clip(track.score, 0.0, 1.0)),
            joints=joints,
            wrist_pose=wrist_frame_from_joints(joints, track.side),
            model_name=self.model.name,
            model_pose=model_pose,
            model_shape=shape,
            model_translation=translation,
            vertices=out.vertices[0] + translation,
            landmarks_px=landmarks_px,
            image_frame_id="",
        )

    def _contacts(self, hands: list[EgoHand]) -> list[Contact]:
        """Contacts of every hand mesh with the voxel map (looked up around each hand, not over the whole map)."""
        contacts: list[Contact] = []
        for hand in hands:
            contacts += find_map_contacts(hand.world.vertices, hand.side, hand.track_id, self.map,
                                          regions=self._regions[hand.side], threshold_m=self.config.contact_threshold_m)
        return contacts

"""The ego pipeline's stages in order (the package notes, pipelines/ego/__init__.py, describe them)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ...backends.base import HandDetection, HandExpert
from ...backends.registry import create_hand_expert
from ...core.arm_mask import arm_pixel_mask
from ...core.camera import PinholeCamera
from ...core.contacts import Contact, find_map_contacts, hand_regions
from ...core.depth import aligned_depth_metres
from ...core.fitting import FitResult
from ...core.hand_model import HandModel, HandSide, create_hand_model
from ...core.hand_model.wrist_frame import wrist_frame_from_joints
from ...core.hand_state import HandState, transformed_state
from ...core.images import as_rgb8
from ...core.mapping import FrameCloud, VoxelMap
from ...core.odometry import MonocularOdometry, OdometryResult, RgbdOdometry
from ...core.tracking import HandObservation, HandTracker
from ..hand_estimate import HandEstimator
from .config import EgoConfig
from .masks import FOREARM_LENGTHS_WITH_DEPTH, hand_pixel_mask
from .results import EgoFrame, EgoHand, EgoResult

NS_PER_S = 1e9
# A frame is due for map fusion once this fraction of the fusion period has passed since the last fused one, so
# a 30 Hz camera's jittered stamps give every third frame at 10 Hz, not every fourth.
_FUSION_PERIOD_SLACK = 0.9


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


class _Lookahead:
    """The next frame of a stream (EgoPipeline.process_arrivals), taken into the detector as soon as it waits.

    A frame that starts a new session (stamp before the frame under way, or another image size) is held until
    the frame under way is finished, since the new session resets the state that frame still uses; a frame
    that fails its checks is held as its ValueError, raised after the result of the frame under way.
    """

    def __init__(self, start: Callable[[EgoFrame], _Started], start_alone: Callable[[EgoFrame], _Started],
                 next_frame: Callable[[], EgoFrame | None]) -> None:  # fmt: skip
        self._start, self._start_alone, self._next_frame = start, start_alone, next_frame
        self.follower: _Started | None = None
        self._held: EgoFrame | None = None
        self._error: ValueError | None = None

    def poll(self, pending: _Started) -> _Started | None:
        """The frame after ``pending``, started now if one waits and may start before ``pending`` is finished."""
        if self.follower is None and self._held is None and self._error is None:
            frame = self._next_frame()
            if frame is None:
                return None
            if frame.stamp_ns < pending.frame.stamp_ns or np.shape(frame.image_rgb)[:2] != pending.image.shape[:2]:
                self._held = frame
            else:
                try:
                    self.follower = self._start(frame)
                except ValueError as error:
                    self._error = error
        return self.follower

    def take_next(self) -> _Started | None:
        """Once a frame is finished (or before the first): the next frame under way, started now if one waits
        (held or new); None when none waits. A held frame's ValueError is raised here."""
        started, self.follower = self.follower, None
        if started is not None:
            return started
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        frame, self._held = self._held, None
        if frame is None:
            frame = self._next_frame()
        return None if frame is None else self._start_alone(frame)


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
        self._last_fused_ns: int | None = None  # (the odometry worker's: it alone reads and sets it)
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
        return self._finish(self._start_alone(frame))

    def process_stream(self, frames: Iterable[EgoFrame]) -> Iterator[EgoResult]:
        """Results of a stream of frames, in order: for throughput (bags, files, replays).

        While frame t's hands are fitted, tracked and mapped, frame t+1 is already in the detector, so the
        detector's core never idles. Every result equals what :meth:`process` gives for the same frames (the
        stages run in the same order on the same inputs). A time jump backwards finishes the frame under way
        before the new session; a stream left early still completes the frame under way, so the pipeline stays
        consistent. (:meth:`process_arrivals` over the iterator.)
        """
        iterator = iter(frames)
        return self.process_arrivals(lambda: next(iterator, None))

    def process_arrivals(self, next_frame: Callable[[], EgoFrame | None]) -> Iterator[EgoResult]:
        """Results, in order, of frames taken as they arrive (a live camera): ``next_frame()`` gives the frame
        that waits, or None while none does. It is asked whenever the detector is free: as soon as a frame went
        into the detector, and again between the stages of the frame being finished, so a frame that arrives
        while frame t is fitted or mapped goes into the detector at once instead of after t's result. Each
        result comes out as soon as its frame is finished; the stream ends when a frame is finished and none
        waits. A frame that fails its checks raises ValueError after the result of the frame before it.
        """
        lookahead = _Lookahead(self._start, self._start_alone, next_frame)
        try:
            started = lookahead.take_next()
            while started is not None:
                result = self._finish(started, lookahead)
                yield result
                started = lookahead.take_next()
        finally:
            if lookahead.follower is not None:  # left early (or an error): complete the frame under way, result dropped
                self._finish(lookahead.follower)

    def _start_alone(self, frame: EgoFrame) -> _Started:
        """Start a frame that no other frame is being finished beside: its odometry goes to the worker at once."""
        started = self._start(frame)
        self._submit_odometry(started)
        return started

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
        if not odometry.ok or not self._fusion_due(stamp_ns):
            return odometry, None
        self._last_fused_ns = stamp_ns
        return odometry, self.map.observe(depth, image, camera, odometry.T_world_camera, self.config.map_stride)

    def _fusion_due(self, stamp_ns: int) -> bool:
        """Whether this frame goes into the map (EgoConfig.map_fusion_rate_hz, on image stamps: the same frames
        whatever the machine's speed)."""
        rate, last = self.config.map_fusion_rate_hz, self._last_fused_ns
        return rate <= 0 or last is None or stamp_ns - last >= _FUSION_PERIOD_SLACK * NS_PER_S / rate

    def _finish(self, started: _Started, lookahead: _Lookahead | None = None) -> EgoResult:
        """Everything after detection for ``started``; with a ``lookahead`` (a stream), the next frame is taken
        into the detector between the stages as soon as it waits, and gets its odometry submitted as soon as this
        frame's hand mask (and monocular scale hint) exist."""
        try:
            return self._finish_stages(started, lookahead)
        finally:
            if lookahead is not None and lookahead.follower is not None:  # (again) if an error ended this early
                self._submit_odometry(lookahead.follower)

    def _finish_stages(self, started: _Started, lookahead: _Lookahead | None) -> EgoResult:
        def follower() -> _Started | None:
            return None if lookahead is None else lookahead.poll(started)

        frame, image, depth = started.frame, started.image, started.depth
        height, width = image.shape[:2]
        timings: dict[str, float] = {}
        follower()
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
        following = follower()
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
            self._submit_follower(follower())
            timings["fit"] = 1e3 * (self._clock() - mark)

            mark = self._clock()
            hands = self._track_hands(fits, frame)
            timings["track"] = 1e3 * (self._clock() - mark)
        finally:
            self._submit_follower(follower())
            mark = self._clock()
            added = 0 if map_job is None else map_job.result()
        contacts = self._contacts(hands) if len(self.map) else []
        self._submit_follower(follower())
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

    def _submit_follower(self, following: _Started | None) -> None:
        """Odometry for the next frame, once this frame's hand mask and monocular scale hint exist (after its fit)."""
        if following is not None:
            self._submit_odometry(following)

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

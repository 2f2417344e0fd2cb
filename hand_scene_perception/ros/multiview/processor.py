"""The multiview pipeline between ROS messages: N cameras' images (and CameraInfo where drivers publish it) in,
fused hands, the rig calibration, estimated CameraInfo and TF out, no rclpy Node.

The node (ros/multiview/node.py) drives this class, and so can an offline tool over a bag: both get the same
messages. Each view is checked on its own; a view that cannot be used (bad encoding, CameraInfo that does not fit
its image, an invalid K) is left out of the frame and named in :attr:`MultiviewMessages.view_errors`, and the other
views go on. The hands are in the reference frame (the first camera's optical frame unless the node names another
frame for it); every output carries the fused images' stamp.

A calibration file given before the first frame is checked against the cameras' real image sizes when the first
frame arrives (the sizes are unknown before); a file for other cameras is refused there with the reason, and the
rig keeps calibrating itself.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from geometry_msgs.msg import TransformStamped
from sensor_msgs.msg import CameraInfo, Image

from hand_scene_msgs.msg import CameraCalibration, HandArray, MultiCameraCalibration

from ...backends.base import HandExpert
from ...core.hand_model import HandModel
from ...core.hand_model.side import HandSide
from ...core.rig_calibration import RigCalibrator, RigCamera, RigState, guessed_camera
from ...pipelines.multiview import CameraEstimate, MultiviewConfig, MultiviewPipeline, MultiviewResult, ViewFrame
from ..conversions import (
    NS_PER_S,
    InputError,
    camera_info_msg,
    check_image_size,
    future_stamp_warning,
    hand_array_msg,
    header_msg,
    image_rgb,
    pinhole_camera,
    pose_msg,
    time_ns,
    transform_msg,
)
from ..markers import HandMarkers, hand_marker_array

# A camera name becomes a topic namespace (<name>/image) and, by default, a frame (<name>_optical_frame).
CAMERA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CAMERA_FRAME_SUFFIX = "_optical_frame"


# Sets without some camera before the rig starts without it (a camera that never sends must not block the others).
START_WAIT_SETS = 30


class RigNotStartedError(InputError):
    """The rig waits for one image from every camera (the pipeline learns each camera's image size then), for at
    most START_WAIT_SETS sets; a camera still silent then joins the rig with its first image."""


class CalibrationFileError(ValueError):
    """A calibration file that does not fit this rig (other cameras or image sizes) or cannot be read."""


@dataclass
class MultiviewMessages:
    """Everything one fused frame produced, as messages ready to publish (all stamped with the frame's stamp).

    calibration: the rig calibration message when it changed (cameras calibrated, adjusted, dropped or loaded),
    else None. view_errors: why a view was left out of this frame. calibration_file_error: why a calibration
    file given before the first frame was refused (only on the first frame)."""

    hands: HandArray
    markers: HandMarkers
    calibration: MultiCameraCalibration | None
    camera_infos: dict[str, CameraInfo]
    transforms: list[TransformStamped]
    result: MultiviewResult
    warnings: list[str]
    view_errors: list[str]
    calibration_file_error: str | None = None


def default_camera_frames(camera_names: Sequence[str]) -> list[str]:
    """``<name>_optical_frame`` per camera (REP 103 optical frames)."""
    return [f"{name}{CAMERA_FRAME_SUFFIX}" for name in camera_names]


def check_rig_names(camera_names: Sequence[str], camera_frames: Sequence[str]) -> None:
    """ValueError naming the problem when cameras or frames are missing, repeated or not valid names."""
    names = list(camera_names)
    if not names:
        raise ValueError("cameras must name at least one camera")
    bad = [name for name in names if not CAMERA_NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"camera names {bad} are not valid ROS name tokens (letters, digits, '_', no leading digit)")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"camera names must be unique; repeated: {repeated}")
    frames = list(camera_frames)
    if len(frames) != len(names):
        raise ValueError(f"camera_frames has {len(frames)} entries for {len(names)} cameras")
    if any(not frame or frame.startswith("/") for frame in frames):
        raise ValueError(f"camera_frames must be non-empty TF frame ids without a leading '/', got {frames}")
    repeated = sorted({frame for frame in frames if frames.count(frame) > 1})
    if repeated:
        raise ValueError(f"camera frames must be unique; repeated: {repeated}")


class MultiviewMessageProcessor:
    """A rig of named cameras with ROS messages at both ends (see the module notes)."""

    def __init__(
        self,
        camera_names: Sequence[str],
        config: MultiviewConfig,
        *,
        camera_frames: Sequence[str] | None = None,
        reference_frame: str = "",
        marker_lifetime_s: float = 0.5,
        detectors: Sequence[HandExpert] | None = None,
        model: HandModel | None = None,
    ) -> None:
        """``camera_frames`` default to ``<name>_optical_frame``; ``reference_frame`` (the hands' frame) to the
        first camera's. ``detectors`` (one per camera) replace the embedded MediaPipe experts (tests inject
        oracles)."""
        self.camera_names = list(camera_names)
        self.camera_frames = list(camera_frames) if camera_frames else default_camera_frames(self.camera_names)
        check_rig_names(self.camera_names, self.camera_frames)
        self._sets_waiting = 0
        self.reference_frame = reference_frame or self.camera_frames[0]
        if self.reference_frame.startswith("/"):
            raise ValueError(f"reference_frame must not start with '/', got {self.reference_frame!r}")
        if marker_lifetime_s < 0:
            raise ValueError(f"marker_lifetime_s must be >= 0, got {marker_lifetime_s}")
        self.marker_lifetime_ns = int(marker_lifetime_s * NS_PER_S)
        self.pipeline = MultiviewPipeline(self.camera_names, config, detectors=detectors, model=model)
        self.faces = {side: self.pipeline.model.faces(side) for side in (HandSide.LEFT, HandSide.RIGHT)}
        self.last_stamp_ns: int | None = None
        self._pending_file: Path | None = None
        self._published: tuple | None = None  # what the last calibration message said (state, per-camera flags)

    def close(self) -> None:
        """Stop the pipeline's threads and release the detectors."""
        self.pipeline.close()

    def __enter__(self) -> MultiviewMessageProcessor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def started(self) -> bool:
        """Whether the rig has had its first frame (image sizes known, calibration running)."""
        return self.pipeline.calibrator is not None

    @property
    def state(self) -> RigState:
        """The rig calibration state (UNCALIBRATED before the first frame)."""
        calibrator = self.pipeline.calibrator
        return RigState.UNCALIBRATED if calibrator is None else calibrator.state

    # ------------------------------------------------------------------ per frame

    def decode(self, index: int, image: Image, info: CameraInfo | None) -> ViewFrame:
        """One camera's image (and CameraInfo, when one was received) as a ViewFrame; InputError when unusable."""
        camera = None
        if info is not None:
            camera = pinhole_camera(info)
            check_image_size(image, camera, f"{self.camera_names[index]} image")
        return ViewFrame(image_rgb(image), time_ns(image.header.stamp), camera)

    def process(
        self,
        images: Sequence[Image | None],
        infos: Sequence[CameraInfo | None],
        markers: bool = True,
        now_ns: int | None = None,
    ) -> MultiviewMessages:
        """Fuse one synchronised set (one entry per camera, None for a camera without an image this time).

        InputError when no view is usable or, before the rig started, when a camera has no image yet
        (:class:`RigNotStartedError`); ``markers=False`` leaves the hand markers out (they cost Python time per
        vertex: the node builds them only while hand_markers has subscribers); ``now_ns`` (the node clock) lets
        it warn about image stamps from another clock.
        """
        if len(images) != len(self.camera_names) or len(infos) != len(self.camera_names):
            raise ValueError(f"expected {len(self.camera_names)} images and infos ({self.camera_names})")
        views: list[ViewFrame | None] = []
        view_errors: list[str] = []
        for index, (image, info) in enumerate(zip(images, infos, strict=True)):
            if image is None:
                views.append(None)
                continue
            try:
                views.append(self.decode(index, image, info))
            except InputError as error:
                view_errors.append(f"camera {self.camera_names[index]!r} left out: {error}")
                views.append(None)
        if all(view is None for view in views):
            raise InputError("; ".join(view_errors) or "no camera has an image in this set")
        missing = [name for name, view in zip(self.camera_names, views, strict=True) if view is None]
        if not self.started and missing and self._sets_waiting < START_WAIT_SETS:
            self._sets_waiting += 1
            raise RigNotStartedError(
                f"waiting for an image from {missing}: the rig starts with one image from every camera, or without "
                f"them after {START_WAIT_SETS} sets ({self._sets_waiting} so far)"
                + ("" if not view_errors else " (" + "; ".join(view_errors) + ")")
            )
        file_error = self._apply_pending_file(views) if not self.started else None
        try:
            result = self.pipeline.process(views)
        except ValueError as error:
            raise InputError(str(error)) from None
        out = self._messages(result, view_errors, file_error, markers)
        future = future_stamp_warning(result.stamp_ns, now_ns)
        if future is not None:
            out.warnings.append(future)
        return out

    def _messages(
        self, result: MultiviewResult, view_errors: list[str], file_error: str | None, markers: bool
    ) -> MultiviewMessages:
        stamp = result.stamp_ns
        self.last_stamp_ns = stamp
        states = [dataclasses.replace(hand.state, image_frame_id=self._frame_of(hand.state.image_frame_id))
                  for hand in result.hands]  # fmt: skip
        hand_markers = HandMarkers()
        if markers:
            hand_markers = hand_marker_array([(state.track_id, state) for state in states], self.faces,
                                             self.reference_frame, stamp, self.marker_lifetime_ns)  # fmt: skip
        summary = self._calibration_summary(result.cameras, result.state)
        calibration = None
        if result.calibration_changed or summary != self._published:
            calibration = self.calibration_msg(stamp)
        return MultiviewMessages(
            hands=hand_array_msg(states, self.reference_frame, stamp),
            markers=hand_markers,
            calibration=calibration,
            camera_infos={
                estimate.name: camera_info_msg(estimate.camera, frame, stamp)
                for estimate, frame in zip(result.cameras, self.camera_frames, strict=True)
            },
            transforms=self.transforms(stamp, result.cameras),
            result=result,
            warnings=list(result.warnings),
            view_errors=view_errors,
            calibration_file_error=file_error,
        )

    def _frame_of(self, camera_name: str) -> str:
        """The optical frame of a camera named in a hand state ('' stays '': no camera's landmarks)."""
        if camera_name in self.camera_names:
            return self.camera_frames[self.camera_names.index(camera_name)]
        return camera_name

    # ------------------------------------------------------------------ calibration outputs

    @staticmethod
    def _calibration_summary(cameras: list[CameraEstimate], state: RigState) -> tuple:
        return (state, tuple((c.T_ref_cam is not None, c.converged, c.focal_known) for c in cameras))

    def calibration_msg(self, stamp_ns: int) -> MultiCameraCalibration | None:
        """hand_scene_msgs/MultiCameraCalibration of the current rig (None before the first frame): per camera its
        frame, intrinsics as CameraInfo, pose in the reference frame (identity while uncalibrated, quality 0),
        RMS reprojection error (NaN while unknown), observations, quality and convergence."""
        cameras = self.pipeline.camera_estimates()
        if not cameras:
            return None
        self._published = self._calibration_summary(cameras, self.state)
        entries = []
        for estimate, frame in zip(cameras, self.camera_frames, strict=True):
            pose = estimate.T_ref_cam if estimate.T_ref_cam is not None else np.eye(4)
            entries.append(
                CameraCalibration(
                    frame_id=frame,
                    camera_info=camera_info_msg(estimate.camera, frame, stamp_ns),
                    pose_in_reference=pose_msg(pose),
                    reprojection_error_px=float(estimate.reprojection_error_px),
                    observations=int(estimate.observations),
                    quality=float(estimate.quality),
                    converged=bool(estimate.converged),
                )
            )
        return MultiCameraCalibration(header=header_msg(self.reference_frame, stamp_ns), state=int(self.state),
                                      cameras=entries)  # fmt: skip

    def transforms(self, stamp_ns: int, cameras: list[CameraEstimate]) -> list[TransformStamped]:
        """TF reference frame → each calibrated camera's optical frame (none for a frame that is the reference)."""
        return [
            transform_msg(estimate.T_ref_cam, self.reference_frame, frame, stamp_ns)
            for estimate, frame in zip(cameras, self.camera_frames, strict=True)
            if estimate.T_ref_cam is not None and frame != self.reference_frame
        ]

    # ------------------------------------------------------------------ persistence

    def save_calibration(self, path: str | Path) -> Path:
        """Write the rig calibration YAML atomically (RuntimeError before the first frame: nothing to save)."""
        return self.pipeline.save_calibration(path)

    def load_calibration(self, path: str | Path) -> bool:
        """Use a saved calibration: at once when the rig has started (True), else checked and applied with the
        first frame (False). FileNotFoundError for a missing file; CalibrationFileError when it does not fit."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"calibration file not found: {path}")
        if not self.started:
            self._pending_file = path
            return False
        try:
            self.pipeline.load_calibration(path)
        except (ValueError, KeyError, TypeError, yaml.YAMLError) as error:
            raise CalibrationFileError(f"calibration file {path} refused: {error}") from None
        self._published = None  # the next frame publishes the loaded calibration
        return True

    def reset_calibration(self) -> None:
        """Forget the calibration (and a file still waiting for the first frame): self-calibrate from scratch."""
        self._pending_file = None
        self.pipeline.reset_calibration()
        self._published = None

    def _apply_pending_file(self, views: list[ViewFrame | None]) -> str | None:
        """Check the file waiting for the first frame against this rig's cameras as the pipeline will build them
        (names, reference, image sizes; a throwaway calibrator reads it), hand it on when it fits; else the
        reason, and the rig calibrates itself."""
        path, self._pending_file = self._pending_file, None
        if path is None:
            return None
        hfov = self.pipeline.config.calibration.default_hfov_deg
        present = next(view for view in views if view is not None)
        cameras = []
        for name, view in zip(self.camera_names, views, strict=True):
            if view is None:  # not seen yet: the file gives its size and intrinsics (as in the pipeline)
                height, width = present.image_rgb.shape[:2]
                cameras.append(RigCamera(name, guessed_camera(width, height, hfov), False, seen=False))
                continue
            height, width = view.image_rgb.shape[:2]
            camera = view.camera if view.camera is not None else guessed_camera(width, height, hfov)
            cameras.append(RigCamera(name, camera, view.camera is not None))
        try:
            RigCalibrator(cameras, self.pipeline.config.calibration).load(path)
        except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as error:
            return f"calibration file {path} refused, self-calibrating instead: {error}"
        self.pipeline.load_calibration(path)
        return None

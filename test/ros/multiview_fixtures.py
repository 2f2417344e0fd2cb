"""A synthetic camera rig for the multiview node tests: messages per camera, oracle detectors keyed by stamp,
and a calibration file written from the ground-truth rig (so the node fuses from the first frame).

Views can be published at a fraction of the render size (``scales``): that camera then has another resolution
than the others, and its oracle reports landmarks in the smaller image, as a detector on it would.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

from hand_scene_perception.backends.base import HandDetection
from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.core.rig_calibration import RigCalibrator, RigCamera, RigState
from hand_scene_perception.core.transforms import inverse_matrices
from hand_scene_perception.ros.conversions import NS_PER_S, camera_info_msg, image_msg
from hand_scene_perception.ros.multiview.processor import default_camera_frames
from hand_scene_perception.synth.multiview import MultiViewFrame, MultiViewSequence
from hand_scene_perception.synth.oracle import oracle_view_detections

# Small frames keep the tests fast on a 2-core machine; the geometry is the same as at 640x480.
WIDTH, HEIGHT = 320, 240
STAMP_OFFSET_NS = 1_000_000_000
# An oracle answers for the frame nearest to the stamp it is asked about, within this gap (stamp jitter tests).
ORACLE_MATCH_NS = 10_000_000


@dataclass
class Rig:
    """A rendered (or only posed) multi-view sequence and how each camera publishes it."""

    sequence: MultiViewSequence
    frames: list[MultiViewFrame]
    scales: tuple[int, ...]  # per camera: its images are the render subsampled by this factor

    @property
    def names(self) -> list[str]:
        return [view.name for view in self.sequence.views]

    @property
    def frames_ids(self) -> list[str]:
        return default_camera_frames(self.names)

    def camera(self, view: int) -> PinholeCamera:
        """True intrinsics of a camera at its published size."""
        factor = 1.0 / self.scales[view]
        return self.sequence.views[view].camera.scaled(factor, factor)

    def stamp(self, frame: MultiViewFrame) -> int:
        """The stamp every camera publishes a frame with (never 0, which ROS tools treat as unset)."""
        return STAMP_OFFSET_NS + round(frame.stamp * NS_PER_S)

    def image(self, frame: MultiViewFrame, view: int) -> np.ndarray:
        """A camera's RGB image of the frame at its published size (mid grey when the rig is not rendered)."""
        camera = self.camera(view)
        rendered = frame.images[view]
        if rendered is None:
            return np.full((camera.height, camera.width, 3), 128, np.uint8)
        step = self.scales[view]
        return np.ascontiguousarray(rendered[::step, ::step])

    def messages(
        self, frame: MultiViewFrame, view: int, stamp_ns: int | None = None, encoding: str = "rgb8"
    ) -> tuple[Image, CameraInfo]:
        """Image and CameraInfo of one camera for one frame, in the camera's default optical frame."""
        stamp = self.stamp(frame) if stamp_ns is None else stamp_ns
        frame_id = self.frames_ids[view]
        return (image_msg(self.image(frame, view), frame_id, stamp, encoding),
                camera_info_msg(self.camera(view), frame_id, stamp))  # fmt: skip

    def T_ref_cam(self, view: int) -> np.ndarray:
        """Ground-truth pose of a camera's optical frame in the first camera's."""
        views = self.sequence.views
        return inverse_matrices(views[0].T_world_camera) @ views[view].T_world_camera

    def joints_ref(self, frame: MultiViewFrame, hand: int = 0) -> np.ndarray:
        """Ground-truth joints (21, 3) of a hand in the first camera's optical frame."""
        return frame.hands[0][hand].joints_cam

    def save_truth_calibration(self, path: Path, names: list[str] | None = None) -> Path:
        """A converged calibration file of the true rig (``names`` relabels the cameras: a file for another rig)."""
        cameras = [RigCamera(name, self.camera(k), True) for k, name in enumerate(names or self.names)]
        calibrator = RigCalibrator(cameras)
        for k, camera in enumerate(cameras):
            camera.T_ref_cam, camera.converged, camera.observations = self.T_ref_cam(k), True, 100
            camera.reprojection_error_px = 0.5
        calibrator.state = RigState.CONVERGED
        return calibrator.save(path)

    def detectors(self, noise_px: float = 0.5) -> list[ViewOracle]:
        return [ViewOracle(self, view, noise_px) for view in range(len(self.names))]


class ViewOracle:
    """Ground-truth landmarks of one camera for the frame nearest the given stamp (HandDetector protocol)."""

    metric_size_sigma = 0.0  # ground-truth joints: their metric size is exact

    def __init__(self, rig: Rig, view: int, noise_px: float, seed: int = 0) -> None:
        self.rig, self.view, self.noise_px = rig, view, noise_px
        self._stamps = [rig.stamp(frame) for frame in rig.frames]
        self._rng = np.random.default_rng(seed + view)
        self.calls = 0

    def detect(self, image_rgb: np.ndarray, timestamp_ns: int | None = None) -> list[HandDetection]:
        """Landmarks of the frame stamped nearest ``timestamp_ns`` (KeyError when none is within 10 ms)."""
        self.calls += 1
        position = bisect.bisect_left(self._stamps, timestamp_ns)
        nearby = [i for i in (position - 1, position) if 0 <= i < len(self._stamps)]
        index = min(nearby, key=lambda i: abs(self._stamps[i] - timestamp_ns))
        if abs(self._stamps[index] - timestamp_ns) > ORACLE_MATCH_NS:
            raise KeyError(f"no frame near stamp {timestamp_ns}")
        detections = oracle_view_detections(self.rig.frames[index], self.view, self.noise_px, self._rng)
        factor = 1.0 / self.rig.scales[self.view]
        if factor == 1.0:
            return detections
        return [dataclasses.replace(d, landmarks_px=factor * (d.landmarks_px + 0.5) - 0.5) for d in detections]


def make_rig(
    num_views: int = 3, count: int = 6, seed: int = 3, render: bool = True, scales: tuple[int, ...] | None = None
) -> Rig:
    """``count`` frames of a seeded rig of ``num_views`` cameras at the test resolution."""
    sequence = MultiViewSequence(seed, num_views=num_views, num_hands=1, width=WIDTH, height=HEIGHT)
    frames = list(sequence.frames(count, render=render))
    return Rig(sequence, frames, scales or (1,) * num_views)

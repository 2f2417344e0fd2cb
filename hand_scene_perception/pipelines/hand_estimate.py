"""One hand in one frame: a detection placed metrically and fitted with the hand model.

The one per-frame estimate shared by the ego pipeline (``hand-scene run``, the node) and ``hand-scene detect``,
so that a single image and the same image inside a video give the same hand (apart from the video's warm start
and temporal filtering).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..backends.base import HandDetection, HandExpert
from ..backends.registry import check_backend
from ..core.camera import PinholeCamera
from ..core.fitting import PALM_JOINTS, FitResult, HandFitter, retarget_bone_lengths
from ..core.hand_model import NUM_JOINTS, HandModel, create_hand_model
from ..core.placement import lift_joints_to_depth, place_hand

# Such a detector's bone lengths are off but its bone directions are good. On a real video with 3D ground truth
# (583 frames, Ge et al. 2019's real-world set; `hand-scene eval real`) MediaPipe's metacarpals are 17-30 % long and
# its proximal phalanges 20-30 % short, while its own skeleton has the best PA-MPJPE (11.1 mm) of anything built
# from it then: fitting the average hand to its 2D landmarks with free finger depths (the earlier fit, tuned on
# renders) bent the fingers along the viewing ray (PA 17.5, C 62 mm). So the fit's targets are the detector's
# skeleton with its bone directions kept and the average hand's bone lengths (core/fitting.py
# retarget_bone_lengths), placed by the fused size against the 2D landmarks; the fit keeps the average shape.
# RAY_SIGMA_M: those targets' noise along the viewing ray for the digits (the palm joints use the fitter's
# 3D noise). Real video: 0.01 -> 0.005 -> 0.002 took PA-MPJPE 12.1 -> 11.4 -> 11.0 mm (per image), C 29 -> 27 mm.
RAY_SIGMA_M = 0.002
# LANDMARK_NOISE: the 2D landmarks' noise as a fraction of the hand's image size (wrist to middle knuckle): real
# landmark errors grow with the hand's size in the image (real video: 5-10 % of that length per joint, the wrist
# 18 %). Real video: a fixed 2 px -> 0.03 -> 0.05 -> 0.08 of it gave PA 11.0 -> 10.8 -> 11.1 -> 11.6 mm (per image).
LANDMARK_NOISE = 0.03
# With depth, the wrist, knuckles and PIPs are lifted onto the depth image (core/placement.py
# lift_joints_to_depth), whose along-ray noise is LIFTED_SIGMA_M (a sensor's depth; measured on synthetic RGB-D
# grasps, C-MPJPE 23.8 -> 14.2 mm; no real RGB-D set with 3D labels here shows the hand well enough to re-measure
# it: FPHAB's hand is hidden behind the object in 82 of 84 frames).
LIFTED_SIGMA_M = 0.003
# The placement's 6-DoF refinement only starts the fit, which refines the palm's pose again: on real video 8 steps
# instead of up to 30 left every error within 0.2 mm and took the per-hand estimate from 7.6 to 6.4 ms CPU.
PLACEMENT_ITERATIONS = 8
_ROOT_JOINTS = (*PALM_JOINTS, 1)  # move rigidly with the palm: their depths set the hand's placement


def landmark_noise_px(landmarks_px: np.ndarray) -> float:
    """LANDMARK_NOISE times this hand's image size (at least 1 px)."""
    size = float(np.linalg.norm(landmarks_px[9] - landmarks_px[0]))
    return max(LANDMARK_NOISE * size, 1.0) if np.isfinite(size) else 1.0


@dataclass
class HandStageConfig:
    """The hand stage's settings, shared by the ego and multiview pipelines (and so by both nodes).

    backend: the hand expert (backends/registry.py BACKEND_NAMES). detector_size_sigma: relative uncertainty of
    the expert's metric hand size (core/placement.py, hand size); None: the expert's own ``metric_size_sigma``;
    0 trusts its size.
    """

    backend: str = "embedded"
    max_hands: int = 2
    hand_model: str = "open"
    mano_dir: str | None = None
    detector_size_sigma: float | None = None

    def __post_init__(self) -> None:
        """Reject values that would make the hand stage misbehave silently."""
        self.backend = check_backend(self.backend)
        if self.max_hands < 1:
            raise ValueError(f"max_hands must be >= 1, got {self.max_hands}")
        if self.detector_size_sigma is not None and not self.detector_size_sigma >= 0:
            raise ValueError(f"detector_size_sigma must be >= 0, got {self.detector_size_sigma}")

    def size_sigma(self, expert: HandExpert) -> float:
        """The metric-size uncertainty placement uses for ``expert``'s hands."""
        if self.detector_size_sigma is not None:
            return float(self.detector_size_sigma)
        return float(expert.metric_size_sigma)


class HandEstimator:
    """Places and fits one detection (see the module notes); holds no per-sequence state."""

    def __init__(
        self,
        model: HandModel | str = "open",
        mano_dir: str | None = None,
        *,
        size_sigma: float,
        temporal_sigma_rad: float = 0.07,
        lift_joints: bool = True,
    ) -> None:
        """size_sigma: the detector's relative metric-size uncertainty (0: exact, then its shape and finger depths
        are trusted too); lift_joints: with depth, move the wrist, knuckles and PIPs onto the depth image."""
        self.model = create_hand_model(model, mano_dir=mano_dir) if isinstance(model, str) else model
        self.size_sigma = float(size_sigma)
        self.trusted = self.size_sigma == 0
        self.lift = lift_joints and not self.trusted
        self.fitter = HandFitter(self.model, fit_shape=self.trusted, temporal_sigma_rad=temporal_sigma_rad)
        self._ray_sigma = np.full(NUM_JOINTS, self.fitter.sigma_ray_m if self.trusted else RAY_SIGMA_M)
        self._ray_sigma[list(_ROOT_JOINTS)] = self.fitter.sigma_ray_m

    def estimate(
        self,
        detection: HandDetection,
        camera: PinholeCamera,
        depth_m: np.ndarray | None = None,
        previous: Callable[[np.ndarray], FitResult | None] | None = None,
    ) -> FitResult:
        """The hand in the camera frame. ``previous`` looks up the same hand's last fit from where this one's
        wrist was placed (camera frame); that fit warm-starts and regularises this one.

        Raises ValueError when the landmarks cannot be placed (inconsistent detection)."""
        local = detection.world_landmarks_m
        if not self.trusted:
            local = retarget_bone_lengths(local, self.fitter.rest_joints(detection.side))
        placement = place_hand(camera, detection.landmarks_px, local, detection.side, depth_m=depth_m,
                               size_sigma=self.size_sigma, max_iterations=PLACEMENT_ITERATIONS)
        last = previous(placement.joints_cam_m[0]) if previous is not None else None
        targets, ray_sigma = placement.joints_cam_m, self._ray_sigma
        if depth_m is not None and self.lift:
            targets, lifted = lift_joints_to_depth(camera, detection.landmarks_px, targets, depth_m, detection.side)
            ray_sigma = np.where(lifted, LIFTED_SIGMA_M, ray_sigma)
        sigma_2d = None if self.trusted else landmark_noise_px(detection.landmarks_px)
        return self.fitter.fit(targets, detection.side, detection.landmarks_px, camera, last,
                               with_mesh=False,  # the pipeline re-poses the mesh after filtering
                               ray_sigma_m=ray_sigma, sigma_2d_px=sigma_2d)

"""Oracle-landmark mode: detector-like observations made from a synthetic frame's ground truth.

Why: the geometry stages (fitting, metric placement, tracking, odometry masking) must be measurable
independently of the embedded detector's misses and errors. Each visible hand becomes a
:class:`~hand_scene_perception.core.detections.HandDetection` exactly as a detector would report it:
anatomical side, 2D landmarks with Gaussian pixel noise, and hand-centred metric joints (origin at the
joints' centroid, camera-frame axes, like MediaPipe's world landmarks) with optional 3D Gaussian noise. The same
holds per camera of a multi-view frame (:func:`oracle_view_detections`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..backends.base import HandDetection
from .multiview import MultiViewFrame
from .sequence import HandTruth, SynthFrame


def oracle_landmarks(
    frame: SynthFrame, noise_px: float, rng: np.random.Generator, noise_m: float = 0.0
) -> list[HandDetection]:
    """Noisy observations of the frame's visible hands, in the frame's hand order, with score 1 (see
    :func:`oracle_detections`)."""
    return oracle_detections(frame.hands, noise_px, rng, noise_m)


def oracle_view_detections(
    frame: MultiViewFrame, view_index: int, noise_px: float, rng: np.random.Generator, noise_m: float = 0.0
) -> list[HandDetection]:
    """What a detector would report in one camera of a multi-view frame: that view's visible hands (joints
    hand-centred in that camera's axes), in the sequence's hand order (see :func:`oracle_detections`)."""
    if not 0 <= view_index < len(frame.hands):
        raise ValueError(f"view_index must be in 0..{len(frame.hands) - 1}, got {view_index}")
    return oracle_detections(frame.hands[view_index], noise_px, rng, noise_m)


def oracle_detections(
    hands: Iterable[HandTruth], noise_px: float, rng: np.random.Generator, noise_m: float = 0.0
) -> list[HandDetection]:
    """Noisy observations of the visible ``hands`` (as one camera sees them), in their order, with score 1.

    ``noise_px``: standard deviation of the per-coordinate pixel noise; ``noise_m``: standard deviation of
    the per-coordinate metric noise on the hand-centred joints. Hands below the generator's visibility
    threshold are left out, as a detector would miss them."""
    if noise_px < 0 or noise_m < 0:
        raise ValueError(f"noise must be non-negative, got noise_px={noise_px}, noise_m={noise_m}")
    detections = []
    for hand in hands:
        if not hand.visible:
            continue
        centred = hand.joints_cam - hand.joints_cam.mean(axis=0)
        detections.append(
            HandDetection(
                side=hand.side,
                score=1.0,
                landmarks_px=hand.landmarks_px + rng.normal(0.0, noise_px, hand.landmarks_px.shape),
                world_landmarks_m=centred + rng.normal(0.0, noise_m, centred.shape),
            )
        )
    return detections


class OracleDetector:
    """Ground-truth landmarks with pixel noise, behind the detector interface (geometry without detector error)."""

    metric_size_sigma = 0.0  # its hand-centred joints have the true metric size (EgoConfig.detector_size_sigma)

    def __init__(self, noise_px: float, seed: int = 0) -> None:
        self.noise_px = float(noise_px)
        self._rng = np.random.default_rng(seed)
        self.frame: SynthFrame | None = None

    def detect(self, image_rgb: np.ndarray, timestamp_ns: int | None = None) -> list[HandDetection]:
        """Noisy landmarks of the frame set in :attr:`frame` (the image itself is not looked at)."""
        if self.frame is None:
            raise RuntimeError("OracleDetector.frame must be set to the synthetic frame before detect()")
        return oracle_landmarks(self.frame, self.noise_px, self._rng)

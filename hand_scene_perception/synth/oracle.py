"""Oracle-landmark mode: detector-like observations made from a synthetic frame's ground truth.

Why: the geometry stages (fitting, metric placement, tracking, odometry masking) must be measurable
independently of the embedded detector's misses and errors. Each visible hand becomes a
:class:`~hand_scene_perception.core.detections.HandDetection` exactly as a detector would report it:
anatomical side, 2D landmarks with Gaussian pixel noise, and hand-centred metric joints (origin at the
joints' centroid, camera-frame axes, like MediaPipe's world landmarks) with optional 3D Gaussian noise.
"""

from __future__ import annotations

import numpy as np

from ..core.detections import HandDetection
from .sequence import SynthFrame


def oracle_landmarks(
    frame: SynthFrame, noise_px: float, rng: np.random.Generator, noise_m: float = 0.0
) -> list[HandDetection]:
    """Noisy observations of the frame's visible hands, in the frame's hand order, with score 1.

    ``noise_px``: standard deviation of the per-coordinate pixel noise; ``noise_m``: standard deviation of
    the per-coordinate metric noise on the hand-centred joints. Hands below the generator's visibility
    threshold are left out, as a detector would miss them."""
    if noise_px < 0 or noise_m < 0:
        raise ValueError(f"noise must be non-negative, got noise_px={noise_px}, noise_m={noise_m}")
    detections = []
    for hand in frame.hands:
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

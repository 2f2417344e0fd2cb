"""The seam every hand expert plugs into: what it reports for one hand (:class:`HandDetection`) and what the
pipelines, nodes and CLI call on it (:class:`HandExpert`).

An expert turns one RGB image into hands. The embedded one (MediaPipe, ``backends/mediapipe_hands.py``) reports 2D
landmarks, a side and hand-centred metric joints whose size is only roughly right; a learned expert (a network
with a parametric hand model) can also report that model's pose, shape and vertices and the crop features its
backbone computed, which later stages (mesh-guided Gaussians, scene fusion) reuse instead of recomputing. Each
expert declares how far its metric hand size can be trusted (``metric_size_sigma``): placement fuses that with
the average adult hand (core/placement.py, "hand size"), so a new expert needs no change downstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..core.hand_model import NUM_JOINTS, HandSide


@dataclass(frozen=True, eq=False)
class HandDetection:
    """One detected hand: the input every fitter, placer and tracker consumes.

    side: anatomical side of the hand in the unmirrored image (README, "Conventions").
    score: handedness confidence in [0, 1] as the detector reports it.
    landmarks_px: (21, 2) float64 pixels in product joint order; the centre of the top-left pixel is (0, 0).
    world_landmarks_m: (21, 3) float64 metres, hand-centred (origin near the hand's middle, not the camera),
        axes roughly aligned with the camera's optical frame (x right, y down, z forward).
    model_pose: optional (16, 3) axis-angle of a parametric hand model (root first), as a learned expert
        regresses it; model_shape: optional (10,) shape coefficients of that model.
    vertices_m: optional (V, 3) float64 hand-centred mesh vertices, same frame as ``world_landmarks_m``.
    crop_features: optional backbone features of the hand's crop (any shape), for stages that reuse them.
    """

    side: HandSide
    score: float
    landmarks_px: np.ndarray
    world_landmarks_m: np.ndarray
    model_pose: np.ndarray | None = None
    model_shape: np.ndarray | None = None
    vertices_m: np.ndarray | None = None
    crop_features: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", HandSide.parse(self.side))
        object.__setattr__(self, "score", float(self.score))
        for name, shape in (("landmarks_px", (NUM_JOINTS, 2)), ("world_landmarks_m", (NUM_JOINTS, 3)),
                            ("model_pose", (16, 3)), ("model_shape", (10,)), ("vertices_m", (-1, 3))):
            value = getattr(self, name)
            if value is None:
                continue
            array = np.asarray(value, dtype=np.float64)
            if array.ndim != len(shape) or any(want not in (-1, got)
                                               for want, got in zip(shape, array.shape, strict=True)):
                wanted = ", ".join("N" if want == -1 else str(want) for want in shape)
                raise ValueError(f"{name} must have shape ({wanted}), got {array.shape}")
            object.__setattr__(self, name, array)


class HandExpert(Protocol):
    """What the pipelines need from a hand expert (embedded MediaPipe, oracle landmarks, learned models).

    metric_size_sigma: relative uncertainty of the metric size of its ``world_landmarks_m`` (0: exact, then its
    shape and finger depths are trusted too; MediaPipe's is 0.3). An expert holding models or threads also has
    ``close()``, which the pipelines call when they close.
    """

    metric_size_sigma: float

    def detect(self, image_rgb: np.ndarray, timestamp_ns: int | None = None) -> list[HandDetection]:
        """Hands in one RGB image (H, W, 3) uint8; video experts need increasing ``timestamp_ns``."""
        ...

"""What a hand detector reports for one hand in one image, independent of the backend that produced it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hand_model import NUM_JOINTS, HandSide


@dataclass(frozen=True, eq=False)
class HandDetection:
    """One detected hand: the input every fitter, placer and tracker consumes.

    side: anatomical side of the hand in the unmirrored image (DESIGN.md §3).
    score: handedness confidence in [0, 1] as the detector reports it.
    landmarks_px: (21, 2) float64 pixels in product joint order; the centre of the top-left pixel is (0, 0).
    world_landmarks_m: (21, 3) float64 metres, hand-centred (origin near the hand's middle, not the camera),
        axes roughly aligned with the camera's optical frame (x right, y down, z forward).
    """

    side: HandSide
    score: float
    landmarks_px: np.ndarray
    world_landmarks_m: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", HandSide.parse(self.side))
        object.__setattr__(self, "score", float(self.score))
        for name, dims in (("landmarks_px", 2), ("world_landmarks_m", 3)):
            array = np.asarray(getattr(self, name), dtype=np.float64)
            if array.shape != (NUM_JOINTS, dims):
                raise ValueError(f"{name} must have shape ({NUM_JOINTS}, {dims}), got {array.shape}")
            object.__setattr__(self, name, array)

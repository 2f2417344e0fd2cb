"""Hand experts by name: the one list the pipelines, nodes, launch plan and CLI offer, built on demand.

Importing this module imports no backend (MediaPipe, torch): listing and validating names stays cheap, and a
backend's runtime is needed only when it is built.
"""

from __future__ import annotations

from typing import Literal

from .base import HandExpert

# embedded: MediaPipe's hand landmarker (bundled with its wheel, CPU), with a crop re-detection pass for tracked
# hands it loses in video mode (backends/crop_redetect.py).
BACKEND_NAMES: tuple[str, ...] = ("embedded",)


def check_backend(name: str) -> str:
    """The normalised backend name; ValueError naming the valid choices otherwise."""
    key = str(name).strip().lower()
    if key not in BACKEND_NAMES:
        raise ValueError(f"unknown hand backend {name!r}; choose one of: {', '.join(BACKEND_NAMES)}")
    return key


def create_hand_expert(name: str = "embedded", *, max_hands: int = 2,
                       mode: Literal["video", "image"] = "video", redetect: bool = True) -> HandExpert:
    """Build the named expert for ``max_hands`` hands. mode: "video" follows hands between frames (streams),
    "image" treats each call alone; redetect: in video mode, look again in a crop around a tracked hand the
    full frame lost."""
    check_backend(name)
    from .mediapipe_hands import MediaPipeHandDetector

    detector = MediaPipeHandDetector(max_hands=max_hands, mode=mode)
    if mode == "video" and redetect:
        from .crop_redetect import CropRedetectDetector

        return CropRedetectDetector(detector)
    return detector

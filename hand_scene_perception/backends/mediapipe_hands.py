"""The embedded hand expert: MediaPipe 0.10.21's bundled hand models through the Tasks API, fully offline.

The Tasks ``HandLandmarker`` needs a ``.task`` bundle that the wheel does not ship; the wheel does ship
the two models it holds, so :func:`ensure_hand_landmarker_bundle` zips them into one (ARCHITECTURE.md, Environment).
The Tasks API was chosen over the legacy ``mp.solutions.hands`` by measurement
(``tools/compare_mediapipe_apis.py``): it reproduces MediaPipe's own expected landmarks where the legacy
graph does not, at a similar speed.

Handedness: the Tasks API labels the anatomical side of a hand in an unmirrored image (checked on real
photos); the legacy API assumes a mirrored selfie view and reports the opposite label.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np

from ..core.files import atomic_write
from ..core.hand_model import HandSide
from .base import HandDetection

CACHE_ENV = "HAND_SCENE_CACHE_DIR"
# Bundle member name -> the wheel's file (relative to the mediapipe package folder).
_BUNDLE_MEMBERS: dict[str, tuple[str, ...]] = {
    "hand_detector.tflite": ("modules", "palm_detection", "palm_detection_full.tflite"),
    "hand_landmarks_detector.tflite": ("modules", "hand_landmark", "hand_landmark_full.tflite"),
}
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed member time: identical inputs give a byte-identical bundle
_NS_PER_MS = 1_000_000


class MediaPipeUnavailableError(RuntimeError):
    """MediaPipe 0.10.21 (or its bundled hand models) is not installed for this interpreter."""


def mediapipe_package_dir() -> Path:
    """Folder of the installed mediapipe package, found without importing it (importing is slow)."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise MediaPipeUnavailableError(
            "mediapipe is not installed: the embedded hand detector needs mediapipe==0.10.21 "
            "(the only release that ships the hand models; it has wheels for Python 3.9-3.12, none for 3.13)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def default_cache_dir() -> Path:
    """Where built bundles live: $HAND_SCENE_CACHE_DIR, else $XDG_CACHE_HOME or ~/.cache, /hand_scene_perception."""
    override = os.environ.get(CACHE_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "hand_scene_perception"


def ensure_hand_landmarker_bundle(cache_dir: str | Path | None = None) -> Path:
    """Path of a ``.task`` bundle zipped from the installed wheel's own tflite files, building it if needed.

    The file name carries a hash of the two models, so a changed wheel gets a fresh bundle and an
    unchanged one is reused. Writing goes to a temporary file renamed into place, so concurrent
    processes never see a half-written bundle.
    """
    package = mediapipe_package_dir()
    sources = {member: package.joinpath(*parts) for member, parts in _BUNDLE_MEMBERS.items()}
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise MediaPipeUnavailableError(
            f"the installed mediapipe has no bundled hand models ({', '.join(missing)} missing); "
            "only mediapipe==0.10.21 ships them"
        )
    contents = {member: path.read_bytes() for member, path in sources.items()}
    digest = hashlib.sha256()
    for member in sorted(contents):
        digest.update(member.encode())
        digest.update(hashlib.sha256(contents[member]).digest())
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = folder / f"hand_landmarker_full_{digest.hexdigest()[:16]}.task"
    if target.is_file():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as stream, zipfile.ZipFile(stream, "w", zipfile.ZIP_STORED) as bundle:
        for member in sorted(contents):
            bundle.writestr(zipfile.ZipInfo(member, date_time=_ZIP_DATE), contents[member])
    return target


def validate_rgb_image(image: np.ndarray) -> np.ndarray:
    """The image as a C-contiguous (H, W, 3) uint8 array, or a ValueError saying what is wrong with it."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB, got dtype {image.dtype} (convert at the edge)")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3) RGB, got {image.shape} (drop alpha, expand gray first)")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image is too small: {image.shape[1]}x{image.shape[0]}")
    return np.ascontiguousarray(image)


class MediaPipeHandDetector:
    """Up to ``max_hands`` hands per RGB image with 2D landmarks, metric hand-centred 3D landmarks and side.

    ``mode="video"`` tracks hands between frames (landmarks of the previous frame seed the next one
    instead of running palm detection every frame), which is faster and steadier on streams;
    ``mode="image"`` treats every call independently.

    Video timestamps: MediaPipe needs strictly increasing millisecond timestamps. A stamp that goes
    backwards (a replayed bag, a restarted camera) resets the tracking graph and continues; the very
    same stamp twice raises ValueError (the same frame fed twice is a caller bug); stamps less than
    1 ms apart are spaced 1 ms apart internally. ``timestamp_ns=None`` advances 1 ms past the last frame.
    """

    # Its metric hand size: per-frame palm size ±30 %, uncorrelated with the true size (synthetic sequences,
    # r = -0.1), so placement leans on the average hand (core/placement.py, hand size).
    metric_size_sigma = 0.3

    def __init__(
        self,
        max_hands: int = 2,
        mode: Literal["video", "image"] = "video",
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        cache_dir: str | Path | None = None,
    ) -> None:
        if mode not in ("video", "image"):
            raise ValueError(f"mode must be 'video' or 'image', got {mode!r}")
        if int(max_hands) != max_hands or max_hands < 1:
            raise ValueError(f"max_hands must be a positive integer, got {max_hands!r}")
        for name, value in (
            ("min_detection_confidence", min_detection_confidence),
            ("min_presence_confidence", min_presence_confidence),
            ("min_tracking_confidence", min_tracking_confidence),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.mode = mode
        self.max_hands = int(max_hands)
        self.bundle_path = ensure_hand_landmarker_bundle(cache_dir)
        self._confidences = (min_detection_confidence, min_presence_confidence, min_tracking_confidence)
        self._last_ns: int | None = None
        self._last_ms = -1
        self._landmarker = self._create_landmarker()

    def _create_landmarker(self):
        """A fresh Tasks HandLandmarker (video mode starts a new timestamp sequence)."""
        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python.vision import HandLandmarker, HandLandmarkerOptions, RunningMode

        detection, presence, tracking = self._confidences
        options = HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.bundle_path)),
            running_mode=RunningMode.VIDEO if self.mode == "video" else RunningMode.IMAGE,
            num_hands=self.max_hands,
            min_hand_detection_confidence=detection,
            min_hand_presence_confidence=presence,
            min_tracking_confidence=tracking,
        )
        return HandLandmarker.create_from_options(options)

    def _video_timestamp_ms(self, timestamp_ns: int | None) -> int:
        """Millisecond stamp for the graph, resetting it when time went backwards."""
        if timestamp_ns is None:
            self._last_ms += 1
            return self._last_ms
        timestamp_ns = int(timestamp_ns)
        if self._last_ns is not None and timestamp_ns == self._last_ns:
            raise ValueError(f"timestamp {timestamp_ns} ns repeats the previous frame's; video mode needs new frames")
        if self._last_ns is not None and timestamp_ns < self._last_ns:
            self._landmarker.close()
            self._landmarker = self._create_landmarker()
            self._last_ms = -1
        self._last_ns = timestamp_ns
        self._last_ms = max(self._last_ms + 1, timestamp_ns // _NS_PER_MS)
        return self._last_ms

    def detect(self, image_rgb: np.ndarray, timestamp_ns: int | None = None) -> list[HandDetection]:
        """Hands in one unmirrored RGB image (H, W, 3) uint8, most confident side label per hand."""
        import mediapipe as mp

        if self._landmarker is None:
            raise RuntimeError("detector is closed")
        image = validate_rgb_image(image_rgb)
        frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=image)
        if self.mode == "video":
            stamp_ms = self._video_timestamp_ms(timestamp_ns)  # may replace the landmarker: call it first
            result = self._landmarker.detect_for_video(frame, stamp_ms)
        else:
            result = self._landmarker.detect(frame)
        height, width = image.shape[:2]
        # normalised coordinates span the image edges; pixel centres sit at (i + 0.5) / size
        scale = np.array([width, height], dtype=np.float64)
        hands = []
        for landmarks, world, handedness in zip(
            result.hand_landmarks, result.hand_world_landmarks, result.handedness, strict=True
        ):
            best = max(handedness, key=lambda category: category.score)
            hands.append(
                HandDetection(
                    side=HandSide.parse(best.category_name),
                    score=best.score,
                    landmarks_px=np.array([(p.x, p.y) for p in landmarks]) * scale - 0.5,
                    world_landmarks_m=np.array([(p.x, p.y, p.z) for p in world]),
                )
            )
        return hands

    def close(self) -> None:
        """Release the MediaPipe graph (idempotent)."""
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> MediaPipeHandDetector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

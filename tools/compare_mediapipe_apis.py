"""Measure MediaPipe's Tasks HandLandmarker against the legacy ``mp.solutions.hands`` on real images and videos.

Why: the embedded hand expert had to pick one API by accuracy and speed (issue 3). This re-runs that
measurement on ``../shared/data/real_hands`` (see its PROVENANCE.md) and prints JSON:
landmark error against MediaPipe's own expected landmarks, detection rates per image folder, side
agreement between the APIs, side stability and time per frame in video/tracking mode.

Usage: python tools/compare_mediapipe_apis.py [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from hand_scene_perception.backends.mediapipe_hands import MediaPipeHandDetector

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real_hands"
IMAGE_SETS = (
    "mediapipe_gestures/call",
    "mediapipe_gestures/four",
    "mediapipe_gestures/rock",
    "mediapipe_gestures/none",
    "hamer_example_data",
    "egocentric_adl_frames",
)
VIDEOS = ("mediapipe_samples/hand_landmarker_test_video.mp4", "mediapipe_samples/gesture_recognizer_test_video.mp4")

# (image rgb, video timestamp in ms or None) -> list of (side label as the API reports it, (21, 2) normalised xy)
Detect = Callable[[np.ndarray, "int | None"], list[tuple[str, np.ndarray]]]


def load_rgb(path: Path) -> np.ndarray:
    """RGB uint8 image; an alpha channel is dropped, as MediaPipe's own image loader does for its test PNG."""
    return np.asarray(Image.open(path).convert("RGB"))


def tasks_detector(mode: str) -> tuple[Detect, Callable[[], None]]:
    """The product's backend (Tasks API), reporting normalised landmarks for comparison."""
    detector = MediaPipeHandDetector(max_hands=2, mode=mode)

    def detect(image: np.ndarray, stamp_ms: int | None) -> list[tuple[str, np.ndarray]]:
        size = np.array([image.shape[1], image.shape[0]], dtype=np.float64)
        stamp_ns = None if stamp_ms is None else stamp_ms * 1_000_000
        return [(hand.side.value, (hand.landmarks_px + 0.5) / size) for hand in detector.detect(image, stamp_ns)]

    return detect, detector.close


def legacy_detector(static: bool, complexity: int) -> tuple[Detect, Callable[[], None]]:
    """Legacy ``mp.solutions.hands``; its labels are reported as the API gives them (mirrored view)."""
    import mediapipe as mp

    hands = mp.solutions.hands.Hands(static_image_mode=static, max_num_hands=2, model_complexity=complexity)

    def detect(image: np.ndarray, stamp_ms: int | None) -> list[tuple[str, np.ndarray]]:
        result = hands.process(image)
        if not result.multi_hand_landmarks:
            return []
        return [
            (h.classification[0].label.lower(), np.array([(p.x, p.y) for p in lm.landmark]))
            for lm, h in zip(result.multi_hand_landmarks, result.multi_handedness, strict=True)
        ]

    return detect, hands.close


def video_frames(path: Path) -> Iterator[tuple[np.ndarray, int]]:
    """RGB frames with millisecond stamps from the container's frame rate."""
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    index = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), round(index * 1000.0 / fps)
        index += 1
    capture.release()


def timed(detect: Detect, image: np.ndarray, stamp_ms: int | None) -> tuple[list[tuple[str, np.ndarray]], float]:
    """Detections and wall time in milliseconds."""
    start = time.perf_counter()
    hands = detect(image, stamp_ms)
    return hands, 1000.0 * (time.perf_counter() - start)


def measure(name: str, make: Callable[[bool], tuple[Detect, Callable[[], None]]], data: Path) -> dict[str, object]:
    """All numbers for one API configuration; ``make(static)`` builds a detector."""
    report: dict[str, object] = {"api": name}
    detect, close = make(True)
    expected = json.loads((data / "mediapipe_samples/thumbs-up_expected_landmarks_ios_test.json").read_text())
    image = load_rgb(data / "mediapipe_samples" / expected["image"])
    hands, _ = timed(detect, image, None)
    size = np.array([image.shape[1], image.shape[0]])
    if hands:
        err = np.linalg.norm((hands[0][1] - np.asarray(expected["landmarks"])[:, :2]) * size, axis=1)
        norm_err = np.abs(hands[0][1] - np.asarray(expected["landmarks"])[:, :2]).max()
        report["thumbs_up"] = {
            "mean_px": round(float(err.mean()), 2),
            "max_px": round(float(err.max()), 2),
            "max_normalised": round(float(norm_err), 4),
            "side": hands[0][0],
        }
    else:
        report["thumbs_up"] = "not detected"
    sets, times, sides = {}, [], {}
    for folder in IMAGE_SETS:
        paths = sorted((data / folder).glob("*.jpg"))
        found = 0
        for path in paths:
            hands, ms = timed(detect, load_rgb(path), None)
            times.append(ms)
            found += bool(hands)
            sides[f"{folder}/{path.name}"] = sorted(side for side, _ in hands)
        sets[folder] = f"{found}/{len(paths)}"
    report["images_with_hands"] = sets
    report["static_ms_median"] = round(statistics.median(times), 1)
    close()
    videos = {}
    for video in VIDEOS:
        detect, close = make(False)
        frame_ms, labels, counts = [], [], []
        for frame, stamp in video_frames(data / video):
            hands, ms = timed(detect, frame, stamp)
            frame_ms.append(ms)
            counts.append(len(hands))
            labels.extend(side for side, _ in hands[:1])
        close()
        majority = Counter(labels).most_common(1)[0] if labels else ("none", 0)
        videos[video.split("/")[-1]] = {
            "frames": len(frame_ms),
            "frames_with_hands": sum(c > 0 for c in counts),
            "ms_median": round(statistics.median(frame_ms), 1),
            "ms_mean": round(statistics.mean(frame_ms), 1),
            "first_hand_side_majority": f"{majority[0]} {majority[1]}/{len(labels)}",
        }
    report["video"] = videos
    report["_sides"] = sides
    return report


def main() -> None:
    """Run every configuration and print one JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the real_hands folder")
    args = parser.parse_args()
    reports = [
        measure("tasks", lambda static: tasks_detector("image" if static else "video"), args.data),
        measure("legacy_c1", lambda static: legacy_detector(static, 1), args.data),
        measure("legacy_c0", lambda static: legacy_detector(static, 0), args.data),
    ]
    mirror = {"left": "right", "right": "left"}
    tasks_sides, legacy_sides = reports[0].pop("_sides"), reports[1].pop("_sides")
    reports[2].pop("_sides")
    both = [key for key in tasks_sides if tasks_sides[key] and len(tasks_sides[key]) == len(legacy_sides[key])]
    agree = sum(tasks_sides[key] == sorted(mirror[s] for s in legacy_sides[key]) for key in both)
    print(
        json.dumps(
            {"reports": reports, "tasks_side_equals_mirrored_legacy_side": f"{agree}/{len(both)}"},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

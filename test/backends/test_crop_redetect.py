"""The crop re-detection wrapper: real MediaPipe on a real hand pasted small into a large frame, and stubs for
the bookkeeping (mapping back to full-image pixels, duplicates, expiry)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from hand_scene_perception.backends.base import HandDetection
from hand_scene_perception.backends.crop_redetect import CropRedetectDetector, crop_window, landmark_box
from hand_scene_perception.backends.mediapipe_hands import MediaPipeHandDetector
from hand_scene_perception.core.hand_model import HandSide

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real_hands"
THUMBS_UP = DATA / "mediapipe_samples" / "hand_landmarker_thumbs-up.png"
WIDTH, HEIGHT = 1920, 1080
STEP_NS = 33_000_000


@pytest.fixture(scope="module")
def thumbs_up():
    """The real photo and its hand's landmarks as MediaPipe finds them at full size (1920x1280)."""
    with Image.open(THUMBS_UP) as image:
        rgb = np.asarray(image.convert("RGB"))
    with MediaPipeHandDetector(mode="image") as detector:
        (hand,) = detector.detect(rgb)
    return rgb, hand.landmarks_px


def _pasted(photo: np.ndarray, landmarks: np.ndarray, scale: float, centre=(1300, 600)):
    """The photo scaled by ``scale`` on a grey 1920x1080 canvas, the hand centred at ``centre``; the canvas and
    where the full-size landmarks land in it."""
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    box_centre, _ = landmark_box(landmarks)
    x0, y0 = np.round(np.asarray(centre) - box_centre * scale).astype(int)
    canvas = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + small.shape[1], WIDTH), min(y0 + small.shape[0], HEIGHT)
    canvas[cy0:cy1, cx0:cx1] = small[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return canvas, (landmarks + 0.5) * scale - 0.5 + np.array([x0, y0])


def test_lost_hand_that_comes_back_small_is_found_in_its_crop(thumbs_up):
    """Hand at 0.6 (found), hidden for a frame, back at 0.4 (232 px in 1920x1080): the full frame alone misses it
    (palm detection sees the frame at 192 px), the crop around its last box finds it where it is."""
    photo, reference = thumbs_up
    big, _ = _pasted(photo, reference, 0.6)
    small, expected = _pasted(photo, reference, 0.4)
    hidden = np.full_like(big, 128)
    frames = [big, hidden, small, small]
    with MediaPipeHandDetector(mode="video") as plain:
        assert [len(plain.detect(f, i * STEP_NS)) for i, f in enumerate(frames)] == [1, 0, 0, 0]
    with CropRedetectDetector(MediaPipeHandDetector(mode="video")) as detector:
        found = [detector.detect(f, i * STEP_NS) for i, f in enumerate(frames)]
        assert [len(hands) for hands in found] == [1, 0, 1, 1]
        assert detector.recovered == 2
    size = landmark_box(expected)[1]
    for hand in found[2] + found[3]:
        error = np.linalg.norm(hand.landmarks_px - expected, axis=1).mean()
        assert error < 0.05 * size  # measured 7.5 and 5.6 px on a 232 px hand (tracked there in video mode: 5.4)
        assert hand.side is HandSide.RIGHT
        assert np.abs(hand.world_landmarks_m.mean(axis=0)).max() < 0.05  # still hand-centred metres


@pytest.mark.parametrize("background", ["blank", "texture"])
def test_a_hand_that_is_gone_is_not_invented(thumbs_up, background):
    """The hand removed from the frame: the crop pass runs on the place it was and returns nothing."""
    photo, reference = thumbs_up
    big, _ = _pasted(photo, reference, 0.6)
    rng = np.random.default_rng(0)
    if background == "blank":
        empty = np.full_like(big, 128)
    else:  # the hand's region painted over with a coarse colour texture
        empty = big.copy()
        noise = cv2.resize(rng.integers(0, 256, (HEIGHT // 16, WIDTH // 16, 3), dtype=np.uint8), (WIDTH, HEIGHT),
                           interpolation=cv2.INTER_NEAREST)
        empty[300:900, 1000:1600] = noise[300:900, 1000:1600]
    with CropRedetectDetector(MediaPipeHandDetector(mode="video"), max_missing_frames=3) as detector:
        assert len(detector.detect(big, 0)) == 1
        assert [len(detector.detect(empty, (i + 1) * STEP_NS)) for i in range(4)] == [0, 0, 0, 0]
        assert detector.recovered == 0
        assert detector._tracks == []  # expired after max_missing_frames


def _hand(landmarks: np.ndarray, side: HandSide = HandSide.RIGHT) -> HandDetection:
    world = np.linspace(-0.05, 0.05, 63).reshape(21, 3)
    return HandDetection(side, 0.9, landmarks, world)


def _shape(centre, size: float) -> np.ndarray:
    """21 landmarks spread over a size x size box around centre (a stand-in hand)."""
    grid = np.stack(np.meshgrid(np.linspace(-0.5, 0.5, 7), np.linspace(-0.5, 0.5, 3)), -1).reshape(21, 2)
    return np.asarray(centre, float) + grid * size


class _Scripted:
    """A detector that returns what it is told, and records the images it got."""

    def __init__(self, outputs):
        self.outputs = list(outputs)
        self.images: list[np.ndarray] = []
        self.closed = False
        self.max_hands = 2

    def detect(self, image_rgb, timestamp_ns=None):
        self.images.append(image_rgb)
        result = self.outputs.pop(0) if self.outputs else []
        return result(image_rgb) if callable(result) else result

    def close(self):
        self.closed = True


def test_crop_landmarks_are_mapped_back_to_full_image_pixels():
    """The crop detector sees a resized crop; its landmarks come back in full-image pixels (pixel-centre exact)."""
    image = np.zeros((400, 600, 3), np.uint8)
    truth = _shape((300.0, 200.0), 40.0)
    image[180:221, 280:321] = 255  # the crop must hold this patch, resized by crop_px / 80
    full = _Scripted([[_hand(truth)], []])
    seen = {}

    def in_crop(crop):
        seen["crop"] = crop
        # where the truth lies in the crop: window (260, 160)-(340, 240), scale 256 / 80 = 3.2
        return [_hand((truth - np.array([260.0, 160.0]) + 0.5) * 3.2 - 0.5)]

    crop = _Scripted([in_crop])
    detector = CropRedetectDetector(full, crop_detector=crop, crop_px=256)
    assert len(detector.detect(image, 0)) == 1
    (hand,) = detector.detect(image, STEP_NS)
    assert seen["crop"].shape == (256, 256, 3)
    white = np.argwhere(seen["crop"][..., 0] > 128)
    assert white.min(axis=0).tolist() == pytest.approx([64, 64], abs=3)  # patch at (20, 20) of 80 px, x3.2
    np.testing.assert_allclose(hand.landmarks_px, truth, atol=1e-9)
    np.testing.assert_array_equal(hand.world_landmarks_m, _hand(truth).world_landmarks_m)
    detector.close()
    assert full.closed and crop.closed


def test_crop_hand_that_duplicates_a_full_frame_hand_is_dropped():
    """Two overlapping hands, then the full frame keeps one: the crop around the lost one finds the kept one
    again (dropped as a duplicate), or the lost one (kept)."""
    image = np.zeros((400, 600, 3), np.uint8)
    kept, lost = _shape((300.0, 200.0), 60.0), _shape((330.0, 200.0), 60.0)

    def window_to_crop(landmarks):
        x0, y0, x1, _ = crop_window(np.array([330.0, 200.0]), 120.0, 600, 400)
        scale = 256 / (x1 - x0)
        return (landmarks - np.array([x0, y0]) + 0.5) * scale - 0.5

    for found_in_crop, expected in ((kept, 1), (lost, 2)):
        full = _Scripted([[_hand(kept), _hand(lost, HandSide.LEFT)], [_hand(kept)]])
        crop = _Scripted([[_hand(window_to_crop(found_in_crop))]])
        detector = CropRedetectDetector(full, crop_detector=crop)
        detector.detect(image, 0)
        hands = detector.detect(image, STEP_NS)
        assert len(hands) == expected
        assert len(crop.images) == 1  # only the lost hand's crop ran
        if expected == 2:
            np.testing.assert_allclose(hands[1].landmarks_px, lost, atol=1e-9)


def test_crop_pass_only_runs_for_recent_hands_and_respects_max_hands():
    image = np.zeros((400, 600, 3), np.uint8)
    a, b = _shape((150.0, 200.0), 50.0), _shape((450.0, 200.0), 50.0)
    # both hands, then none for 4 frames: the crops run for max_missing_frames=2 frames, then stop
    full = _Scripted([[_hand(a), _hand(b)]] + [[]] * 4)
    crop = _Scripted([])
    detector = CropRedetectDetector(full, crop_detector=crop, max_missing_frames=2)
    for i in range(5):
        detector.detect(image, i * STEP_NS)
    assert len(crop.images) == 4  # 2 tracks x 2 frames
    # max_hands already reached by the full frame: no crop pass at all
    full = _Scripted([[_hand(a)], [_hand(b)]])
    crop = _Scripted([])
    detector = CropRedetectDetector(full, crop_detector=crop, max_hands=1)
    detector.detect(image, 0)
    assert len(detector.detect(image, STEP_NS)) == 1
    assert crop.images == []
    # a new sequence (time back) or another image size forgets the recent hands
    full = _Scripted([[_hand(a)], [], [_hand(a)], []])
    crop = _Scripted([])
    detector = CropRedetectDetector(full, crop_detector=crop)
    detector.detect(image, 5 * STEP_NS)
    detector.detect(image, 0)
    detector.detect(image, STEP_NS)
    detector.detect(np.zeros((300, 600, 3), np.uint8), 2 * STEP_NS)
    assert crop.images == []


def test_two_hands_tracked_over_frames_keep_their_tracks():
    """Two hands seen in every frame continue their own tracks (no crop pass, no error on the second)."""
    image = np.zeros((400, 600, 3), np.uint8)
    a, b = _shape((150.0, 200.0), 50.0), _shape((450.0, 200.0), 50.0)
    full = _Scripted([[_hand(a), _hand(b)], [_hand(b), _hand(a)], [_hand(a + 3.0), _hand(b - 3.0)]])
    crop = _Scripted([])
    detector = CropRedetectDetector(full, crop_detector=crop)
    for i in range(3):
        assert len(detector.detect(image, i * STEP_NS)) == 2
    assert crop.images == [] and len(detector._tracks) == 2


def test_metric_size_sigma_passes_through():
    class Sized(_Scripted):
        metric_size_sigma = 0.25

    assert CropRedetectDetector(Sized([]), crop_detector=_Scripted([])).metric_size_sigma == 0.25
    assert getattr(CropRedetectDetector(_Scripted([]), crop_detector=_Scripted([])), "metric_size_sigma", None) is None

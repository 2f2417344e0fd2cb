"""The ego pipeline on the bad inputs the product meets in the field: each has a defined result, none escapes.

Covered: no hands, all-zero / NaN depth, depth of another size, grey / RGBA / 16-bit colour, zero intrinsics,
repeated stamps, a hand half outside the image, very small and very large hands.
"""

from __future__ import annotations

import numpy as np
import pytest

from hand_scene_perception.backends.base import HandDetection
from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.pipelines.ego import EgoFrame, EgoPipeline
from hand_scene_perception.synth.oracle import OracleDetector
from hand_scene_perception.synth.sequence import generate_sequence, stamp_ns


@pytest.fixture(scope="module")
def frames():
    return list(generate_sequence(5, 6, num_hands=1))


class EditedOracle(OracleDetector):
    """Oracle landmarks passed through ``edit`` (one detection in, one out): detector output a real one could give."""

    def __init__(self, edit) -> None:
        super().__init__(noise_px=0.0)
        self.edit = edit

    def detect(self, image_rgb: np.ndarray, timestamp_ns: int | None = None) -> list[HandDetection]:
        return [self.edit(d) for d in super().detect(image_rgb, timestamp_ns)]


def _run(detector: OracleDetector, frames, depth=lambda f: f.depth, image=lambda f: f.rgb, stamps=None):
    results = []
    with EgoPipeline(detector=detector) as pipeline:
        for index, frame in enumerate(frames):
            detector.frame = frame
            stamp = stamp_ns(frame) if stamps is None else stamps[index]
            results.append(pipeline.process(EgoFrame(image(frame), frame.camera, stamp, depth(frame))))
        map_size = len(pipeline.map)
    return results, map_size


def _assert_finite(results) -> None:
    for result in results:
        assert np.all(np.isfinite(result.T_world_camera))
        for hand in result.hands:
            for state in (hand.camera, hand.world):
                assert np.all(np.isfinite(state.joints)) and np.all(np.isfinite(state.vertices))


def test_no_hands_gives_empty_results_and_a_map(frames):
    results, map_size = _run(EditedOracle(lambda d: d), frames, image=lambda f: f.rgb)
    assert all(r.hands for r in results), "reference: the oracle sees the hand"
    empty = OracleDetector(noise_px=0.0)
    empty.detect = lambda image, stamp=None: []
    results, map_size = _run(empty, frames)
    assert all(r.hands == [] and r.detections == 0 and r.contacts == [] for r in results)
    assert map_size > 0 and results[-1].odometry.ok


@pytest.mark.parametrize("bad_depth", ["zeros", "nan"])
def test_depth_without_values_keeps_hands_from_rgb_and_adds_nothing_to_the_map(frames, bad_depth):
    def depth(frame):
        if bad_depth == "zeros":
            return np.zeros(frame.depth.shape, np.uint16)
        return np.full(frame.depth.shape, np.nan, np.float32)

    results, map_size = _run(OracleDetector(noise_px=0.0), frames, depth=depth)
    assert map_size == 0 and all(r.map_points_added == 0 for r in results)
    assert all(len(r.hands) == 1 for r in results)
    _assert_finite(results)
    for result, frame in zip(results, frames, strict=True):
        truth = frame.hands[0].joints_cam
        assert np.linalg.norm(result.hands[0].camera.joints[0] - truth[0]) < 0.05  # RGB placement, a few cm


def test_depth_of_another_size_is_resampled(frames):
    reference, reference_map = _run(OracleDetector(noise_px=0.0), frames)
    half, half_map = _run(OracleDetector(noise_px=0.0), frames, depth=lambda f: f.depth[::2, ::2])
    assert half_map > 0.5 * reference_map
    for a, b in zip(reference, half, strict=True):
        assert np.linalg.norm(a.hands[0].camera.joints[0] - b.hands[0].camera.joints[0]) < 0.01
        assert np.linalg.norm(a.T_world_camera[:3, 3] - b.T_world_camera[:3, 3]) < 0.02


@pytest.mark.parametrize("layout", ["grey", "grey1", "rgba", "uint16"])
def test_colour_layouts_are_converted(frames, layout):
    convert = {
        "grey": lambda f: f.rgb.mean(axis=2).astype(np.uint8),
        "grey1": lambda f: f.rgb[:, :, :1].copy(),
        "rgba": lambda f: np.dstack([f.rgb, np.full(f.rgb.shape[:2], 255, np.uint8)]),
        "uint16": lambda f: f.rgb.astype(np.uint16) * 257,
    }[layout]
    results, map_size = _run(OracleDetector(noise_px=0.0), frames, image=convert)
    assert map_size > 0 and all(len(r.hands) == 1 for r in results)
    assert results[-1].odometry.ok


def test_unusable_images_raise_clear_errors_before_any_state_changes(frames):
    frame = frames[0]
    detector = OracleDetector(noise_px=0.0)
    detector.frame = frame
    with EgoPipeline(detector=detector) as pipeline:
        pipeline.process(EgoFrame(frame.rgb, frame.camera, stamp_ns(frame), frame.depth))
        size = len(pipeline.map)
        for image, message in (
            (np.zeros((480, 640, 2), np.uint8), r"\(H, W, 3\)"),
            (np.zeros((480, 640, 3), np.float32), "uint8 or uint16"),
            (np.zeros((0, 640, 3), np.uint8), "empty"),
        ):
            with pytest.raises(ValueError, match=message):
                pipeline.process(EgoFrame(image, frame.camera, stamp_ns(frame) + 1, None))
        assert len(pipeline.map) == size


@pytest.mark.parametrize("field", ["fx", "fy"])
def test_zero_intrinsics_are_refused_naming_the_field(field):
    values = {"fx": 500.0, "fy": 500.0, "cx": 320.0, "cy": 240.0, "width": 640, "height": 480}
    values[field] = 0.0
    with pytest.raises(ValueError, match=field):
        PinholeCamera.from_intrinsics(**values)


def test_repeated_stamps_are_one_instant(frames):
    stamps = [stamp_ns(frames[0])] * len(frames)
    results, _ = _run(OracleDetector(noise_px=0.0), frames, stamps=stamps)
    assert all(r.session_reset is None for r in results)
    assert len({h.track_id for r in results for h in r.hands}) == 1
    _assert_finite(results)


def _scaled_about_wrist(factor: float):
    def edit(detection: HandDetection) -> HandDetection:
        wrist = detection.landmarks_px[0]
        return HandDetection(
            detection.side, detection.score, wrist + factor * (detection.landmarks_px - wrist),
            detection.world_landmarks_m,
        )

    return edit


def _shifted_half_out(detection: HandDetection) -> HandDetection:
    """The hand moved left until its centre sits on the image border: about half its landmarks outside."""
    centre_x = np.median(detection.landmarks_px[:, 0])
    return HandDetection(
        detection.side, detection.score, detection.landmarks_px - [centre_x, 0.0], detection.world_landmarks_m
    )


@pytest.mark.parametrize(
    ("edit", "expected_depth"),
    [
        (_shifted_half_out, None),
        (_scaled_about_wrist(0.05), (2.0, 200.0)),  # a 5 %-size hand: 20x farther away
        (_scaled_about_wrist(6.0), (0.01, 0.3)),  # a 6x hand: very close to the lens
    ],
    ids=["half-outside", "very-small", "very-large"],
)
def test_extreme_hands_have_defined_results(frames, edit, expected_depth):
    # No depth: the metric placement comes from the hand's size in pixels alone, which these edits change.
    results, _ = _run(EditedOracle(edit), frames, depth=lambda f: None)
    _assert_finite(results)
    placed = [h for r in results for h in r.hands]
    if expected_depth is None:
        assert len(placed) == len(results), "a hand half in view is still fitted"
        for hand in placed:  # the evidence is reported as detected, outside the image included
            assert (hand.camera.landmarks_px[:, 0] < 0).sum() >= 5
    else:
        low, high = expected_depth
        for hand in placed:
            assert low < hand.camera.joints[0, 2] < high


class WithUnplaceableCopy(OracleDetector):
    """Each real hand plus a copy with only three landmarks left: too few to place, so only the copy is lost."""

    def detect(self, image_rgb: np.ndarray, timestamp_ns: int | None = None) -> list[HandDetection]:
        out = []
        for detection in super().detect(image_rgb, timestamp_ns):
            sparse = np.full_like(detection.landmarks_px, np.nan)
            sparse[:3] = detection.landmarks_px[:3]
            out += [HandDetection(detection.side, detection.score, sparse, detection.world_landmarks_m), detection]
        return out


def test_a_hand_that_cannot_be_placed_is_dropped_and_the_others_go_on(frames):
    results, _ = _run(WithUnplaceableCopy(noise_px=0.0), frames)
    assert [r.detections for r in results] == [2] * len(frames)
    assert [len(r.hands) for r in results] == [1] * len(frames)
    _assert_finite(results)


@pytest.mark.parametrize("with_depth", [True, False])
def test_a_change_of_image_size_starts_a_new_session(frames, with_depth):
    """A camera switching modes (or a folder of unrelated images): the frame after the change is processed in a
    new session instead of matching odometry against a frame of another size."""
    detector = OracleDetector(noise_px=0.0)
    height, width = frames[0].rgb.shape[:2]
    half = PinholeCamera.from_intrinsics(frames[0].camera.fx / 2, frames[0].camera.fy / 2, frames[0].camera.cx / 2,
                                         frames[0].camera.cy / 2, width // 2, height // 2)
    with EgoPipeline(detector=detector) as pipeline:
        results = []
        for index, frame in enumerate(frames[:4]):
            detector.frame = frame
            image, camera, depth = frame.rgb, frame.camera, frame.depth if with_depth else None
            if index == 2:
                image, depth, camera = image[::2, ::2], None if depth is None else depth[::2, ::2], half
            results.append(pipeline.process(EgoFrame(np.ascontiguousarray(image), camera, stamp_ns(frame), depth)))
    resets = [r.session_reset for r in results]
    assert resets[:2] == [None, None]
    assert "image size changed from" in resets[2] and f"to {width // 2}x{height // 2}" in resets[2]
    assert "image size changed" in resets[3]  # and back

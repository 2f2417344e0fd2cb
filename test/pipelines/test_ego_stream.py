"""EgoPipeline.process_stream (detection of the next frame overlapped with the rest of this one) against
EgoPipeline.process: the same frames must give the same results, in order, including across a new session."""

from __future__ import annotations

import numpy as np
import pytest

from hand_scene_perception.backends.base import HandDetection
from hand_scene_perception.pipelines.ego import EgoFrame, EgoPipeline, EgoResult
from hand_scene_perception.synth.oracle import oracle_landmarks
from hand_scene_perception.synth.sequence import SynthFrame, generate_sequence, stamp_ns


class StampedOracle:
    """Noisy ground-truth landmarks of the frame with the given stamp: in a stream the detector runs ahead
    of the caller, so it cannot be told "the current frame" as the evaluation's oracle is."""

    metric_size_sigma = 0.0  # ground-truth joints: their metric size is exact

    def __init__(self, frames: dict[int, SynthFrame]) -> None:
        self.frames = frames
        self._rng = np.random.default_rng(0)
        self.calls: list[int] = []

    def detect(self, image_rgb: np.ndarray, timestamp_ns: int | None = None) -> list[HandDetection]:
        self.calls.append(timestamp_ns)
        return oracle_landmarks(self.frames[timestamp_ns], 2.0, self._rng)


@pytest.fixture(scope="module")
def sequence():
    """16 frames, then the first 6 again one second earlier: a time jump back in the middle of the stream."""
    synth = list(generate_sequence(5, 16, num_hands=2))
    stamped = [(stamp_ns(f, 10**9), f) for f in synth] + [(stamp_ns(f), f) for f in synth[:6]]
    return stamped


def _results(sequence, use_depth: bool, stream: bool) -> tuple[list[EgoResult], list[int], int]:
    detector = StampedOracle(dict(sequence))
    inputs = [EgoFrame(f.rgb, f.camera, stamp, f.depth if use_depth else None) for stamp, f in sequence]
    with EgoPipeline(detector=detector) as pipeline:
        results = list(pipeline.process_stream(inputs)) if stream else [pipeline.process(f) for f in inputs]
        return results, detector.calls, len(pipeline.map)


@pytest.mark.parametrize("use_depth", [True, False])
def test_stream_gives_the_same_results_as_frame_by_frame(sequence, use_depth):
    expected, expected_calls, expected_map = _results(sequence, use_depth, stream=False)
    got, calls, map_size = _results(sequence, use_depth, stream=True)
    assert calls == expected_calls == [stamp for stamp, _ in sequence]
    assert [r.stamp_ns for r in got] == [stamp for stamp, _ in sequence]
    assert [r.session_reset is not None for r in got] == [i == 16 for i in range(len(sequence))]
    assert map_size == expected_map and (map_size > 0) == use_depth
    assert sum(len(r.hands) for r in got) > 20
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a.T_world_camera, b.T_world_camera)
        assert (a.odometry.ok, a.odometry.status, a.map_points_added) == (b.odometry.ok, b.odometry.status,
                                                                          b.map_points_added)
        assert [(h.track_id, h.side) for h in a.hands] == [(h.track_id, h.side) for h in b.hands]
        for ha, hb in zip(a.hands, b.hands, strict=True):
            np.testing.assert_array_equal(ha.world.joints, hb.world.joints)
            np.testing.assert_array_equal(ha.camera.vertices, hb.camera.vertices)
        assert [(c.track_id, c.region) for c in a.contacts] == [(c.track_id, c.region) for c in b.contacts]
        assert {"detect", "odometry", "fit", "track", "map", "total"} <= set(a.timings_ms)


def test_stream_returns_the_pending_result_before_a_bad_frame_raises(sequence):
    (stamp, frame), (stamp2, frame2) = sequence[0], sequence[1]
    detector = StampedOracle(dict(sequence))
    bad = EgoFrame(frame2.rgb.astype(np.float32), frame2.camera, stamp2, None)
    with EgoPipeline(detector=detector) as pipeline:
        stream = pipeline.process_stream([EgoFrame(frame.rgb, frame.camera, stamp, frame.depth), bad])
        first = next(stream)
        assert first.stamp_ns == stamp and len(first.hands) == sum(t.visible for t in frame.hands)
        with pytest.raises(ValueError, match="uint8"):
            next(stream)
        # The pipeline stays usable: the next good frame goes through.
        assert pipeline.process(EgoFrame(frame2.rgb, frame2.camera, stamp2, frame2.depth)).stamp_ns == stamp2


def test_benchmark_reports_both_modes_against_the_detector_in_one_run():
    from hand_scene_perception.eval.ego import benchmark_ego

    report = benchmark_ego(num_frames=4, warmup=2, rounds=1)
    assert report["frames"] == 4 and report["warmup_frames"] == 2 and report["resolution"] == [640, 480]
    detector_s = report["frames"] / report["fps_detector"]
    for suffix in ("", "_sync"):  # every ratio is that configuration's time over the detector's, same frames
        for kind in ("", "_rgbd"):
            seconds = report["frames"] / report[f"fps{kind}{suffix}"]
            assert report[f"ratio_to_detector{kind}{suffix}"] == pytest.approx(seconds / detector_s)
            assert report[f"latency_ms{kind}{suffix}"] > 0
    with pytest.raises(ValueError, match="warmup"):
        benchmark_ego(num_frames=4, warmup=0)


def test_a_stream_left_early_completes_the_frame_under_way(sequence):
    expected, _, _ = _results(sequence[:10], use_depth=True, stream=False)
    detector = StampedOracle(dict(sequence))
    inputs = [EgoFrame(f.rgb, f.camera, stamp, f.depth) for stamp, f in sequence[:10]]
    with EgoPipeline(detector=detector) as pipeline:
        stream = pipeline.process_stream(inputs)
        assert [next(stream).stamp_ns for _ in range(3)] == [f.stamp_ns for f in inputs[:3]]
        stream.close()  # frame 3 was under way: it is completed, its result dropped
        assert detector.calls == [f.stamp_ns for f in inputs[:4]]
        later = [pipeline.process(frame) for frame in inputs[4:]]
    for a, b in zip(later, expected[4:], strict=True):
        np.testing.assert_array_equal(a.T_world_camera, b.T_world_camera)
        assert [h.track_id for h in a.hands] == [h.track_id for h in b.hands]
        for ha, hb in zip(a.hands, b.hands, strict=True):
            np.testing.assert_array_equal(ha.world.joints, hb.world.joints)


def test_a_frame_arriving_while_the_one_before_is_finished_enters_the_detector_at_once(sequence):
    """process_arrivals: the second frame "arrives" only at the fourth poll (during the first frame's stages, once
    its hands are fitted): it is detected before the first frame's result comes out, and the stream ends once a frame
    is finished with none waiting."""
    detector = StampedOracle(dict(sequence))
    inputs = [EgoFrame(f.rgb, f.camera, stamp, f.depth) for stamp, f in sequence[:2]]
    arrivals = [inputs[0], None, None, inputs[1]]
    polls: list[int] = []

    def next_frame() -> EgoFrame | None:
        polls.append(len(detector.calls))
        return arrivals.pop(0) if arrivals else None

    expected, _, _ = _results(sequence[:2], use_depth=True, stream=False)
    with EgoPipeline(detector=detector) as pipeline:
        stream = pipeline.process_arrivals(next_frame)
        first = next(stream)
        assert detector.calls == [inputs[0].stamp_ns, inputs[1].stamp_ns]  # the second is detected already
        rest = list(stream)
    assert [r.stamp_ns for r in [first, *rest]] == [f.stamp_ns for f in inputs]
    assert len(polls) > 4  # asked again between the stages, not only once per frame
    for a, b in zip([first, *rest], expected, strict=True):
        np.testing.assert_array_equal(a.T_world_camera, b.T_world_camera)
        for ha, hb in zip(a.hands, b.hands, strict=True):
            np.testing.assert_array_equal(ha.world.joints, hb.world.joints)

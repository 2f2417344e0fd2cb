"""`hand-scene bench gaussian`: what it reports (its timings are the benchmark's business, not a test's)."""

from __future__ import annotations

import pytest

from hand_scene_perception.eval.gaussian import TARGET_FPS, benchmark_gaussian


def test_the_report_covers_two_posed_hands_and_relates_to_the_target():
    report = benchmark_gaussian(num_frames=1, size=64)
    assert report["gaussians"] == 2 * 67920 and report["resolution"] == [64, 64]
    assert report["covered_pixels"] > 100  # both hands in view, opaque
    assert all(report[key] > 0 for key in ("pose_two_hands_ms", "render_culled_ms", "render_all_ms", "fps"))
    assert report["ratio_to_target_frame_time"] == pytest.approx(TARGET_FPS / report["fps"])
    assert report["node_one_hand_hz"] == pytest.approx(1e3 / report["node_one_hand_render_ms"])
    assert report["node_target_hz"] == 10.0

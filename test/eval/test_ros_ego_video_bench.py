"""`hand-scene bench ros-ego --video`: a real video through the node in its own process, every output subscribed,
against the hand expert alone on the same frames (a short run: the numbers the README quotes come from longer ones)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA

from hand_scene_perception.eval.ros_ego import benchmark_ros_ego_video, load_video_frames

VIDEO = SHARED_DATA / "real_hands" / "mediapipe_samples" / "hand_landmarker_test_video.mp4"


def test_real_video_bench_reports_delivery_node_stages_and_the_detector_reference(tmp_path):
    # visualization_rate_hz 0: markers with every frame (the bench passes node parameters through).
    report = benchmark_ros_ego_video(VIDEO, duration_s=2.0, rate_hz=15.0, log_path=tmp_path / "node.log",
                                     node_parameters=["visualization_rate_hz:=0.0"])  # fmt: skip
    assert report["resolution"] == [640, 360] and report["subscribed"] == "all outputs"
    phase = report["phase"]
    assert phase["frames"] >= 25 and 0 < report["delivered_fraction"] <= 1.0
    assert 0 < report["latency_p50_ms"] <= report["latency_p99_ms"]
    assert report["detector_ms_mean"] > 0 and report["ratio_processing_to_detector"] > 0
    # The node's own per-stage profile, from its /diagnostics.
    assert {"detect", "fit", "track", "decode", "messages", "publish"} <= set(phase["stages_ms"])
    assert all(value >= 0 for value in phase["stages_ms"].values())
    # Every output reached the viewer, as RViz and a recorder would get them.
    received = phase["received_per_topic"]
    assert {"hands", "hand_markers", "/tf", "camera_odometry", "hand_paths/left"} <= set(received)
    # one per frame with a hand (at the default 10 Hz it would be at most 2 in 3 of these 15 Hz frames)
    assert received["hand_markers"] >= 0.8 * received["hands"], received
    assert "stopped" in (tmp_path / "node.log").read_text()  # the node's clean end


def test_video_frames_load_with_a_cap_and_depth_must_cover_them(tmp_path):
    rgbs, depths = load_video_frames(VIDEO, None, 5)
    assert len(rgbs) == 5 and rgbs[0].shape == (360, 640, 3) and depths == []
    for index in range(3):
        np.save(tmp_path / f"{index:04d}.npy", np.ones((360, 640), np.float32))
    with pytest.raises(ValueError, match="depth"):
        load_video_frames(VIDEO, tmp_path, 5)

"""`make demo` end to end (short): synthetic bag → ego node over DDS → recorded outputs, summary, picture."""

from __future__ import annotations

import numpy as np
from node_checks import live_node_names
from PIL import Image

from hand_scene_perception.ros.bags.io import open_bag
from hand_scene_perception.ros.demo import format_summary, run_demo


def test_demo_runs_the_node_on_a_bag_and_measures_it(tmp_path):
    before = live_node_names()
    # A quarter of real time: the node, player, recorder and listener share this process on a 2-core machine
    # that may be busy; the node drops frames it cannot take (newest wins), so only a share is asserted.
    summary = run_demo(tmp_path, frames=24, seed=0, rate=0.25)
    # Its nodes are destroyed, not left to the context: Jazzy's shutdown keeps them (and their publishers) alive.
    assert live_node_names() == before
    assert summary["frames_in"] == 24
    assert summary["frames_out"] >= 8 and summary["hands_published"] >= summary["frames_out"]
    # Metric hands and a camera that tracks, against the synthetic ground truth (oracle-free: real detector).
    assert summary["c_mpjpe_mm"] is not None and summary["c_mpjpe_mm"] < 60.0
    assert summary["camera_ate_m"] is not None and summary["camera_ate_m"] < 0.05
    assert summary["map_points"] > 1000
    assert summary["latency_p50_ms"] is not None and summary["latency_p50_ms"] > 0

    reader = open_bag(tmp_path / "demo.mcap")
    try:
        recorded = {connection.topic: connection.msgcount for connection in reader.connections}
    finally:
        reader.close()
    for topic in ("/hands", "/hand_markers", "/scene_map", "/camera_odometry", "/tf", "/hand_mesh_topology"):
        assert recorded.get(topic, 0) > 0, f"{topic} not recorded: {recorded}"

    picture = np.asarray(Image.open(tmp_path / "demo.png"))
    assert picture.shape[2] == 3 and picture.std() > 10  # not a blank canvas
    assert "frames in/out" in format_summary(summary)

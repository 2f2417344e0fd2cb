"""`make demo` end to end (short): synthetic bag → the ego node in its own process over DDS → recorded outputs,
summary, picture; the recording read back with the official MCAP readers; a failing node surfaces its error."""

from __future__ import annotations

import numpy as np
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from node_checks import live_node_names
from PIL import Image

from hand_scene_perception import cli
from hand_scene_perception.ros import demo
from hand_scene_perception.ros.demo import format_summary, run_demo

FRAMES = 90
# What a Foxglove user opens demo.mcap for: the camera, the overlay, the hands, TF and the scene map.
EXPECTED = {"/camera/image_raw": "sensor_msgs/msg/Image", "/overlay": "sensor_msgs/msg/Image",
            "/hands": "hand_scene_msgs/msg/HandArray", "/tf": "tf2_msgs/msg/TFMessage",
            "/scene_map": "sensor_msgs/msg/PointCloud2", "/camera_odometry": "nav_msgs/msg/Odometry",
            "/hand_mesh_topology": "hand_scene_msgs/msg/HandMeshTopology"}  # fmt: skip


def _mcap_contents(path) -> tuple[dict[str, tuple[str, int]], dict[str, object]]:
    """({topic: (schema, message count)}, {topic: its first message decoded}) through mcap + mcap-ros2-support."""
    with open(path, "rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        counts = summary.statistics.channel_message_counts
        topics = {channel.topic: (summary.schemas[channel.schema_id].name, counts.get(channel.id, 0))
                  for channel in summary.channels.values()}  # fmt: skip
        first = {}
        for _, channel, _, decoded in reader.iter_decoded_messages(topics=list(EXPECTED)):
            first.setdefault(channel.topic, decoded)
    return topics, first


def test_demo_runs_the_node_in_its_own_process_and_measures_it(tmp_path):
    # At the recorded pace (1x) on a 2-core machine the node takes what it can (newest frame wins): only a share of
    # the frames is asserted; the numbers the README quotes come from full `make demo` runs.
    before = live_node_names()
    # 3 s of frames: in some runs the node gets no camera_info for the first ~0.9 s although its subscription has
    # matched the player (cause not found yet; every image is skipped until then), which left a 1 s replay empty.
    summary = run_demo(tmp_path, frames=FRAMES, seed=0)
    # Its nodes are destroyed, not left to the context: Jazzy's shutdown keeps them (and their publishers) alive.
    assert live_node_names() == before
    assert summary["frames_in"] == FRAMES and summary["rate"] == 1.0
    assert summary["frames_out"] >= 3 and summary["hands_published"] >= summary["frames_out"]
    node = summary["node"]
    assert node["exit_status"] == 0 and node["frames_received"] >= summary["frames_out"] - 1
    assert node["frames_processed"] >= 1 and node["processing_ms"] > 0
    # Metric hands and a camera that tracks, against the synthetic ground truth (oracle-free: real detector).
    assert summary["c_mpjpe_mm"] is not None and summary["c_mpjpe_mm"] < 60.0
    assert summary["camera_ate_m"] is not None and summary["camera_ate_m"] < 0.05
    assert summary["map_points"] > 1000
    assert summary["latency_p50_ms"] is not None and summary["latency_p50_ms"] > 0
    assert "stopped" in (tmp_path / "demo_node.log").read_text()  # the node's own clean end (SIGINT)

    topics, first = _mcap_contents(tmp_path / "demo.mcap")
    for topic, schema in EXPECTED.items():
        assert topics.get(topic, ("", 0))[0] == schema, f"{topic} missing or mistyped: {topics}"
        assert topics[topic][1] > 0, f"{topic} has no messages: {topics}"
    assert topics["/camera/image_raw"][1] == FRAMES
    assert 1 <= topics["/overlay"][1] <= topics["/hands"][1]  # at most one per processed frame (visualization rate)
    image, overlay = first["/camera/image_raw"], first["/overlay"]
    assert (overlay.width, overlay.height, overlay.encoding) == (image.width, image.height, "rgb8")
    assert len(first["/scene_map"].data) > 0 and first["/tf"].transforms
    assert summary["recorded_messages"]["/overlay"] == topics["/overlay"][1]

    picture = np.asarray(Image.open(tmp_path / "demo.png"))
    assert picture.shape[2] == 3 and picture.std() > 10  # not a blank canvas
    text = format_summary(summary)
    assert "frames in/out" in text and "received" in text and str(tmp_path / "demo_node.log") in text


def test_a_failing_node_stops_the_demo_with_its_own_error(tmp_path, monkeypatch, capsys):
    # A launch argument the node refuses: its process exits at once, and the user reads the node's own message.
    monkeypatch.setattr(demo, "NODE_LAUNCH_ARGUMENTS", {**demo.NODE_LAUNCH_ARGUMENTS, "backend": "nonsense"})
    status = cli.main(["demo", "--out", str(tmp_path), "--frames", "2"])
    error = capsys.readouterr().err
    assert status == 1
    assert "hand-scene demo: error: the node process exited early with status 2" in error
    assert "backend" in error and "nonsense" in error  # quoted from the node's log

"""`hand-scene process BAG`: the node's processor over a bag, no DDS; outputs equal a direct run's."""

from __future__ import annotations

import numpy as np
import pytest
from ego_fixtures import CAMERA_FRAME, StampOracle, frame_messages, frame_stamp, synthetic_frames
from nav_msgs.msg import Odometry
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.interfaces import QosDurability
from sensor_msgs.msg import PointCloud2
from tf2_msgs.msg import TFMessage

from hand_scene_msgs.msg import HandArray, HandMeshTopology
from hand_scene_perception.cli import main
from hand_scene_perception.pipelines.ego import EgoConfig
from hand_scene_perception.ros.bags.io import BagWriter, open_bag, read_messages
from hand_scene_perception.ros.bags.process import OUTPUT_TYPES, process_bag
from hand_scene_perception.ros.conversions import hand_state, transform_msg
from hand_scene_perception.ros.ego.processor import EgoMessageProcessor

FRAMES = 4


@pytest.fixture(scope="module")
def frames():
    return synthetic_frames(FRAMES)


@pytest.fixture(scope="module")
def input_bag(frames, tmp_path_factory):
    """The frames as a driver's bag (sqlite3); depth is written before colour to exercise the pairing."""
    bag = tmp_path_factory.mktemp("in") / "camera.db3"
    with BagWriter(bag) as writer:
        for topic in ("/camera/depth/image_raw", "/camera/image_raw"):
            writer.add_topic(topic, "sensor_msgs/msg/Image")
        writer.add_topic("/camera/camera_info", "sensor_msgs/msg/CameraInfo")
        for frame in frames:
            messages, stamp = frame_messages(frame), frame_stamp(frame)
            writer.write("/camera/depth/image_raw", stamp, serialize_message(messages.depth))
            writer.write("/camera/image_raw", stamp, serialize_message(messages.image))
            writer.write("/camera/camera_info", stamp, serialize_message(messages.info))
    return bag


def _by_topic(path):
    reader = open_bag(path)
    try:
        topics = {c.topic: [] for c in reader.connections}
        for connection, timestamp, data in read_messages(reader):
            topics[connection.topic].append((timestamp, data))
        return topics, {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    finally:
        reader.close()


def test_process_bag_writes_what_the_node_processor_produces(frames, input_bag, tmp_path):
    out = tmp_path / "out.mcap"
    stats = process_bag(input_bag, out, EgoConfig(), world_frame="map", detector=StampOracle(frames))
    assert (stats.frames, stats.rejected, stats.outcome) == (FRAMES, 0, "complete") and not stats.unpaired
    topics, qos = _by_topic(out)
    assert set(topics) == set(OUTPUT_TYPES)
    assert qos["/hand_mesh_topology"][0].durability == QosDurability.TRANSIENT_LOCAL
    stamps = [frame_stamp(f) for f in frames]
    for topic in ("/hands", "/hand_markers", "/camera_odometry", "/contacts", "/tf", "/hand_paths/left"):
        assert [t for t, _ in topics[topic]] == stamps, topic

    direct = EgoMessageProcessor(EgoConfig(), world_frame="map", detector=StampOracle(frames))
    try:
        for frame, (_, raw_hands), (_, raw_tf) in zip(frames, topics["/hands"], topics["/tf"], strict=True):
            messages = frame_messages(frame)
            expected = direct.process(messages.image, messages.info, messages.depth)
            got = deserialize_message(raw_hands, HandArray)
            assert got.header.frame_id == "map" and len(got.hands) == len(expected.hands.hands) >= 1
            for hand, want in zip(got.hands, expected.hands.hands, strict=True):
                assert (hand.side, hand.track_id, hand.image_frame_id) == (want.side, want.track_id, CAMERA_FRAME)
                np.testing.assert_allclose([[p.x, p.y, p.z] for p in hand.joints],
                                           [[p.x, p.y, p.z] for p in want.joints], atol=1e-9)  # fmt: skip
            children = {t.child_frame_id for t in deserialize_message(raw_tf, TFMessage).transforms}
            assert CAMERA_FRAME in children and children & {"left_hand", "right_hand"}
    finally:
        direct.close()
    ((_, raw_topology),) = topics["/hand_mesh_topology"]
    assert len(deserialize_message(raw_topology, HandMeshTopology).faces_right) > 0
    cloud = deserialize_message(topics["/scene_map"][-1][1], PointCloud2)
    assert topics["/scene_map"][-1][0] == stamps[-1] and cloud.point_step == 16 and cloud.width > 1000


def test_process_cli_with_the_embedded_detector_and_bad_topics(input_bag, tmp_path, capsys):
    out = tmp_path / "out_dir"
    assert main(["process", str(input_bag), "--out", str(out), "--no-depth", "--max-hands", "1"]) == 0
    captured = capsys.readouterr()
    assert f"{FRAMES}/{FRAMES} frames" in captured.err and f"complete: {FRAMES} frames" in captured.out
    topics, _ = _by_topic(out)
    assert len(topics["/hands"]) == FRAMES and (out / "metadata.yaml").is_file()

    assert main(["process", str(input_bag), "--out", str(tmp_path / "x.mcap"), "--image-topic", "/nope"]) == 2
    err = capsys.readouterr().err
    assert "/nope not in" in err and "/camera/image_raw" in err
    wrong_type = ["--info-topic", "/camera/image_raw"]
    assert main(["process", str(input_bag), "--out", str(tmp_path / "y.mcap"), *wrong_type]) == 2
    assert "expected sensor_msgs/msg/CameraInfo" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out_dir"]  # no partial outputs left behind


def test_process_bag_with_the_camera_pose_from_the_bags_tf(frames, tmp_path):
    """world → base on /tf_static, base → camera on /tf logged 20 ms after each image (processing waits for it);
    the last frame has no TF after its stamp: rejected, not guessed."""
    world_base = np.eye(4)
    world_base[:3, 3] = [1.0, 2.0, 0.5]
    bag = tmp_path / "tf.mcap"
    with BagWriter(bag) as writer:
        for topic in ("/camera/depth/image_raw", "/camera/image_raw"):
            writer.add_topic(topic, "sensor_msgs/msg/Image")
        writer.add_topic("/camera/camera_info", "sensor_msgs/msg/CameraInfo")
        writer.add_topic("/tf", "tf2_msgs/msg/TFMessage")
        writer.add_topic("/tf_static", "tf2_msgs/msg/TFMessage")
        writer.write("/tf_static", 1, serialize_message(TFMessage(transforms=[transform_msg(world_base, "world",
                                                                                            "base", 0)])))
        for index, frame in enumerate(frames):
            messages, stamp = frame_messages(frame), frame_stamp(frame)
            for topic, message in (("/camera/depth/image_raw", messages.depth), ("/camera/image_raw", messages.image),
                                   ("/camera/camera_info", messages.info)):
                writer.write(topic, stamp, serialize_message(message))
            if index < FRAMES - 1:
                tf = TFMessage(transforms=[transform_msg(frame.T_world_camera, "base", CAMERA_FRAME, stamp)])
                writer.write("/tf", stamp + 20_000_000, serialize_message(tf))
    out = tmp_path / "out.mcap"
    stats = process_bag(bag, out, EgoConfig(camera_pose_source="tf"), world_frame="world",
                        detector=StampOracle(frames))
    assert (stats.frames, stats.rejected) == (FRAMES - 1, 1)
    (warning,) = [text for text in stats.warnings if "rejected" in text]
    assert f"no TF pose of '{CAMERA_FRAME}' in 'world'" in warning and "extrapolation" in warning
    topics, _ = _by_topic(out)
    for frame, (_, raw) in zip(frames, topics["/hands"], strict=False):
        (hand,) = deserialize_message(raw, HandArray).hands
        truth = frame.hands[0].joints_world @ world_base[:3, :3].T + world_base[:3, 3]
        assert np.abs(hand_state(hand).joints - truth).max() < 0.03
    for _, raw in topics["/tf"]:  # the node's TF: hands only (the camera already has its parent in the bag's TF)
        assert CAMERA_FRAME not in {t.child_frame_id for t in deserialize_message(raw, TFMessage).transforms}


def test_process_cli_camera_pose_source(input_bag, tmp_path, capsys):
    out = tmp_path / "static.mcap"
    assert main(["process", str(input_bag), "--out", str(out), "--camera-pose-source", "static", "--no-depth",
                 "--max-hands", "1"]) == 0  # fmt: skip
    topics, _ = _by_topic(out)
    for _, raw in topics["/camera_odometry"]:  # a static camera stays at the world origin
        position = deserialize_message(raw, Odometry).pose.pose.position
        assert (position.x, position.y, position.z) == (0.0, 0.0, 0.0)
    capsys.readouterr()
    assert main(["process", str(input_bag), "--out", str(tmp_path / "tf.mcap"), "--camera-pose-source", "tf"]) == 2
    assert "camera_pose_source tf needs /tf or /tf_static" in capsys.readouterr().err

"""Bags: video2bag, replay over real DDS with /clock, record to MCAP/sqlite3, bad input (hand-scene CLI)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from PIL import Image as PILImage
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.interfaces import MessageDefinitionFormat, QosDurability
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image

from hand_scene_msgs.msg import HandArray, HandMeshTopology
from hand_scene_perception.cli import main
from hand_scene_perception.ros.bags.io import BagError, BagWriter, message_definition, open_bag, read_messages
from hand_scene_perception.ros.bags.transport import BagPlayer, parse_remaps
from hand_scene_perception.ros.conversions import depth_image, image_rgb, pinhole_camera, time_ns
from hand_scene_perception.synth.sequence import default_camera, generate_sequence, save_sequence

FRAMES, FPS, WIDTH, HEIGHT = 5, 10.0, 64, 48
CLI = [sys.executable, "-m", "hand_scene_perception.cli"]
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope="module")
def sequence_dir(tmp_path_factory) -> Path:
    """A tiny rendered RGB-D sequence as PNG folders (rgb/, depth/ in millimetres)."""
    out = tmp_path_factory.mktemp("seq")
    return save_sequence(generate_sequence(3, FRAMES, 1, camera=default_camera(WIDTH, HEIGHT)), out)


@pytest.fixture(scope="module")
def camera_bag(sequence_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bags") / "camera.mcap"
    assert main(["video2bag", str(sequence_dir / "rgb"), "--out", str(out), "--fps", str(FPS), "--fx", "50"]) == 0
    return out


def _by_topic(path: Path) -> dict[str, list[tuple[int, bytes]]]:
    reader = open_bag(path)
    try:
        result: dict[str, list[tuple[int, bytes]]] = {c.topic: [] for c in reader.connections}
        for connection, timestamp, data in read_messages(reader):
            result[connection.topic].append((timestamp, data))
        return result
    finally:
        reader.close()


@pytest.mark.parametrize("name, storage", [("cam.mcap", None), ("cam.db3", None), ("cam_dir", "sqlite3")])
def test_video2bag_round_trip(sequence_dir, tmp_path, name, storage):
    out = tmp_path / name
    args = ["video2bag", str(sequence_dir / "rgb"), "--out", str(out), "--fps", str(FPS), "--fx", "50", "--fy", "51"]
    args += ["--depth-dir", str(sequence_dir / "depth"), "--frame-id", "cam_optical", "--start-time", "2"]
    assert main(args + ([] if storage is None else ["--storage", storage])) == 0
    assert out.is_file() == (storage is None) and not list(tmp_path.glob(".*partial*"))
    if storage is not None:
        assert (out / "metadata.yaml").is_file() and (out / f"{name}.db3").is_file()
    topics = _by_topic(out)
    assert set(topics) == {"/camera/image_raw", "/camera/camera_info", "/camera/depth/image_raw"}
    expected_stamps = [2_000_000_000 + round(i * 1e9 / FPS) for i in range(FRAMES)]
    for index, ((t_img, raw_img), (t_info, raw_info), (t_depth, raw_depth)) in enumerate(
        zip(topics["/camera/image_raw"], topics["/camera/camera_info"], topics["/camera/depth/image_raw"], strict=True)
    ):
        image = deserialize_message(raw_img, Image)
        info = deserialize_message(raw_info, CameraInfo)
        depth = deserialize_message(raw_depth, Image)
        assert t_img == t_info == t_depth == time_ns(image.header.stamp) == expected_stamps[index]
        assert image.encoding == "rgb8" and image.header.frame_id == info.header.frame_id == "cam_optical"
        png = np.asarray(PILImage.open(sequence_dir / "rgb" / f"{index:05d}.png").convert("RGB"))
        np.testing.assert_array_equal(image_rgb(image), png)
        camera = pinhole_camera(info)
        assert (camera.fx, camera.fy, camera.width, camera.height) == (50.0, 51.0, WIDTH, HEIGHT)
        assert depth.encoding == "32FC1"
        depth_mm = np.asarray(PILImage.open(sequence_dir / "depth" / f"{index:05d}.png")).astype(np.float32)
        np.testing.assert_allclose(depth_image(depth), depth_mm / 1000.0, atol=1e-6)


def test_video2bag_from_a_video_file(sequence_dir, tmp_path):
    import cv2

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (WIDTH, HEIGHT))
    for index in range(FRAMES):
        writer.write(cv2.imread(str(sequence_dir / "rgb" / f"{index:05d}.png")))
    writer.release()
    out = tmp_path / "clip.mcap"
    assert main(["video2bag", str(video), "--out", str(out), "--max-frames", "3", "--topic-prefix", "/head/"]) == 0
    topics = _by_topic(out)
    assert set(topics) == {"/head/image_raw", "/head/camera_info"}
    assert [t for t, _ in topics["/head/image_raw"]] == [1_000_000_000 + i * 40_000_000 for i in range(3)]
    image = deserialize_message(topics["/head/image_raw"][0][1], Image)
    assert (image.width, image.height, image.header.frame_id) == (WIDTH, HEIGHT, "camera_optical_frame")


def test_embedded_schemas_are_complete_and_hashes_match_rosidl(tmp_path):
    """Foxglove decodes from the embedded ros2msg text: it must carry every nested definition; the RIHS01
    hash rosbags computes must equal the one rosidl generated for the installed package."""
    out = tmp_path / "hands.mcap"
    with BagWriter(out) as writer:
        writer.add_topic("/hands", "hand_scene_msgs/msg/HandArray")
        writer.write("/hands", 1, serialize_message(HandArray()))
    reader = open_bag(out)
    (connection,) = reader.connections
    assert connection.msgdef.format == MessageDefinitionFormat.MSG
    text = connection.msgdef.data
    for nested in ("std_msgs/Header", "builtin_interfaces/Time", "hand_scene_msgs/Hand", "geometry_msgs/Pose"):
        assert f"MSG: {nested}\n" in text
    reader.close()
    profile, schemas, channels = _mcap_summary_records(out)
    assert profile == "ros2" and channels == [("/hands", "cdr")]
    assert schemas == [("hand_scene_msgs/msg/HandArray", "ros2msg", text)]
    import hand_scene_msgs

    share = Path(hand_scene_msgs.__file__).resolve().parents[4] / "share" / "hand_scene_msgs" / "msg"
    for name in ("HandArray", "Hand", "HandMeshTopology", "ContactArray"):
        rosidl = json.loads((share / f"{name}.json").read_text())["type_hashes"][0]["hash_string"]
        assert message_definition(f"hand_scene_msgs/msg/{name}")[1] == rosidl


def _mcap_summary_records(path: Path) -> tuple[str, list[tuple[str, str, str]], list[tuple[str, str]]]:
    """(header profile, [(schema name, encoding, text)], [(channel topic, message encoding)]) read straight from
    the top-level MCAP records (what Foxglove reads; the `mcap` package is not installed here)."""
    data = path.read_bytes()
    assert data[:8] == data[-8:] == b"\x89MCAP0\r\n"

    def string(offset: int) -> tuple[str, int]:
        size = struct.unpack_from("<I", data, offset)[0]
        return data[offset + 4 : offset + 4 + size].decode(), offset + 4 + size

    profile, schemas, channels, offset = "", [], [], 8
    while offset < len(data) - 8:
        opcode, length = data[offset], struct.unpack_from("<Q", data, offset + 1)[0]
        body = offset + 9
        if opcode == 0x01:
            profile = string(body)[0]
        elif opcode == 0x03:
            name, at = string(body + 2)
            encoding, at = string(at)
            schemas.append((name, encoding, string(at)[0]))
        elif opcode == 0x04:
            topic, at = string(body + 4)
            channels.append((topic, string(at)[0]))
        offset = body + length
    return profile, schemas, channels


def _spin_until(executor, done, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
        if process is not None and process.poll() is not None and not done():
            executor.spin_once(timeout_sec=0.5)  # the last messages may still be in the queue
            break


def test_replay_cross_process_messages_and_clock_in_order(camera_bag, subprocess_env):
    rate = 2.0
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    node = rclpy.create_node("replay_listener", context=context)
    executor.add_node(node)
    events: list[tuple[str, int, float]] = []
    node.create_subscription(Image, "/cam/rgb", lambda m: events.append(("image", time_ns(m.header.stamp),
                                                                          time.monotonic())), RELIABLE)  # fmt: skip
    node.create_subscription(Clock, "/clock", lambda m: events.append(("clock", time_ns(m.clock), 0.0)), RELIABLE)
    process = subprocess.Popen(
        [*CLI, "replay", str(camera_bag), "--rate", str(rate), "--topics", "/camera/image_raw",
         "--remap", "/camera/image_raw:=/cam/rgb", "--wait-for-subscribers", "20"],
        env=subprocess_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        last = 1_000_000_000 + round((FRAMES - 1) * 1e9 / FPS)
        # both topics complete (the executor may hand the last image over before the last clock message)
        _spin_until(executor, lambda: sum(e[0] == "image" for e in events) >= FRAMES
                    and any(e[0] == "clock" and e[1] >= last for e in events), 30.0, process)  # fmt: skip
        output, _ = process.communicate(timeout=30)
    finally:
        process.kill()
        node.destroy_node()
        executor.shutdown()
        context.try_shutdown()
    assert process.returncode == 0, output
    assert f"published /cam/rgb {FRAMES}" in output
    images = [e for e in events if e[0] == "image"]
    expected = [1_000_000_000 + round(i * 1e9 / FPS) for i in range(FRAMES)]
    assert [e[1] for e in images] == expected
    # the clock never goes back, starts at the bag's start and steps to every message's stamp (the executor
    # may hand two ready topics over in either order, so no cross-topic order is asserted)
    clock = [e[1] for e in events if e[0] == "clock"]
    assert clock == sorted(clock), clock
    assert clock[0] == expected[0] and set(expected) <= set(clock)
    # paced at rate x: the images span (FRAMES - 1) / FPS / rate seconds of wall time
    span = images[-1][2] - images[0][2]
    assert abs(span - (FRAMES - 1) / FPS / rate) < 0.15, span


@pytest.mark.parametrize("name", ["loop.db3", "loop.mcap"])
def test_replay_loop_restarts_clock_and_stops(camera_bag, tmp_path, name):
    """In-process player over real DDS (sqlite3 and MCAP): --loop replays the stamps again, /clock jumps back."""
    bag = tmp_path / name
    with BagWriter(bag) as writer:  # the camera bag copied into the other storage, byte for byte
        for topic, messages in _by_topic(camera_bag).items():
            writer.add_topic(topic, "sensor_msgs/msg/CameraInfo" if "info" in topic else "sensor_msgs/msg/Image")
            for timestamp, data in messages:
                writer.write(topic, timestamp, data)
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    listener = rclpy.create_node("loop_listener", context=context)
    player_node = rclpy.create_node("loop_player", context=context)
    executor.add_node(listener)
    stamps: list[int] = []
    clocks: list[int] = []
    listener.create_subscription(CameraInfo, "/camera/camera_info", lambda m: stamps.append(time_ns(m.header.stamp)),
                                 RELIABLE)  # fmt: skip
    listener.create_subscription(Clock, "/clock", lambda m: clocks.append(time_ns(m.clock)), RELIABLE)
    stop = threading.Event()
    player = BagPlayer(player_node, bag, rate=4.0, loop=True, topics=["/camera/camera_info"], stop=stop)
    assert player.wait_for_subscribers(20.0)
    thread = threading.Thread(target=player.play)
    thread.start()
    try:
        _spin_until(executor, lambda: len(stamps) >= 2 * FRAMES + 1, 30.0)
    finally:
        stop.set()
        thread.join(timeout=10)
        player.close()
        listener.destroy_node()
        player_node.destroy_node()
        executor.shutdown()
        context.try_shutdown()
    assert not thread.is_alive() and player.stats.passes >= 2
    one_pass = [1_000_000_000 + round(i * 1e9 / FPS) for i in range(FRAMES)]
    assert stamps[: 2 * FRAMES] == one_pass * 2
    jumps = [b for a, b in itertools.pairwise(clocks) if b < a]
    assert jumps and jumps[0] == one_pass[0]


def _wait_for_line(process: subprocess.Popen, lines: list[str], needle: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if needle in line:
            return
    raise AssertionError(f"no {needle!r} from the recorder: {''.join(lines)}")


@pytest.mark.parametrize("out_name, storage", [("rec.mcap", None), ("rec_bag", "sqlite3")])
def test_record_writes_received_bytes_and_latched_qos(tmp_path, subprocess_env, out_name, storage):
    """The recorder (its own process) keeps each message's CDR bytes as DDS delivered them, gets a latched
    message published before it started, and finalises the bag on SIGINT."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("record_source", context=context)
    latched_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)  # fmt: skip
    topology_pub = node.create_publisher(HandMeshTopology, "/rec_test/topology", latched_qos)
    hands_pub = node.create_publisher(HandArray, "/rec_test/hands", RELIABLE)
    topology = HandMeshTopology(model_name="open_hand_v1")
    topology.faces_right = [0, 1, 2, 2, 3, 0]
    topology_pub.publish(topology)
    out = tmp_path / out_name
    command = [*CLI, "record", "--out", str(out), "--topics", "/rec_test/hands", "/rec_test/topology"]
    process = subprocess.Popen(command + ([] if storage is None else ["--storage", storage]), env=subprocess_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: list[str] = []
    sent = []
    try:
        _wait_for_line(process, lines, "recording /rec_test/hands", 30.0)
        deadline = time.monotonic() + 10.0
        while hands_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        for index in range(6):
            msg = HandArray()
            msg.header.stamp.sec, msg.header.frame_id = index + 1, "map" + "x" * index  # sizes not multiples of 4
            sent.append(serialize_message(msg))
            hands_pub.publish(sent[-1])  # raw CDR, as replay publishes: these exact bytes go on the wire
        assert hands_pub.wait_for_all_acked(rclpy.duration.Duration(seconds=10))
        time.sleep(0.3)  # acknowledged means received by the reader; let the callback write them
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
        node.destroy_node()
        context.try_shutdown()
    assert process.returncode == 0, "".join(lines) + stderr
    assert out.exists() and not list(tmp_path.glob(".*partial*")), stdout
    topics = _by_topic(out)
    # DDS pads a payload to a multiple of 4 bytes: recorded = sent + zero padding, and decodes to the same message
    recorded = [data for _, data in topics["/rec_test/hands"]]
    assert [r[: len(s)] for r, s in zip(recorded, sent, strict=True)] == sent
    assert all(len(r) == (len(s) + 3) // 4 * 4 and not any(r[len(s) :]) for r, s in zip(recorded, sent, strict=True))
    stamps = [time_ns(deserialize_message(r, HandArray).header.stamp) for r in recorded]
    assert stamps == [i * 10**9 for i in range(1, 7)]
    ((_, latched),) = topics["/rec_test/topology"]
    assert list(deserialize_message(latched, HandMeshTopology).faces_right) == [0, 1, 2, 2, 3, 0]
    reader = open_bag(out)
    qos = {c.topic: c.ext.offered_qos_profiles for c in reader.connections}
    reader.close()
    assert qos["/rec_test/topology"][0].durability == QosDurability.TRANSIENT_LOCAL
    assert qos["/rec_test/hands"][0].durability == QosDurability.VOLATILE


def test_bad_input_gives_clear_errors(camera_bag, sequence_dir, tmp_path, capsys):
    missing = tmp_path / "nope.mcap"
    assert main(["replay", str(missing)]) == 2
    assert f"no such bag: {missing}" in capsys.readouterr().err

    garbage = tmp_path / "garbage.mcap"
    garbage.write_bytes(b"this is not an mcap file" * 10)
    assert main(["replay", str(garbage)]) == 2
    assert f"cannot read {garbage} as a rosbag2 bag" in capsys.readouterr().err

    truncated = tmp_path / "truncated.mcap"
    truncated.write_bytes(camera_bag.read_bytes()[: camera_bag.stat().st_size // 2])
    with pytest.raises(BagError, match=r"truncated\.mcap"):
        reader = open_bag(truncated)
        list(read_messages(reader))

    empty = tmp_path / "empty.mcap"
    with BagWriter(empty) as writer:
        writer.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
    assert main(["replay", str(empty), "--loop"]) == 2
    assert "has no messages" in capsys.readouterr().err

    assert main(["replay", str(camera_bag), "--topics", "/nope"]) == 2
    err = capsys.readouterr().err
    assert "/nope not in" in err and "/camera/image_raw" in err

    assert main(["replay", str(camera_bag), "--remap", "/camera/image_raw=/x"]) == 2
    assert "FROM:=TO" in capsys.readouterr().err
    assert main(["replay", str(camera_bag), "--rate", "0"]) == 2
    assert "--rate must be a positive number" in capsys.readouterr().err

    assert main(["video2bag", str(tmp_path / "no_video.mp4"), "--out", str(tmp_path / "x.mcap")]) == 2
    assert "no such video file or image folder" in capsys.readouterr().err
    existing = tmp_path / "existing_dir"
    existing.mkdir()
    assert main(["video2bag", str(sequence_dir / "rgb"), "--out", str(existing)]) == 2
    assert f"{existing} exists already" in capsys.readouterr().err
    assert main(["record", "--out", str(tmp_path / "r.mcap"), "--storage", "sqlite3"]) == 2
    assert "names a mcap file but --storage is sqlite3" in capsys.readouterr().err
    assert parse_remaps(["/a:=/b"]) == {"/a": "/b"}
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), os.listdir(tmp_path)

"""The bag commands: a camera bag from frames (video2bag), replay over DDS with /clock, and recording of the
ego or multiview node's outputs. Messages move as CDR bytes (rclpy publishes and receives serialised bytes), so nothing
is re-encoded on the way: a recorded message holds the published bytes (DDS appends zero padding up to a
multiple of 4 bytes, which CDR readers ignore).

Loop replay restarts the clock: every pass republishes the recorded stamps and /clock jumps back to the bag's
start, as ``ros2 bag play --loop`` does. The ego node takes a backward jump as a new session (it resets and
warns), so each pass is a clean, repeatable run; re-stamping instead would need every stamp inside every
message (headers, TF arrays) rewritten.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rclpy
from rclpy.clock import Clock as RosClock
from rclpy.clock_type import ClockType
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from rclpy.signals import SignalHandlerOptions
from rosbags.interfaces import Connection, QosDurability
from rosgraph_msgs.msg import Clock

from ...core.camera import PinholeCamera
from ..conversions import camera_info_msg, depth_msg, image_msg, time_msg
from ..launch.runner import ensure_local_discovery, use_shipped_dds_profile
from .io import (
    BagError,
    BagWriter,
    message_class,
    open_bag,
    output_storage,
    qos_profile,
    read_messages,
    select_connections,
)

# Topics whose publishers latch (transient local), also when a bag did not record the offered QoS.
LATCHED_TOPIC_SUFFIXES = ("/tf_static", "hand_mesh_topology")
# The ego node's outputs (relative names resolve in the recorder's namespace, like the node's own).
EGO_OUTPUT_TOPICS = (
    "hands", "hand_markers", "hand_paths/left", "hand_paths/right", "scene_map", "camera_odometry", "contacts",
    "hand_mesh_topology", "/tf", "/tf_static", "/diagnostics",
)  # fmt: skip
# The multiview node's outputs besides each camera's <name>/camera_info_estimated (multiview_output_topics).
MULTIVIEW_OUTPUT_TOPICS = ("hands", "hand_markers", "calibration", "/tf", "/tf_static", "/diagnostics")
CLOCK_TOPIC = "/clock"
# How long the end of a replay waits for reliable subscribers to acknowledge the last messages.
ACK_TIMEOUT_S = 5.0


@dataclass
class CameraFrame:
    """One frame to store: stamp, (H, W, 3) uint8 RGB, optional depth (uint16 mm or float32 m, same size)."""

    stamp_ns: int
    rgb: np.ndarray
    depth: np.ndarray | None = None


def camera_topics(prefix: str) -> dict[str, str]:
    """Image, camera_info and depth topic names under ``prefix`` (the launch file's defaults under /camera)."""
    base = "/" + prefix.strip("/") if prefix.strip("/") else ""
    return {"image": f"{base}/image_raw", "camera_info": f"{base}/camera_info", "depth": f"{base}/depth/image_raw"}


def write_camera_bag(
    out: Path,
    frames: Iterable[CameraFrame],
    camera: PinholeCamera,
    *,
    frame_id: str = "camera_optical_frame",
    topic_prefix: str = "/camera",
    storage: str | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write frames as sensor_msgs/Image (rgb8; depth 16UC1/32FC1) + CameraInfo, log time = image stamp, with
    the same conversions the node decodes with; returns the message count per topic."""
    topics = camera_topics(topic_prefix)
    sensor_qos = [qos_profile(5, reliable=False, transient_local=False)]
    with BagWriter(out, storage) as writer:
        writer.add_topic(topics["image"], "sensor_msgs/msg/Image", sensor_qos)
        writer.add_topic(topics["camera_info"], "sensor_msgs/msg/CameraInfo", sensor_qos)
        for count, frame in enumerate(frames, 1):
            if frame.rgb.shape[:2] != (camera.height, camera.width):
                raise ValueError(
                    f"frame {count - 1} is {frame.rgb.shape[1]}x{frame.rgb.shape[0]}, the camera {camera.width}x"
                    f"{camera.height}"
                )
            stamp = int(frame.stamp_ns)
            writer.write(topics["image"], stamp, serialize_message(image_msg(frame.rgb, frame_id, stamp)))
            writer.write(topics["camera_info"], stamp, serialize_message(camera_info_msg(camera, frame_id, stamp)))
            if frame.depth is not None:
                if not writer.has_topic(topics["depth"]):
                    writer.add_topic(topics["depth"], "sensor_msgs/msg/Image", sensor_qos)
                writer.write(topics["depth"], stamp, serialize_message(depth_msg(frame.depth, frame_id, stamp)))
            if on_frame is not None:
                on_frame(count)
    return dict(writer.counts)


def multiview_output_topics(cameras: Sequence[str]) -> list[str]:
    """Every output of a multiview node with these cameras (relative names, as the node publishes them)."""
    return [*MULTIVIEW_OUTPUT_TOPICS, *(f"{camera}/camera_info_estimated" for camera in cameras)]


def parse_remaps(items: Sequence[str]) -> dict[str, str]:
    """``from:=to`` topic renames; ValueError for anything else."""
    remaps = {}
    for item in items:
        source, sep, target = item.partition(":=")
        if not sep or not source or not target:
            raise ValueError(f"--remap expects FROM:=TO, got {item!r}")
        remaps[source] = target
    return remaps


def replay_qos(connection: Connection) -> QoSProfile:
    """Reliable (it matches reliable and best-effort subscribers alike); transient local when the bag says the
    topic was latched (or it is /tf_static / hand_mesh_topology), so late joiners still get it."""
    offered = connection.ext.offered_qos_profiles if hasattr(connection.ext, "offered_qos_profiles") else []
    latched = bool(offered) and all(q.durability == QosDurability.TRANSIENT_LOCAL for q in offered)
    latched = latched or connection.topic.endswith(LATCHED_TOPIC_SUFFIXES)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=1 if latched else 100,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


@dataclass
class ReplayStats:
    """What a replay did: messages per topic, clock messages, passes over the bag, bag and wall seconds."""

    published: dict[str, int] = field(default_factory=dict)
    clock_messages: int = 0
    passes: int = 0
    bag_s: float = 0.0
    wall_s: float = 0.0


class BagPlayer:
    """Publishes a bag's messages on ``node`` at their recorded pace (scaled by ``rate``) with /clock.

    /clock carries the bag's log time: once before each message whose time advanced, and at ``clock_hz``
    while waiting, so sim-time timers keep ticking during gaps. ``stop`` (a threading.Event) ends it early.
    ``on_publish(topic, log_time_ns)`` runs right after each message went out (the demo times its images' way
    through the node from there).
    """

    def __init__(
        self,
        node: Node,
        bag: Path,
        *,
        rate: float = 1.0,
        loop: bool = False,
        topics: Sequence[str] | None = None,
        remaps: dict[str, str] | None = None,
        clock_hz: float = 100.0,
        stop: threading.Event | None = None,
        on_publish: Callable[[str, int], None] | None = None,
    ) -> None:
        if not (rate > 0 and np.isfinite(rate)):
            raise ValueError(f"--rate must be a positive number, got {rate}")
        if not clock_hz > 0:
            raise ValueError(f"clock rate must be positive, got {clock_hz}")
        self.node, self.bag, self.rate, self.loop, self.clock_hz = node, Path(bag), rate, loop, clock_hz
        self.stop = stop or threading.Event()
        self.on_publish = on_publish
        self.reader = open_bag(self.bag)
        self.connections = select_connections(self.reader, topics)
        if not any(c.msgcount for c in self.connections):
            self.reader.close()
            raise BagError(f"{self.bag} has no messages on the topics to replay")
        remaps = remaps or {}
        unknown = sorted(set(remaps) - {c.topic for c in self.connections})
        if unknown:
            raise BagError(f"--remap of topic(s) not replayed from {self.bag}: {', '.join(unknown)}")
        self.stats = ReplayStats()
        self._publishers = {}
        for connection in self.connections:
            name = remaps.get(connection.topic, connection.topic)
            publisher = node.create_publisher(message_class(connection.msgtype), name, replay_qos(connection))
            self._publishers[connection.id] = (name, publisher)
            self.stats.published.setdefault(name, 0)
        self._clock = node.create_publisher(
            Clock, CLOCK_TOPIC, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )

    def close(self) -> None:
        """Release the bag and the publishers."""
        for _, publisher in self._publishers.values():
            self.node.destroy_publisher(publisher)
        self.node.destroy_publisher(self._clock)
        self.reader.close()

    def wait_for_subscribers(self, timeout_s: float) -> bool:
        """Block until every replayed topic and /clock have a subscriber (or ``timeout_s``); True when all have
        one. Nodes with use_sim_time subscribe to /clock, so the first stamps are not lost to discovery."""
        deadline = time.monotonic() + timeout_s
        publishers = [p for _, p in self._publishers.values()] + [self._clock]
        while not self.stop.is_set():
            if all(p.get_subscription_count() > 0 for p in publishers):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return False

    def _publish_clock(self, bag_ns: int) -> None:
        self._clock.publish(Clock(clock=time_msg(bag_ns)))
        self.stats.clock_messages += 1

    def _sleep_until(self, wall_target: float, bag_at: Callable[[float], int]) -> None:
        """Sleep to ``wall_target`` (monotonic s), publishing /clock at ``clock_hz`` meanwhile."""
        period = 1.0 / self.clock_hz
        while not self.stop.is_set():
            remaining = wall_target - time.monotonic()
            if remaining <= 0:
                return
            self.stop.wait(min(remaining, period))
            if time.monotonic() < wall_target:
                self._publish_clock(bag_at(time.monotonic()))

    def play(self) -> ReplayStats:
        """Play once, or until stopped with ``loop``; returns the statistics (``wall_s``: from the start to the
        last message published). Then waits (at most ACK_TIMEOUT_S) until reliable subscribers acknowledged
        everything, so a caller may tear the node down at once; an interrupt skips that wait."""
        start_wall = time.monotonic()
        try:
            self._play(self.reader.start_time)
        finally:
            self.stats.wall_s = time.monotonic() - start_wall
        for _, publisher in self._publishers.values():
            publisher.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
        return self.stats

    def _play(self, start_bag: int) -> None:
        while not self.stop.is_set():
            self.stats.passes += 1
            pass_wall = time.monotonic()
            last_clock = None

            def bag_at(now: float, pass_wall: float = pass_wall) -> int:
                return start_bag + int((now - pass_wall) * self.rate * 1e9)

            for connection, timestamp, data in read_messages(self.reader, self.connections):
                self._sleep_until(pass_wall + (timestamp - start_bag) / 1e9 / self.rate, bag_at)
                if self.stop.is_set():
                    break
                if last_clock is None or timestamp > last_clock:
                    self._publish_clock(timestamp)
                    last_clock = timestamp
                name, publisher = self._publishers[connection.id]
                publisher.publish(data)
                if self.on_publish is not None:
                    self.on_publish(name, timestamp)
                self.stats.published[name] += 1
                self.stats.bag_s = max(self.stats.bag_s, (timestamp - start_bag) / 1e9)
            if not self.loop:
                break


def subscription_qos(node: Node, topic: str) -> tuple[QoSProfile, list]:
    """rosbag2's adaptive choice for a recorder: reliable when every publisher is, transient local when every
    publisher latches; and the publishers' offered QoS (as rosbags records) for the bag."""
    infos = node.get_publishers_info_by_topic(topic)
    reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    latched = bool(infos) and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
    profile = QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=100,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )
    offered = [
        qos_profile(
            max(1, i.qos_profile.depth),
            reliable=i.qos_profile.reliability == ReliabilityPolicy.RELIABLE,
            transient_local=i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL,
        )
        for i in infos
    ]
    return profile, offered


class BagRecorder:
    """Subscribes (raw CDR bytes) to ``topics`` as their publishers appear and writes every message to
    ``writer`` at the node clock's time of arrival (sim time with use_sim_time). Safe under a multi-threaded
    executor: bag access is serialised by a lock."""

    def __init__(self, node: Node, writer: BagWriter, topics: Sequence[str]) -> None:
        self.node, self.writer = node, writer
        self._lock = threading.Lock()
        self.topics = [node.resolve_topic_name(t) for t in topics]
        self._subscriptions: dict[str, object] = {}
        # Graph polling runs on the steady clock: with use_sim_time a node-clock timer would wait for /clock, and
        # every topic that appeared meanwhile would lose its first messages.
        self._timer = node.create_timer(0.2, self.discover, clock=RosClock(clock_type=ClockType.STEADY_TIME))

    def discover(self) -> None:
        """Subscribe to the wanted topics that have publishers now (graph poll)."""
        types = dict(self.node.get_topic_names_and_types())
        for topic in self.topics:
            if topic in self._subscriptions or not types.get(topic) or not self.node.count_publishers(topic):
                continue
            msgtype = types[topic][0]
            if len(types[topic]) > 1:
                self.node.get_logger().warning(f"{topic} has several types {types[topic]}; recording {msgtype}")
            try:
                profile, offered = subscription_qos(self.node, topic)
                with self._lock:
                    self.writer.add_topic(topic, msgtype, offered)
                message_type = message_class(msgtype)
            except BagError as error:
                self.node.get_logger().error(f"not recording {topic}: {error}")
                self._subscriptions[topic] = None
                continue
            self._subscriptions[topic] = self.node.create_subscription(
                message_type, topic, self._writer_for(topic), profile, raw=True
            )
            self.node.get_logger().info(f"recording {topic} ({msgtype})")

    def subscribed(self, topic: str) -> bool:
        """Whether ``topic`` is recorded and its subscription matched a publisher: DDS matched the pair, so a publisher
        that builds messages only for subscribers (the ego node's overlay) counts this one too."""
        subscription = self._subscriptions.get(self.node.resolve_topic_name(topic))
        return subscription is not None and subscription.get_publisher_count() > 0

    def _writer_for(self, topic: str) -> Callable[[bytes], None]:
        def write(data: bytes) -> None:
            stamp = self.node.get_clock().now().nanoseconds
            with self._lock:
                if not self.writer.closed:  # messages still in flight after the bag was finalised are not kept
                    self.writer.write(topic, stamp, data)

        return write


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM end a run as KeyboardInterrupt, so the bag is finalised either way
    (also when the process was started with SIGINT ignored, as shells do for background jobs); the previous
    handlers come back afterwards. Only in the main thread: elsewhere the caller's handling stays."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _ros_context(ros_args: Sequence[str]) -> Context:
    """A fresh rclpy context without rclpy's signal handlers (Ctrl-C raises KeyboardInterrupt here, so the
    callers finalise their bags)."""
    ensure_local_discovery(os.environ)
    use_shipped_dds_profile(os.environ)
    context = Context()
    rclpy.init(args=["hand-scene", "--ros-args", *ros_args] if ros_args else None, context=context,
               signal_handler_options=SignalHandlerOptions.NO)  # fmt: skip
    return context


def replay_bag(
    bag: Path,
    *,
    rate: float = 1.0,
    loop: bool = False,
    topics: Sequence[str] | None = None,
    remaps: dict[str, str] | None = None,
    wait_for_subscribers_s: float = 0.0,
    ros_args: Sequence[str] = (),
) -> ReplayStats:
    """`hand-scene replay`: play a bag over DDS in a node of its own until done (or Ctrl-C with --loop)."""
    with stop_on_signals():
        return _replay(bag, rate, loop, topics, remaps, wait_for_subscribers_s, ros_args)


def _replay(
    bag: Path,
    rate: float,
    loop: bool,
    topics: Sequence[str] | None,
    remaps: dict[str, str] | None,
    wait_for_subscribers_s: float,
    ros_args: Sequence[str],
) -> ReplayStats:
    context = _ros_context(ros_args)
    try:
        node = Node("hand_scene_replay", context=context)
        player = BagPlayer(node, bag, rate=rate, loop=loop, topics=topics, remaps=remaps)
        try:
            if wait_for_subscribers_s > 0 and not player.wait_for_subscribers(wait_for_subscribers_s):
                node.get_logger().warning(f"not every topic has a subscriber after {wait_for_subscribers_s:g} s")
            try:
                return player.play()
            except KeyboardInterrupt:
                return player.stats
        finally:
            player.close()
            node.destroy_node()
    finally:
        context.try_shutdown()


def record_bag(
    out: Path,
    *,
    topics: Sequence[str] = EGO_OUTPUT_TOPICS,
    duration_s: float | None = None,
    storage: str | None = None,
    use_sim_time: bool = False,
    ros_args: Sequence[str] = (),
    on_ready: Callable[[], None] | None = None,
) -> dict[str, int]:
    """`hand-scene record`: record ``topics`` until ``duration_s`` (wall) or Ctrl-C/SIGTERM; the bag is
    finalised in every case. Returns the message count per recorded topic."""
    if duration_s is not None and not duration_s > 0:
        raise ValueError(f"--duration must be positive, got {duration_s}")
    output_storage(Path(out), storage)  # a bad name fails before anything starts
    with stop_on_signals():
        return _record(out, topics, duration_s, storage, use_sim_time, ros_args, on_ready)


def _record(
    out: Path,
    topics: Sequence[str],
    duration_s: float | None,
    storage: str | None,
    use_sim_time: bool,
    ros_args: Sequence[str],
    on_ready: Callable[[], None] | None,
) -> dict[str, int]:
    context = _ros_context(ros_args)
    try:
        node = Node("hand_scene_record", context=context)
        executor = SingleThreadedExecutor(context=context)
        try:  # the node goes in every case (Jazzy's context shutdown would leave it in the graph)
            if use_sim_time:
                node.set_parameters([Parameter("use_sim_time", value=True)])
            executor.add_node(node)
            with BagWriter(out, storage) as writer:
                recorder = BagRecorder(node, writer, topics)
                recorder.discover()
                if on_ready is not None:
                    on_ready()
                end = None if duration_s is None else time.monotonic() + duration_s
                try:
                    while end is None or time.monotonic() < end:
                        executor.spin_once(timeout_sec=0.05)
                except KeyboardInterrupt:
                    pass
        finally:
            executor.shutdown()
            node.destroy_node()
        return dict(writer.counts)
    finally:
        context.try_shutdown()

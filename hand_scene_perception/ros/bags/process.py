"""`hand-scene process BAG`: the ego pipeline over a recorded bag as fast as it runs, without DDS.

The camera messages are deserialised into the rclpy message classes and go through
:class:`~hand_scene_perception.ros.ego.processor.EgoMessageProcessor`, exactly what the ego node runs, paired by
stamp with the node's :class:`~hand_scene_perception.core.sync.StampPairer`; the node's output messages are
serialised into the output bag under the node's topic names, log time = the source image's stamp. Nothing is
dropped for lack of time: the bag is read in order and every complete image/info(/depth) set is processed.

``camera_pose_source`` tf reads the bag's /tf and /tf_static into a
:class:`~hand_scene_perception.core.transform_buffer.TransformBuffer`; a set waits (in bag log time, up to
``tf_wait_s`` past its stamp) for the transforms after its stamp that interpolation needs, then is processed, or
rejected with the reason when its camera pose is still not in TF.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage

from ...backends.base import HandExpert
from ...core.sync import StampPairer
from ...core.transform_buffer import TransformBuffer, TransformUnavailable
from ...pipelines.ego import EgoConfig
from ..conversions import NS_PER_S, InputError, time_ns
from ..ego.processor import EgoMessageProcessor
from ..tf_lookup import DEFAULT_TF_TIMEOUT_S, add_tf_message
from .io import BagError, BagWriter, open_bag, qos_profile, read_messages
from .transport import camera_topics

# Output topics, as the ego node publishes them in the root namespace, and their types.
OUTPUT_TYPES = {
    "/hands": "hand_scene_msgs/msg/HandArray",
    "/hand_markers": "visualization_msgs/msg/MarkerArray",
    "/hand_paths/left": "nav_msgs/msg/Path",
    "/hand_paths/right": "nav_msgs/msg/Path",
    "/scene_map": "sensor_msgs/msg/PointCloud2",
    "/camera_odometry": "nav_msgs/msg/Odometry",
    "/contacts": "hand_scene_msgs/msg/ContactArray",
    "/hand_mesh_topology": "hand_scene_msgs/msg/HandMeshTopology",
    "/tf": "tf2_msgs/msg/TFMessage",
}
INPUT_TYPES = {"image": "sensor_msgs/msg/Image", "camera_info": "sensor_msgs/msg/CameraInfo",
               "depth": "sensor_msgs/msg/Image"}  # fmt: skip
DEFAULT_TOLERANCE_NS = 10_000_000  # 10 ms: drivers stamp registered depth with the colour frame's stamp
TF_TOPICS = {"/tf": False, "/tf_static": True}  # topic: static
INPUT_CLASSES = {"image": Image, "camera_info": CameraInfo, "depth": Image}


@dataclass
class ProcessStats:
    """What a run did: frames processed, hand samples, inputs rejected (InputError) and unpaired, warnings."""

    frames: int = 0
    hand_samples: int = 0
    rejected: int = 0
    unpaired: dict[str, int] = field(default_factory=dict)
    warnings: Counter = field(default_factory=Counter)
    outcome: str = "complete"


def _input_topics(reader, image: str, info: str, depth: str | None, use_depth: bool, depth_given: bool) -> dict:
    """{stream: topic} for the bag, checked: present, of the right type; a default depth topic that the bag
    lacks means RGB only, a named one is an error."""
    types = {c.topic: c.msgtype for c in reader.connections}
    wanted = {"image": image, "camera_info": info}
    if use_depth and depth is not None and (depth in types or depth_given):
        wanted["depth"] = depth
    missing = [topic for topic in wanted.values() if topic not in types]
    if missing:
        raise BagError(f"topic(s) {', '.join(missing)} not in {reader.path}; it has: {', '.join(sorted(types))}")
    for stream, topic in wanted.items():
        if types[topic] != INPUT_TYPES[stream]:
            raise BagError(f"{topic} is {types[topic]}, expected {INPUT_TYPES[stream]} for the {stream} input")
    return wanted


def process_bag(
    bag: Path,
    out: Path,
    config: EgoConfig,
    *,
    image_topic: str | None = None,
    info_topic: str | None = None,
    depth_topic: str | None = None,
    use_depth: bool = True,
    storage: str | None = None,
    world_frame: str = "map",
    map_period_s: float = 1.0,
    tolerance_ns: int = DEFAULT_TOLERANCE_NS,
    tf_wait_s: float = DEFAULT_TF_TIMEOUT_S,
    detector: HandExpert | None = None,
    on_frame: Callable[[ProcessStats], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> ProcessStats:
    """Run the ego pipeline over ``bag`` and write the node's outputs to ``out`` (see the module note).

    Topics default to the /camera driver names; the scene map is written every ``map_period_s`` of bag time
    and once at the end. With ``config.camera_pose_source`` tf the camera poses come from the bag's /tf and
    /tf_static (``world_frame`` is then the TF frame they are looked up in; see the module notes for
    ``tf_wait_s``). Ctrl-C stops early with everything so far in ``out`` (``outcome`` says so)."""
    if not map_period_s > 0:
        raise ValueError(f"map period must be positive, got {map_period_s}")
    defaults = camera_topics("/camera")
    reader = open_bag(bag)
    try:
        wanted = _input_topics(reader, image_topic or defaults["image"], info_topic or defaults["camera_info"],
                               depth_topic or defaults["depth"], use_depth, depth_topic is not None)  # fmt: skip
        streams = {topic: stream for stream, topic in wanted.items()}
        connections = [c for c in reader.connections if c.topic in streams]
        tf_buffer = None
        if config.camera_pose_source == "tf":
            tf_connections = [c for c in reader.connections if c.topic in TF_TOPICS]
            if not tf_connections:
                raise BagError(f"camera_pose_source tf needs /tf or /tf_static in {reader.path}; it has: "
                               f"{', '.join(sorted({c.topic for c in reader.connections}))}")
            connections += tf_connections
            tf_buffer = TransformBuffer()
        stats = ProcessStats()
        processor = EgoMessageProcessor(config, world_frame=world_frame, detector=detector,
                                        transforms=None if tf_buffer is None else tf_buffer.lookup)  # fmt: skip
        try:
            with BagWriter(out, storage) as writer:
                for topic, msgtype in OUTPUT_TYPES.items():
                    latched = topic == "/hand_mesh_topology"
                    writer.add_topic(topic, msgtype, [qos_profile(1 if latched else 10, True, latched)])
                pairer = StampPairer(list(dict.fromkeys(streams.values())), tolerance_ns, max_pending=64)
                run = _BagRun(processor, writer, stats, pairer, int(map_period_s * NS_PER_S), on_frame, on_warning)
                run.run(reader, connections, streams, tf_buffer, int(tf_wait_s * NS_PER_S))
        finally:
            processor.close()
    finally:
        reader.close()
    return stats


class _BagRun:
    """The loop of :func:`process_bag`: pair, wait for TF where needed, process, serialise; Ctrl-C ends it with
    the outputs kept."""

    def __init__(self, processor: EgoMessageProcessor, writer: BagWriter, stats: ProcessStats, pairer: StampPairer,
                 map_period_ns: int, on_frame: Callable[[ProcessStats], None] | None,
                 on_warning: Callable[[str], None] | None) -> None:  # fmt: skip
        self.processor, self.writer, self.stats, self.pairer = processor, writer, stats, pairer
        self.map_period_ns = map_period_ns
        self.on_frame, self.on_warning = on_frame, on_warning
        self.last_map: int | None = None
        self.last_stamp: int | None = None

    def run(self, reader, connections, streams: dict[str, str], tf_buffer: TransformBuffer | None,
            tf_wait_ns: int) -> None:  # fmt: skip
        """Every message of ``connections`` in log-time order; a paired set waits for TF while it may still come."""
        waiting: deque[dict] = deque()

        def ready(matched: dict, log_ns: int) -> bool:
            if tf_buffer is None:
                return True
            image = matched["image"]
            stamp = time_ns(image.header.stamp)
            if log_ns - stamp >= tf_wait_ns or not image.header.frame_id:
                return True  # waited long enough (or nothing to wait for): processed now, rejected without a pose
            try:
                tf_buffer.lookup(self.processor.world_frame, image.header.frame_id, stamp)
            except TransformUnavailable:
                return False
            return True

        try:
            for connection, log_ns, data in read_messages(reader, connections):
                if connection.topic in TF_TOPICS and tf_buffer is not None:
                    rejected = add_tf_message(tf_buffer, deserialize_message(data, TFMessage),
                                              TF_TOPICS[connection.topic])  # fmt: skip
                    if rejected:
                        self._warn(f"{connection.topic}: {rejected} unusable transform(s) left out")
                else:
                    stream = streams[connection.topic]
                    msg = deserialize_message(data, INPUT_CLASSES[stream])
                    matched = self.pairer.push(stream, time_ns(msg.header.stamp), msg)
                    if matched is not None:
                        waiting.append(matched)
                while waiting and ready(waiting[0], log_ns):
                    self._process(waiting.popleft())
            while waiting:  # the bag ended: no more TF will come
                self._process(waiting.popleft())
        except KeyboardInterrupt:
            self.stats.outcome = "interrupted"
        finally:
            if self.last_stamp is not None and self.last_map != self.last_stamp:  # the final map
                self.writer.write("/scene_map", self.last_stamp,
                                  serialize_message(self.processor.scene_map_msg(self.last_stamp)))  # fmt: skip
            self.stats.unpaired = {name: count for name, count in self.pairer.dropped.items() if count}

    def _warn(self, text: str) -> None:
        self.stats.warnings[text] += 1
        if self.stats.warnings[text] == 1 and self.on_warning is not None:
            self.on_warning(text)

    def _process(self, matched: dict) -> None:
        """One paired set through the processor, its outputs into the bag (or its rejection counted)."""
        processor, writer, stats = self.processor, self.writer, self.stats
        try:
            result = processor.process(matched["image"], matched["camera_info"], matched.get("depth"))
        except InputError as error:
            stats.rejected += 1
            self._warn(f"input rejected: {error}")
            return
        stamp = result.result.stamp_ns
        if self.last_stamp is None:
            writer.write("/hand_mesh_topology", stamp, serialize_message(processor.mesh_topology_msg()))
        for text in result.warnings:
            self._warn(text)
        outputs = {
            "/hands": result.hands, "/camera_odometry": result.odometry,
            "/contacts": result.contacts, "/tf": TFMessage(transforms=result.transforms),
            "/hand_paths/left": result.paths["left"], "/hand_paths/right": result.paths["right"],
        }  # fmt: skip
        for topic, message in outputs.items():
            writer.write(topic, stamp, serialize_message(message))
        writer.write("/hand_markers", stamp, result.markers.serialized())
        if self.last_map is None or stamp - self.last_map >= self.map_period_ns or stamp < self.last_map:
            writer.write("/scene_map", stamp, serialize_message(processor.scene_map_msg(stamp)))
            self.last_map = stamp
        self.last_stamp = stamp
        stats.frames += 1
        stats.hand_samples += len(result.result.hands)
        if self.on_frame is not None:
            self.on_frame(stats)

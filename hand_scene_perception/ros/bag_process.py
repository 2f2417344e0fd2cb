"""`hand-scene process BAG`: the ego pipeline over a recorded bag as fast as it runs, without DDS.

The camera messages are deserialised into the rclpy message classes and go through
:class:`~hand_scene_perception.ros.ego_processor.EgoMessageProcessor`, exactly what the ego node runs, paired by
stamp with the node's :class:`~hand_scene_perception.ros.pairing.StampPairer`; the node's output messages are
serialised into the output bag under the node's topic names, log time = the source image's stamp. Nothing is
dropped for lack of time: the bag is read in order and every complete image/info(/depth) set is processed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage

from ..pipelines.ego import EgoConfig, HandDetector
from .bag_io import BagError, BagWriter, open_bag, qos_profile, read_messages
from .bags import camera_topics
from .conversions import NS_PER_S, InputError, time_ns
from .ego_processor import EgoMessageProcessor
from .pairing import StampPairer

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
    detector: HandDetector | None = None,
    on_frame: Callable[[ProcessStats], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> ProcessStats:
    """Run the ego pipeline over ``bag`` and write the node's outputs to ``out`` (see the module note).

    Topics default to the /camera driver names; the scene map is written every ``map_period_s`` of bag time
    and once at the end. Ctrl-C stops early with everything so far in ``out`` (``outcome`` says so)."""
    if not map_period_s > 0:
        raise ValueError(f"map period must be positive, got {map_period_s}")
    defaults = camera_topics("/camera")
    reader = open_bag(bag)
    try:
        wanted = _input_topics(reader, image_topic or defaults["image"], info_topic or defaults["camera_info"],
                               depth_topic or defaults["depth"], use_depth, depth_topic is not None)  # fmt: skip
        streams = {topic: stream for stream, topic in wanted.items()}
        connections = [c for c in reader.connections if c.topic in streams]
        stats = ProcessStats()
        processor = EgoMessageProcessor(config, world_frame=world_frame, detector=detector)
        try:
            with BagWriter(out, storage) as writer:
                for topic, msgtype in OUTPUT_TYPES.items():
                    latched = topic == "/hand_mesh_topology"
                    writer.add_topic(topic, msgtype, [qos_profile(1 if latched else 10, True, latched)])
                _run(reader, connections, streams, processor, writer, stats, tolerance_ns,
                     int(map_period_s * NS_PER_S), on_frame, on_warning)  # fmt: skip
        finally:
            processor.close()
    finally:
        reader.close()
    return stats


def _run(reader, connections, streams, processor, writer, stats, tolerance_ns, map_period_ns, on_frame, on_warning):
    """The loop of :func:`process_bag`: pair, process, serialise; Ctrl-C ends it with the outputs kept."""
    pairer = StampPairer(list(dict.fromkeys(streams.values())), tolerance_ns, max_pending=64)
    classes = {"image": Image, "camera_info": CameraInfo, "depth": Image}
    last_map = last_stamp = None

    def warn(text: str) -> None:
        stats.warnings[text] += 1
        if stats.warnings[text] == 1 and on_warning is not None:
            on_warning(text)

    try:
        for connection, _, data in read_messages(reader, connections):
            stream = streams[connection.topic]
            msg = deserialize_message(data, classes[stream])
            matched = pairer.push(stream, time_ns(msg.header.stamp), msg)
            if matched is None:
                continue
            try:
                result = processor.process(matched["image"], matched["camera_info"], matched.get("depth"))
            except InputError as error:
                stats.rejected += 1
                warn(f"input rejected: {error}")
                continue
            stamp = result.result.stamp_ns
            if last_stamp is None:
                writer.write("/hand_mesh_topology", stamp, serialize_message(processor.mesh_topology_msg()))
            for text in result.warnings:
                warn(text)
            outputs = {
                "/hands": result.hands, "/hand_markers": result.markers, "/camera_odometry": result.odometry,
                "/contacts": result.contacts, "/tf": TFMessage(transforms=result.transforms),
                "/hand_paths/left": result.paths["left"], "/hand_paths/right": result.paths["right"],
            }  # fmt: skip
            for topic, message in outputs.items():
                writer.write(topic, stamp, serialize_message(message))
            if last_map is None or stamp - last_map >= map_period_ns or stamp < last_map:
                writer.write("/scene_map", stamp, serialize_message(processor.scene_map_msg(stamp)))
                last_map = stamp
            last_stamp = stamp
            stats.frames += 1
            stats.hand_samples += len(result.result.hands)
            if on_frame is not None:
                on_frame(stats)
    except KeyboardInterrupt:
        stats.outcome = "interrupted"
    finally:
        if last_stamp is not None and last_map != last_stamp:  # the final map
            writer.write("/scene_map", last_stamp, serialize_message(processor.scene_map_msg(last_stamp)))
        stats.unpaired = {name: count for name, count in pairer.dropped.items() if count}

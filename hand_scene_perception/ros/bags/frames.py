"""A camera bag as frames for the offline tools that take videos (`hand-scene fit gaussian BAG`): each image with
the camera of the latest CameraInfo before it, in log-time order, without DDS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, Image

from ...core.camera import PinholeCamera
from ..conversions import InputError, check_image_size, image_rgb, pinhole_camera, time_ns
from .io import FILE_SUFFIXES, BagError, open_bag, read_messages
from .transport import camera_topics


def is_bag(path: Path) -> bool:
    """A .mcap/.db3 file or a rosbag2 directory (one with metadata.yaml)."""
    path = Path(path)
    return (path.is_file() and path.suffix in FILE_SUFFIXES) or (path.is_dir() and (path / "metadata.yaml").is_file())


Frame = tuple[int, int, np.ndarray, PinholeCamera]


def bag_camera_frames(path: Path, image_topic: str | None = None, info_topic: str | None = None,
                      max_frames: int | None = None) -> Iterator[Frame]:  # fmt: skip
    """(index, stamp ns, RGB image, camera) per image of ``image_topic`` (default /camera/image_raw) that has a
    CameraInfo on ``info_topic`` (default /camera/camera_info) before it (or, for the image logged just before the
    first CameraInfo, right after it); earlier images and unusable ones (another size, an unsupported encoding) are
    skipped. BagError when the topics are missing or no image could be used (with the last reason)."""
    defaults = camera_topics("/camera")
    image_topic, info_topic = image_topic or defaults["image"], info_topic or defaults["camera_info"]
    reader = open_bag(path)
    try:
        types = {c.topic: c.msgtype for c in reader.connections}
        for topic, expected in ((image_topic, "sensor_msgs/msg/Image"), (info_topic, "sensor_msgs/msg/CameraInfo")):
            if types.get(topic) != expected:
                raise BagError(f"{path} has no {expected} topic {topic}; it has: {', '.join(sorted(types))}")
        connections = [c for c in reader.connections if c.topic in (image_topic, info_topic)]
        camera, index, first = None, 0, None
        unusable: list[str] = []

        def frame(msg: Image) -> Frame | None:
            try:
                check_image_size(msg, camera)
                return index, time_ns(msg.header.stamp), image_rgb(msg), camera
            except InputError as error:
                unusable.append(str(error))
                return None

        for connection, _, data in read_messages(reader, connections):
            if max_frames is not None and index >= max_frames:
                return
            if connection.topic == info_topic:
                camera = pinhole_camera(deserialize_message(data, CameraInfo))
                if first is None:
                    continue
                msg, first = first, None  # the image logged just before the first CameraInfo
            elif camera is None:
                first = deserialize_message(data, Image)
                continue
            else:
                msg = deserialize_message(data, Image)
            out = frame(msg)
            if out is not None:
                yield out
                index += 1
        if index == 0 and unusable:
            raise BagError(f"none of the {len(unusable)} images on {image_topic} in {path} could be used: "
                           f"{unusable[-1]}")  # fmt: skip
    finally:
        reader.close()

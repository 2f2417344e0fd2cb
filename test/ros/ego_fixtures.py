"""Synthetic camera messages and an oracle detector keyed by stamp, shared by the ego node tests.

The oracle returns the generator's ground-truth landmarks (with pixel noise) for the frame whose stamp the
pipeline passes to ``detect``: deterministic hands without MediaPipe, even when frames cross DDS.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import CameraInfo, Image

from hand_scene_perception.backends.base import HandDetection
from hand_scene_perception.ros.conversions import camera_info_msg, depth_msg, image_msg
from hand_scene_perception.synth.oracle import oracle_landmarks
from hand_scene_perception.synth.sequence import SynthFrame, default_camera, generate_sequence, stamp_ns

CAMERA_FRAME = "head_camera_optical_frame"
# Small frames keep the tests fast on a 2-core machine; the geometry is the same as at 640x480.
WIDTH, HEIGHT = 320, 240
STAMP_OFFSET_NS = 1_000_000_000


def synthetic_frames(count: int, seed: int = 3, num_hands: int = 1) -> list[SynthFrame]:
    """``count`` rendered frames of one generator sequence at the test resolution."""
    return list(generate_sequence(seed, count, num_hands=num_hands, camera=default_camera(WIDTH, HEIGHT)))


def frame_stamp(frame: SynthFrame) -> int:
    """The stamp a frame is published with (never 0, which ROS tools treat as unset)."""
    return stamp_ns(frame, STAMP_OFFSET_NS)


@dataclass
class FrameMessages:
    """One frame as a camera driver publishes it."""

    image: Image
    info: CameraInfo
    depth: Image


def frame_messages(frame: SynthFrame, encoding: str = "rgb8") -> FrameMessages:
    """Image, CameraInfo and 32FC1 depth of one synthetic frame, stamped with :func:`frame_stamp`."""
    stamp = frame_stamp(frame)
    return FrameMessages(
        image=image_msg(frame.rgb, CAMERA_FRAME, stamp, encoding),
        info=camera_info_msg(frame.camera, CAMERA_FRAME, stamp),
        depth=depth_msg(frame.depth.astype(np.float32), CAMERA_FRAME, stamp),
    )


class StampOracle:
    """Ground-truth landmarks of the frame with the given stamp (HandDetector protocol)."""

    metric_size_sigma = 0.0  # ground-truth joints: their metric size is exact

    def __init__(self, frames: list[SynthFrame], noise_px: float = 0.5, seed: int = 0) -> None:
        self._frames = {frame_stamp(frame): frame for frame in frames}
        self.noise_px = noise_px
        self._rng = np.random.default_rng(seed)
        self.calls = 0

    def detect(self, image_rgb: np.ndarray, timestamp_ns: int | None = None) -> list[HandDetection]:
        """Landmarks of the frame stamped ``timestamp_ns`` (KeyError for a stamp it never saw)."""
        self.calls += 1
        return oracle_landmarks(self._frames[timestamp_ns], self.noise_px, self._rng)


EGO_INPUTS = {"image": Image, "camera_info": CameraInfo, "depth": Image}


class NodeHarness:
    """A node under test and a helper node (input publishers, output listeners) spinning in one executor thread.

    ``inputs`` (topic: message type) default to the ego node's camera inputs."""

    def __init__(self, context, node, source_qos=10, listen: dict | None = None, inputs: dict | None = None) -> None:
        self.context, self.node = context, node
        self.source = rclpy.create_node("ego_test_source", context=context)
        self.publishers = {name: self.source.create_publisher(kind, name, source_qos)
                           for name, kind in (inputs or EGO_INPUTS).items()}
        self.received: dict[str, list] = {}
        self.lock = threading.Lock()
        for topic, (kind, qos) in (listen or {}).items():
            self.listen(topic, kind, qos)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(node)
        self.executor.add_node(self.source)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        """Spin until :meth:`close` (which stops the loop before shutting the executor down, so no callback is
        under way while the executor's handles go)."""
        while not self._stop.is_set():
            self.executor.spin_once(timeout_sec=0.05)

    def listen(self, topic: str, kind, qos=10) -> None:
        self.received[topic] = []

        def keep(msg) -> None:
            with self.lock:
                self.received[topic].append(msg)

        self.source.create_subscription(kind, topic, keep, qos)

    def messages(self, topic: str) -> list:
        with self.lock:
            return list(self.received[topic])

    def publish(self, messages: FrameMessages, depth: bool = True) -> None:
        self.publishers["camera_info"].publish(messages.info)
        if depth:
            self.publishers["depth"].publish(messages.depth)
        self.publishers["image"].publish(messages.image)

    def wait_for(self, condition, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.02)
        return condition()

    def wait_connected(self, timeout_s: float = 10.0, topic: str = "image") -> None:
        assert self.wait_for(lambda: self.publishers[topic].get_subscription_count() > 0, timeout_s)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10.0)
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.source.destroy_node()

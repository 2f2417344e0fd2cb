"""Transforms from the TF tree a node hears, for ``camera_pose_source: tf`` (the ego node, ``hand-scene process``).

With ROS 2 from apt, ``tf2_ros`` is importable and does the work (its Buffer and TransformListener, as every ROS
node does). The PyPI wheels this package also runs on have no ``tf2_ros``: there a
:class:`~hand_scene_perception.core.transform_buffer.TransformBuffer` is fed by this node's own /tf and /tf_static
subscriptions (tf2's QoS: reliable, depth 100; /tf_static transient local, so a static transform published
before the node started still arrives). Either way a lookup answers T_target_source at a stamp or raises
:class:`~hand_scene_perception.core.transform_buffer.TransformUnavailable` with the reason.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from tf2_msgs.msg import TFMessage

from ..core.transform_buffer import DEFAULT_CACHE_TIME_S, TransformBuffer, TransformUnavailable
from .conversions import time_ns, transform_matrix

# Longest wait for a camera pose at an image stamp (the ego node's tf_timeout_s; bag time for hand-scene process).
DEFAULT_TF_TIMEOUT_S = 0.1
TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)  # fmt: skip


class TransformLookup(Protocol):
    """What the ego message processor needs from TF."""

    def lookup(self, target: str, source: str, stamp_ns: int, timeout_s: float = 0.0) -> np.ndarray:
        """T_target_source at ``stamp_ns``, waiting up to ``timeout_s``; TransformUnavailable when there is none."""
        ...

    def close(self) -> None:
        """Stop listening."""
        ...


def add_tf_message(buffer: TransformBuffer, msg: TFMessage, static: bool) -> int:
    """Put a TFMessage's transforms into ``buffer``; returns how many were unusable (empty frame names, a frame
    as its own parent, non-finite or non-rigid values) and left out."""
    rejected = 0
    for transform in msg.transforms:
        t, q = transform.transform.translation, transform.transform.rotation
        try:
            buffer.set_transform(transform.header.frame_id, transform.child_frame_id, time_ns(transform.header.stamp),
                                 (t.x, t.y, t.z), (q.x, q.y, q.z, q.w), static)  # fmt: skip
        except ValueError:
            rejected += 1
    return rejected


class SubscribedTransformBuffer:
    """A TransformBuffer fed by ``node``'s /tf and /tf_static subscriptions (used where tf2_ros is missing)."""

    def __init__(self, node: Node, cache_time_s: float = DEFAULT_CACHE_TIME_S) -> None:
        self.buffer = TransformBuffer(cache_time_s)
        self.rejected = 0
        self._node = node
        self._subscriptions = [
            node.create_subscription(TFMessage, "/tf", lambda msg: self._add(msg, False), TF_QOS),
            node.create_subscription(TFMessage, "/tf_static", lambda msg: self._add(msg, True), TF_STATIC_QOS),
        ]

    def _add(self, msg: TFMessage, static: bool) -> None:
        self.rejected += add_tf_message(self.buffer, msg, static)

    def lookup(self, target: str, source: str, stamp_ns: int, timeout_s: float = 0.0) -> np.ndarray:
        """See :meth:`TransformBuffer.lookup`."""
        return self.buffer.lookup(target, source, stamp_ns, timeout_s)

    def close(self) -> None:
        """Destroy the subscriptions."""
        for subscription in self._subscriptions:
            self._node.destroy_subscription(subscription)
        self._subscriptions = []


class Tf2RosLookup:
    """tf2_ros's Buffer and TransformListener on ``node`` (ROS 2 installs from apt)."""

    def __init__(self, node: Node, tf2_ros, cache_time_s: float = DEFAULT_CACHE_TIME_S) -> None:
        self._tf2_ros = tf2_ros
        self._buffer = tf2_ros.Buffer(cache_time=Duration(seconds=cache_time_s), node=node)
        self._listener = tf2_ros.TransformListener(self._buffer, node)

    def lookup(self, target: str, source: str, stamp_ns: int, timeout_s: float = 0.0) -> np.ndarray:
        """tf2_ros's lookup_transform, its exceptions turned into TransformUnavailable."""
        try:
            transform = self._buffer.lookup_transform(target, source, Time(nanoseconds=stamp_ns),
                                                      timeout=Duration(seconds=timeout_s))  # fmt: skip
        except self._tf2_ros.TransformException as error:
            raise TransformUnavailable(f"{type(error).__name__}: {error}") from None
        return transform_matrix(transform)

    def close(self) -> None:
        """Unsubscribe the listener."""
        self._listener.unregister()


def transform_lookup(node: Node, cache_time_s: float = DEFAULT_CACHE_TIME_S) -> TransformLookup:
    """TF lookups for ``node``: tf2_ros where importable, else :class:`SubscribedTransformBuffer`."""
    try:
        import tf2_ros
    except ImportError:
        return SubscribedTransformBuffer(node, cache_time_s)
    return Tf2RosLookup(node, tf2_ros, cache_time_s)

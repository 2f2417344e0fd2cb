"""The node of a helper process (a publisher the tests start as its own OS process, so that traffic crosses a real
DDS transport): refused without local discovery, rclpy torn down however the process ends."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import rclpy
from rclpy.node import Node


@contextmanager
def local_node(name: str) -> Iterator[Node]:
    """rclpy initialised and one node named ``name``; exits the process when discovery could leave this machine."""
    if os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") not in ("LOCALHOST", "OFF"):
        sys.exit("refusing to start rclpy without ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST")
    rclpy.init()
    node = rclpy.create_node(name)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown()

"""A length-capped trajectory that publishes as nav_msgs/Path.

Each pose's PoseStamped is built once and reused by later Path messages, so a Path message every frame costs
the new pose, not the whole history, in Python. Serialising such a message still visits every pose (~4 ms for
1000 poses, with the interpreter lock held); :meth:`CappedPath.cdr` gives the same bytes from each pose's CDR
kept since it was added.
"""

from __future__ import annotations

import struct
from collections import deque

import numpy as np
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path
from rclpy.serialization import serialize_message

from .conversions import header_msg, pose_msg

_ENCAPSULATION_BYTES = 4  # the CDR header before a serialised message's fields


class CappedPath:
    """The newest ``max_poses`` (stamp_ns, 4x4 T_world) poses, oldest first, stamps non-decreasing."""

    def __init__(self, max_poses: int) -> None:
        if max_poses < 1:
            raise ValueError(f"max_poses must be at least 1, got {max_poses}")
        self.max_poses = int(max_poses)
        self._poses: deque[tuple[int, np.ndarray]] = deque(maxlen=self.max_poses)
        self._messages: deque[PoseStamped | None] = deque(maxlen=self.max_poses)
        # each pose's CDR as a sequence element that starts 8-byte aligned (every element after the first does:
        # a PoseStamped ends with a float64), for the frame id it was built in
        self._elements: deque[tuple[str, bytes] | None] = deque(maxlen=self.max_poses)

    def __len__(self) -> int:
        return len(self._poses)

    def clear(self) -> None:
        """Forget every pose (e.g. on reset or when time goes backwards)."""
        self._poses.clear()
        self._messages.clear()
        self._elements.clear()

    def append(self, stamp_ns: int, T_world: np.ndarray) -> None:
        """Add a pose; the oldest is dropped beyond the cap. A repeated stamp replaces the newest pose.

        Raises ValueError for a stamp older than the newest (clear the path first when time jumps back).
        """
        matrix = np.array(T_world, dtype=np.float64)
        if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
            raise ValueError(f"T_world must be a finite 4x4 matrix, got shape {matrix.shape}")
        stamp = int(stamp_ns)
        if self._poses and stamp < self._poses[-1][0]:
            raise ValueError(f"pose stamp {stamp} is older than the newest {self._poses[-1][0]}; clear() first")
        if self._poses and stamp == self._poses[-1][0]:
            self._poses.pop()
            self._messages.pop()
            self._elements.pop()
        self._poses.append((stamp, matrix))
        self._messages.append(None)
        self._elements.append(None)

    def msg(self, frame_id: str) -> Path:
        """nav_msgs/Path of the kept poses in frame_id, stamped with the newest pose (0 when empty)."""
        messages = list(self._messages)
        for index, cached in enumerate(messages):
            if cached is None or cached.header.frame_id != frame_id:
                stamp, matrix = self._poses[index]
                messages[index] = PoseStamped(header=header_msg(frame_id, stamp), pose=pose_msg(matrix))
                self._messages[index] = messages[index]
        newest = self._poses[-1][0] if self._poses else 0
        return Path(header=header_msg(frame_id, newest), poses=messages)

    def cdr(self, frame_id: str) -> bytes:
        """``serialize_message(self.msg(frame_id))``, built from each pose's CDR (what a publisher takes)."""
        message = self.msg(frame_id)
        empty = serialize_message(Path(header=message.header))  # ... the header, then the uint32 pose count 0
        if not message.poses:
            return empty
        # The first pose's padding depends on where the count ends, so it is serialised in place; the others'
        # bytes are kept.
        first = serialize_message(Path(header=message.header, poses=message.poses[:1]))[len(empty):]
        elements = []
        for index in range(1, len(message.poses)):
            kept = self._elements[index]
            if kept is None or kept[0] != frame_id:
                kept = (frame_id, serialize_message(message.poses[index])[_ENCAPSULATION_BYTES:])
                self._elements[index] = kept
            elements.append(kept[1])
        return b"".join([empty[:-4], struct.pack("<I", len(message.poses)), first, *elements])

    def poses_between(self, start_ns: int, end_ns: int) -> list[tuple[int, np.ndarray]]:
        """Kept (stamp_ns, T_world copy) with start_ns <= stamp <= end_ns, oldest first."""
        return [(stamp, matrix.copy()) for stamp, matrix in self._poses if start_ns <= stamp <= end_ns]

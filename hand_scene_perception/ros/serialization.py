"""Serialising messages whose large ``geometry_msgs/Point[]`` fields are numpy arrays, without a Point per element.

rclpy converts a message to CDR element by element in Python: a hand mesh marker (a TRIANGLE_LIST of 4614 points)
costs ~15 ms to fill with Point objects and ~20 ms more to serialise, per hand and update. Here rclpy serialises
the message with a one-point placeholder in each such field, and the placeholder's 24 bytes are replaced by the
array's bytes: CDR stores a ``Point[]`` as a uint32 count, padding to 8 and 24 bytes per point, and replacing one
point by n shifts what follows by a multiple of 8, so every later field keeps its alignment. The result has the
length of what ``serialize_message`` gives for the filled message and deserialises to the same message (padding
bytes, whose content CDR leaves open, may differ; tested on every ROS line), and publishers take it as is
(``Publisher.publish(bytes)``), as do bag writers.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
from geometry_msgs.msg import Point
from rclpy.serialization import serialize_message

# CDR encapsulation header of little-endian plain CDR, what every rmw on x86 and ARM writes
_CDR_LITTLE_ENDIAN = b"\x00\x01"
_POINT_BYTES = 24
# Placeholder coordinates: subnormal doubles no geometry produces; the x coordinate numbers the field
_MARKER_Y, _MARKER_Z = 3.141592653589793e-310, -2.718281828459045e-310


def _placeholder(index: int) -> Point:
    return Point(x=float(index), y=_MARKER_Y, z=_MARKER_Z)


def serialize_with_point_arrays(message: object, fields: Sequence[tuple[object, np.ndarray]]) -> bytes:
    """``serialize_message(message)`` with each ``owner.points`` of ``fields`` (owner, (N, 3) array) set to the
    array's points. The owners are sub-messages of ``message`` (e.g. the markers of a MarkerArray); their
    ``points`` are left empty afterwards (the arrays are the data)."""
    arrays = []
    for owner, points in fields:
        values = np.ascontiguousarray(points, dtype="<f8")
        if values.ndim != 2 or values.shape[1] != 3:
            raise ValueError(f"points must be (N, 3), got shape {values.shape}")
        arrays.append(values)
        owner.points = []
    spliced = [(owner, values) for (owner, _), values in zip(fields, arrays, strict=True) if len(values)]
    for index, (owner, _) in enumerate(spliced):
        owner.points = [_placeholder(index)]
    once = serialize_message(message)
    if not spliced:
        return once
    for index, (owner, _) in enumerate(spliced):
        owner.points = [_placeholder(index)] * 2
    twice = serialize_message(message)
    for owner, _ in spliced:
        owner.points = []
    if once[:2] != _CDR_LITTLE_ENDIAN:
        raise RuntimeError(f"unexpected CDR encapsulation {once[:4].hex()} (expected little-endian plain CDR)")
    found = sorted([(once.find(struct.pack("<3d", float(index), _MARKER_Y, _MARKER_Z)), values)
                    for index, (_, values) in enumerate(spliced)], key=lambda item: item[0])  # message order
    pieces, start = [], 0
    for earlier, (at, values) in enumerate(found):
        count_at = _count_offset(once, twice, at, earlier)
        pieces += [once[start:count_at], struct.pack("<I", len(values)), once[count_at + 4:at], values.tobytes()]
        start = at + _POINT_BYTES
    pieces.append(once[start:])
    return b"".join(pieces)


def _count_offset(once: bytes, twice: bytes, at: int, earlier: int) -> int:
    """Where the uint32 count of the placeholder at ``at`` is: right before it, or before 4 bytes of padding (which
    depends on where the count falls). Told apart by the second serialisation, where that count is 2 and each
    of the ``earlier`` fields is one point longer."""
    if at < 0:
        raise RuntimeError("placeholder point not found in the serialised message")
    shift = earlier * _POINT_BYTES
    for count_at in (at - 4, at - 8):
        if once[count_at:count_at + 4] == struct.pack("<I", 1) and \
                twice[count_at + shift:count_at + shift + 4] == struct.pack("<I", 2):  # fmt: skip
            return count_at
    raise RuntimeError("no sequence count before the placeholder point")

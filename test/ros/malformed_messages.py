"""Malformed camera messages for the nodes' bad-input sweeps: named cases and seeded random ones, each a spoiled
copy of a valid (Image, CameraInfo) pair, as a broken driver, a wrong remap or a corrupt bag would send them.

Every case can be published: rclpy's field types are kept (a uint32 stays a non-negative integer), only the values
are wrong. ``previous_ns`` is the stamp the camera sent before, for the stamp cases (repeated, going back).
"""

from __future__ import annotations

import array
import copy
import math
from collections.abc import Callable

import numpy as np
from sensor_msgs.msg import CameraInfo, Image

Spoil = Callable[[Image, CameraInfo, int], None]

# Accepted encodings given another encoding's bytes, ROS encodings the nodes do not take, and words that are none.
ENCODINGS = ("mono8", "rgba8", "bgra8", "mono16", "rgb16", "bgr16", "rgba16", "bgra16", "8UC1", "8UC3", "16UC1",
             "32FC1", "64FC1", "bayer_rggb8", "bayer_bggr16", "yuv422", "yuv422_yuy2", "nv21", "jpeg", "", "RGB8",
             "rgb8 ")  # fmt: skip
BAD_NUMBERS = (0.0, -1.0, -500.0, math.nan, math.inf, -math.inf, 1e-12, 1e12)
SECOND_NS = 1_000_000_000


def _set_stamp(msg: Image | CameraInfo, stamp_ns: int) -> None:
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(max(0, stamp_ns), SECOND_NS)


def _stamp_ns(msg: Image | CameraInfo) -> int:
    return msg.header.stamp.sec * SECOND_NS + msg.header.stamp.nanosec


def _data(image: Image, length: int) -> None:
    """Image data cut or padded (zeros) to ``length`` bytes."""
    data = bytes(image.data)[:length]
    image.data = array.array("B", data + bytes(max(0, length - len(data))))


def _k(index: int, value: float) -> Spoil:
    def spoil(image: Image, info: CameraInfo, previous_ns: int) -> None:
        k = list(info.k)
        k[index] = value
        info.k = k

    return spoil


def _field(message: str, name: str, value: Callable[[Image, CameraInfo], object]) -> Spoil:
    def spoil(image: Image, info: CameraInfo, previous_ns: int) -> None:
        target = image if message == "image" else info
        setattr(target, name, value(image, info))

    return spoil


def _stamp(shift: Callable[[int, int], int]) -> Spoil:
    """Both messages stamped ``shift(own stamp, previous_ns)``."""

    def spoil(image: Image, info: CameraInfo, previous_ns: int) -> None:
        stamp = shift(_stamp_ns(image), previous_ns)
        _set_stamp(image, stamp)
        _set_stamp(info, stamp)

    return spoil


def _encoding(word: str) -> Spoil:
    return _field("image", "encoding", lambda image, info: word)


NAMED: dict[str, Spoil] = {
    **{f"encoding {word!r}": _encoding(word) for word in ENCODINGS},
    "width 0": _field("image", "width", lambda image, info: 0),
    "height 0": _field("image", "height", lambda image, info: 0),
    "width + 1": _field("image", "width", lambda image, info: image.width + 1),
    "height + 1": _field("image", "height", lambda image, info: image.height + 1),
    "width x 2": _field("image", "width", lambda image, info: image.width * 2),
    "width 2^31": _field("image", "width", lambda image, info: 2**31),
    "width and height swapped": lambda image, info, previous: (
        setattr(image, "width", image.height), setattr(image, "height", image.width)),
    "step 0": _field("image", "step", lambda image, info: 0),
    "step one byte short": _field("image", "step", lambda image, info: image.step - 1),
    "step padded, data not": _field("image", "step", lambda image, info: image.step + 8),
    "step 2^32 - 1": _field("image", "step", lambda image, info: 2**32 - 1),
    "data empty": lambda image, info, previous: _data(image, 0),
    "data one byte short": lambda image, info, previous: _data(image, len(image.data) - 1),
    "data half": lambda image, info, previous: _data(image, len(image.data) // 2),
    "data one byte long": lambda image, info, previous: _data(image, len(image.data) + 1),
    "big-endian": _field("image", "is_bigendian", lambda image, info: 1),
    "K zero": _field("info", "k", lambda image, info: [0.0] * 9),
    "K NaN": _field("info", "k", lambda image, info: [math.nan] * 9),
    "fx negative": _k(0, -300.0),
    "fy negative": _k(4, -300.0),
    "fx inf": _k(0, math.inf),
    "cx NaN": _k(2, math.nan),
    "K[2,2] zero": _k(8, 0.0),
    "camera_info twice as wide": _field("info", "width", lambda image, info: info.width * 2),
    "camera_info one row short": _field("info", "height", lambda image, info: info.height - 1),
    "camera_info 0x0": lambda image, info, previous: (setattr(info, "width", 0), setattr(info, "height", 0)),
    "D NaN": _field("info", "d", lambda image, info: array.array("d", [math.nan] * 5)),
    "D 100 coefficients": _field("info", "d", lambda image, info: array.array("d", [0.1] * 100)),
    "distortion model unknown": _field("info", "distortion_model", lambda image, info: "fisheye_kb99"),
    "P NaN": _field("info", "p", lambda image, info: [math.nan] * 12),
    "binning 2": _field("info", "binning_x", lambda image, info: 2),
    "region of interest partial": lambda image, info, previous: (
        setattr(info.roi, "width", 10), setattr(info.roi, "height", 10)),
    "image frame id empty": lambda image, info, previous: setattr(image.header, "frame_id", ""),
    "camera_info frame id empty": lambda image, info, previous: setattr(info.header, "frame_id", ""),
    "camera_info of another frame": lambda image, info, previous: setattr(info.header, "frame_id", "other_frame"),
    "stamp repeated": _stamp(lambda own, previous: previous),
    "stamp 1 ms back": _stamp(lambda own, previous: previous - 1_000_000),
    "stamp 5 s back": _stamp(lambda own, previous: own - 5 * SECOND_NS),
    "stamp zero": _stamp(lambda own, previous: 0),
    "stamp an hour ahead": _stamp(lambda own, previous: own + 3600 * SECOND_NS),
}  # fmt: skip


def spoiled(image: Image, info: CameraInfo, spoil: Spoil, previous_ns: int) -> tuple[Image, CameraInfo]:
    """Copies of the valid pair with ``spoil`` applied (the originals are left as they are)."""
    image, info = copy.deepcopy(image), copy.deepcopy(info)
    spoil(image, info, previous_ns)
    return image, info


def _random_spoil(rng: np.random.Generator, image: Image, info: CameraInfo) -> Spoil:
    """One random wrong value of one random field (sizes around the real ones, bad numbers in K, D and P, any
    encoding), or one of the named cases."""
    choice = int(rng.integers(8))
    size = lambda real: int(rng.choice([0, 1, real - 1, real + 1, 2 * real, int(rng.integers(0, 4 * real + 2))]))  # noqa: E731
    if choice == 0:
        name = str(rng.choice(["width", "height", "step"]))
        value = size(getattr(image, name))
        return _field("image", name, lambda image, info: value)
    if choice == 1:
        length = size(len(image.data))
        return lambda image, info, previous: _data(image, length)
    if choice == 2:
        return _k(int(rng.integers(9)), float(rng.choice(BAD_NUMBERS)))
    if choice == 3:
        name = str(rng.choice(["width", "height"]))
        value = size(getattr(info, name))
        return _field("info", name, lambda image, info: value)
    if choice == 4:
        values = rng.choice(BAD_NUMBERS, size=int(rng.integers(0, 9)))
        return _field("info", "d", lambda image, info: array.array("d", values.tolist()))
    if choice == 5:
        word = str(rng.choice(ENCODINGS)) if rng.random() < 0.7 else "".join(rng.choice(list("abcdefgh0123_"), 6))
        return _encoding(word)
    if choice == 6:
        shift, repeat = int(rng.integers(-10 * SECOND_NS, SECOND_NS)), rng.random() < 0.5
        return _stamp(lambda own, previous: previous if repeat else own + shift)
    names = list(NAMED)
    return NAMED[names[int(rng.integers(len(names)))]]


def random_malformed(
    rng: np.random.Generator, image: Image, info: CameraInfo, previous_ns: int
) -> tuple[Image, CameraInfo]:
    """Copies of the valid pair with one to three random spoils (:func:`_random_spoil`)."""
    image, info = copy.deepcopy(image), copy.deepcopy(info)
    for _ in range(int(rng.integers(1, 4))):
        _random_spoil(rng, image, info)(image, info, previous_ns)
    return image, info

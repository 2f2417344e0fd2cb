"""Colour images as the pipelines want them: (H, W, 3) uint8 RGB.

Why: cameras and files deliver grey, RGBA and 16-bit colour too; each pipeline accepts them through one
place with a defined conversion, so none of them fails deep inside a stage on an unexpected layout.
Channel order cannot be read off an array: 4-channel input is taken as RGBA (a BGR(A) source is
converted where its order is known, e.g. the ROS image conversion by its ``encoding``).
"""

from __future__ import annotations

import numpy as np


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """(H, W) grey, (H, W, 1) grey, (H, W, 3) RGB or (H, W, 4) RGBA, as uint8 or uint16 → (H, W, 3) uint8 RGB.

    uint16 keeps the top 8 bits (full range 0..65535 → 0..255). Alpha is dropped. Already-RGB uint8 input
    is returned as is (no copy). Anything else raises ValueError saying what was received.
    """
    array = np.asarray(image)
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image must be uint8 or uint16, got {array.dtype} {array.shape}")
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        channels = array.shape[2]
    elif array.ndim == 2:
        channels = 0
    else:
        raise ValueError(f"image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"image is empty: {array.shape}")
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    if channels == 3:
        return array
    if channels == 4:
        return np.ascontiguousarray(array[:, :, :3])
    grey = array if channels == 0 else array[:, :, 0]
    return np.repeat(grey[:, :, None], 3, axis=2)

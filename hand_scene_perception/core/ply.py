"""Binary little-endian PLY files of one vertex element, written atomically in one buffer.

The package writes PLY for point clouds a viewer opens (the ego map: x y z + colour) and for Gaussian splats (the
3DGS layout). Both are a header and one packed array, so a numpy structured array is the whole writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .files import atomic_write

_PLY_TYPES = {np.dtype("<f4"): "float", np.dtype("u1"): "uchar"}


def write_vertex_ply(path: str | Path, properties: Sequence[tuple[str, np.ndarray]], comment: str = "") -> None:
    """``properties``: (name, (N,) values) in file order, each float32 or uint8 as given; every column must have
    the same length. Raises ValueError otherwise."""
    if not properties:
        raise ValueError("a PLY vertex element needs at least one property")
    count = len(properties[0][1])
    dtype = []
    for name, values in properties:
        values = np.asarray(values)
        kind = values.dtype
        if values.ndim != 1 or len(values) != count or kind not in _PLY_TYPES:
            raise ValueError(f"PLY property {name!r} must be ({count},) float32 or uint8, got "
                             f"{values.shape} {values.dtype}")  # fmt: skip
        dtype.append((name, kind))
    vertex = np.empty(count, dtype)
    for name, values in properties:
        vertex[name] = values
    lines = ["ply", "format binary_little_endian 1.0", *([f"comment {comment}"] if comment else []),
             f"element vertex {count}", *(f"property {_PLY_TYPES[kind]} {name}" for name, kind in dtype),
             "end_header"]  # fmt: skip
    with atomic_write(path) as handle:
        handle.write(("\n".join(lines) + "\n").encode("ascii"))
        handle.write(vertex.tobytes())

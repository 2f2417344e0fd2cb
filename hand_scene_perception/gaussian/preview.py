"""A picture of a fitted avatar on one view: the input crop, the avatar rendered with the view's pose, and the same
pose seen from a virtual camera orbiting the hand (what a novel view of the avatar looks like)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from ..core.files import atomic_write
from ..core.hand_model import HandModel
from .mesh_gaussians import MeshGaussians
from .per_video import HandView, posed_vertices
from .raster import render_gaussians

# The novel view: the camera orbits the hand's centre by this angle about the view's vertical (image y) axis.
ORBIT_DEG = 60.0


def orbit_vertices(vertices: torch.Tensor, degrees: float) -> torch.Tensor:
    """``vertices`` (V, 3) in a camera frame as a camera orbiting their centroid by ``degrees`` about the camera's
    y axis would see them (the same as turning the hand the other way about its centre)."""
    angle = math.radians(degrees)
    rotation = torch.tensor([[math.cos(angle), 0.0, math.sin(angle)], [0.0, 1.0, 0.0],
                             [-math.sin(angle), 0.0, math.cos(angle)]], dtype=vertices.dtype)  # fmt: skip
    centre = vertices.mean(dim=0)
    return (vertices - centre) @ rotation.T + centre


def write_preview(path: Path, model: HandModel, avatar: MeshGaussians, view: HandView) -> Path:
    """Write the input | render | novel view strip of ``view`` as a PNG (atomically) and return its path."""
    with torch.no_grad():
        vertices = posed_vertices(model, view)
        render = render_gaussians(avatar(vertices), view.camera, cull_back_facing=True).image.numpy()
        novel = render_gaussians(avatar(orbit_vertices(vertices, ORBIT_DEG)), view.camera,
                                 cull_back_facing=True).image.numpy()  # fmt: skip
    strip = np.hstack([view.image, render, novel])
    pixels = cv2.cvtColor(np.clip(strip * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise ValueError(f"could not encode the preview for {path}")
    with atomic_write(path) as handle:
        handle.write(encoded.tobytes())
    return path

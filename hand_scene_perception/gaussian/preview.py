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


def orbit_transform(centre: np.ndarray, degrees: float) -> np.ndarray:
    """(4, 4) from a camera's frame to that of the camera orbited by ``degrees`` about its y axis through ``centre``
    (3,) (same intrinsics): the hand seen from aside, with its light where it was learnt."""
    angle = math.radians(degrees)
    rotation = np.array([[math.cos(angle), 0.0, math.sin(angle)], [0.0, 1.0, 0.0],
                         [-math.sin(angle), 0.0, math.cos(angle)]])  # fmt: skip
    transform = np.eye(4)
    transform[:3, :3] = rotation
    transform[:3, 3] = centre - rotation @ centre
    return transform


def write_preview(path: Path, model: HandModel, avatar: MeshGaussians, view: HandView) -> Path:
    """Write the input | render | novel view strip of ``view`` as a PNG (atomically) and return its path."""
    with torch.no_grad():
        vertices = posed_vertices(model, view)
        gaussians = avatar(vertices)
        render = render_gaussians(gaussians, view.camera, cull_back_facing=True).image.numpy()
        orbit = orbit_transform(vertices.double().numpy().mean(axis=0), ORBIT_DEG)
        novel = render_gaussians(gaussians, view.camera, torch.as_tensor(orbit, dtype=torch.float32),
                                 cull_back_facing=True).image.numpy()  # fmt: skip
    strip = np.hstack([view.image, render, novel])
    pixels = cv2.cvtColor(np.clip(strip * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise ValueError(f"could not encode the preview for {path}")
    with atomic_write(path) as handle:
        handle.write(encoded.tobytes())
    return path

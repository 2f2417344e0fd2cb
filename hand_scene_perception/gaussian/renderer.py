"""Rendering fitted avatars of tracked hands: what the ``gaussian_hands`` node does per message, without ROS.

:class:`AvatarRenderer` holds one avatar per side with its pose-free appearance computed once (the MLPs are most of
a frame's cost), poses an avatar on a tracked mesh, and renders the posed hands from the filming camera (the
overlay) or from a virtual camera (:func:`virtual_camera`: the filming camera turned about the hands' centre by a
yaw and a pitch, at the same or a given distance, with its own image size and field of view).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core.camera import PinholeCamera
from ..core.hand_model import HandModel, HandSide
from .avatar_file import load_avatar
from .mesh_gaussians import Gaussians, MeshGaussians, matrix_to_quaternion
from .raster import Rendering, quaternion_matrices, render_gaussians

_FIELDS = ("positions", "rotations", "scales", "colors", "opacities")


def concatenated(parts: list[Gaussians]) -> Gaussians:
    """One set of the Gaussians of several (each unbatched): drawn together, in one depth order."""
    return Gaussians(*(torch.cat([getattr(part, name) for part in parts]) for name in _FIELDS))


def transformed(gaussians: Gaussians, transform: np.ndarray) -> Gaussians:
    """The same Gaussians expressed through ``transform`` (4, 4, rigid): positions moved, rotations turned (w ≥ 0)."""
    matrix = torch.as_tensor(transform, dtype=gaussians.positions.dtype)
    return Gaussians(gaussians.positions @ matrix[:3, :3].T + matrix[:3, 3],
                     matrix_to_quaternion(matrix[:3, :3] @ quaternion_matrices(gaussians.rotations)),
                     gaussians.scales, gaussians.colors, gaussians.opacities)  # fmt: skip


class HandNotRenderable(ValueError):
    """A tracked hand this renderer cannot draw (no avatar for its side, another mesh, non-finite vertices)."""


@dataclass(frozen=True)
class ViewSpec:
    """The virtual camera: image size, horizontal field of view, yaw and pitch (degrees) of the filming camera's
    direction about the hands' centre, and its distance to that centre (0: the filming camera's own)."""

    width: int = 256
    height: int = 256
    fov_deg: float = 60.0
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    distance_m: float = 0.0

    def __post_init__(self) -> None:
        if self.width < 8 or self.height < 8:
            raise ValueError(f"render size must be at least 8x8, got {self.width}x{self.height}")
        if not 1.0 <= self.fov_deg <= 170.0:
            raise ValueError(f"render field of view must be in [1, 170] degrees, got {self.fov_deg}")
        if self.distance_m < 0:
            raise ValueError(f"render distance must be >= 0 (0: the camera's own), got {self.distance_m}")


def virtual_camera(spec: ViewSpec, centre_cam: np.ndarray) -> tuple[PinholeCamera, np.ndarray]:
    """The virtual pinhole camera and T_virtual_camera (4, 4, from the filming camera's optical frame) looking at
    ``centre_cam`` (3,), the hands' centre in the filming camera's frame (module notes)."""
    centre = np.asarray(centre_cam, np.float64)
    distance = spec.distance_m or float(np.linalg.norm(centre))
    if not np.all(np.isfinite(centre)) or distance <= 0:
        raise HandNotRenderable(f"the hands' centre {centre} gives no viewpoint")
    yaw, pitch = math.radians(spec.yaw_deg), math.radians(spec.pitch_deg)
    turn_yaw = np.array([[math.cos(yaw), 0.0, math.sin(yaw)], [0.0, 1.0, 0.0], [-math.sin(yaw), 0.0, math.cos(yaw)]])
    turn_pitch = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(pitch), -math.sin(pitch)],
                           [0.0, math.sin(pitch), math.cos(pitch)]])  # fmt: skip
    # the virtual camera's axes in the filming camera's frame: the filming camera's, turned about the centre
    axes = turn_yaw @ turn_pitch
    position = centre - distance * axes[:, 2]
    transform = np.eye(4)
    transform[:3, :3] = axes.T
    transform[:3, 3] = -axes.T @ position
    focal = 0.5 * spec.width / math.tan(math.radians(spec.fov_deg) / 2)
    camera = PinholeCamera.from_intrinsics(focal, focal, (spec.width - 1) / 2, (spec.height - 1) / 2, spec.width,
                                           spec.height)  # fmt: skip
    return camera, transform


class AvatarRenderer:
    """Avatars by side on one hand model, posed on tracked meshes and rendered (module notes)."""

    def __init__(self, model: HandModel, avatars: dict[HandSide, MeshGaussians]) -> None:
        self.model = model
        self._avatars = avatars
        with torch.no_grad():
            self._appearance = {side: avatar.appearance() for side, avatar in avatars.items()}

    @classmethod
    def from_files(cls, model: HandModel, paths: list[str]) -> AvatarRenderer:
        """Load avatar files (each names its side; two of one side are refused)."""
        avatars: dict[HandSide, MeshGaussians] = {}
        for path in paths:
            avatar, side = load_avatar(path, model)
            if side in avatars:
                raise ValueError(f"two avatar files of the {side.value} hand: {path} and one before it")
            avatars[side] = avatar
        return cls(model, avatars)

    @property
    def sides(self) -> list[HandSide]:
        return sorted(self._avatars, key=lambda side: side.value)

    def pose(self, side: HandSide, vertices: np.ndarray, model_name: str) -> Gaussians:
        """The side's avatar posed on ``vertices`` (V, 3) in the frame of the camera that filmed the hand (where its
        light was learnt; in another frame the shading turns with it); HandNotRenderable with the reason."""
        if side not in self._avatars:
            raise HandNotRenderable(f"no avatar for the {side.value} hand (avatar_files has "
                                    f"{', '.join(s.value for s in self.sides) or 'none'})")  # fmt: skip
        if model_name != self.model.name:
            raise HandNotRenderable(f"the {side.value} hand is a {model_name!r} mesh, the avatar was fitted on "
                                    f"{self.model.name!r}")  # fmt: skip
        vertices = np.asarray(vertices, np.float64)
        if vertices.shape != (self.model.num_vertices, 3):
            raise HandNotRenderable(f"the {side.value} hand has {len(vertices)} vertices, the {self.model.name} mesh "
                                    f"{self.model.num_vertices}")  # fmt: skip
        if not np.all(np.isfinite(vertices)):
            raise HandNotRenderable(f"the {side.value} hand's vertices are not all finite")
        with torch.no_grad():
            return self._avatars[side](torch.as_tensor(vertices, dtype=torch.float32),
                                       appearance=self._appearance[side])  # fmt: skip

    @staticmethod
    def render(posed: list[Gaussians], camera: PinholeCamera, camera_from_frame: np.ndarray | None = None,
               background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Rendering:  # fmt: skip
        """Render posed hands together (one depth order) in ``camera``; ``camera_from_frame`` maps their frame into
        the camera's."""
        transform = None if camera_from_frame is None else torch.as_tensor(camera_from_frame, dtype=torch.float32)
        with torch.no_grad():
            if not posed:
                return render_gaussians(Gaussians(*(torch.zeros(0, n) for n in (3, 4, 3, 3)), torch.zeros(0)),
                                        camera, background=background)  # fmt: skip
            return render_gaussians(concatenated(posed), camera, transform, background=background,
                                    cull_back_facing=True)


def composite(rendering: Rendering, image_rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: the rendering (on black) over ``image_rgb`` by its coverage."""
    colour = rendering.image.numpy().astype(np.float32) * 255.0
    alpha = rendering.alpha.numpy().astype(np.float32)[..., None]
    return np.clip(colour + (1.0 - alpha) * image_rgb + 0.5, 0, 255).astype(np.uint8)

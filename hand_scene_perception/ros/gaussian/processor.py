"""Messages ↔ the Gaussian avatar renderer, for the ``gaussian_hands`` node (no node plumbing here).

One HandArray (the ego node's ``hands``, in its world frame) becomes: ``render``, the hands seen by the virtual
camera (gaussian/renderer.py ViewSpec), with its CameraInfo and the TF from the filming camera to the render
frame; ``overlay``, the hands rendered in the filming camera over that camera's image of the same stamp; and
``gaussians/left|right``, each hand's posed Gaussians as a PointCloud2 in the hands' frame (:data:`GAUSSIAN_FIELDS`).
The filming camera is the hands' ``image_frame_id`` (else the image's frame); its pose in the hands' frame comes
from TF at the hands' stamp (the ego node publishes it with every frame), unless the hands are in that frame. The
avatars are posed in that camera's frame for every output, clouds included: their light was learnt there.

A hand that cannot be drawn (no vertices, another hand model, no avatar for its side, non-finite values) is left out
with its reason in ``skipped``; the other hands are still drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from hand_scene_msgs.msg import HandArray

from ...core.transform_buffer import TransformUnavailable
from ...core.transforms import inverse_matrices
from ...gaussian.mesh_gaussians import Gaussians
from ...gaussian.renderer import AvatarRenderer, HandNotRenderable, ViewSpec, composite, transformed, virtual_camera
from ..conversions import (
    MSG_TO_SIDE,
    InputError,
    byte_array,
    camera_info_msg,
    check_image_size,
    header_msg,
    image_msg,
    image_rgb,
    pinhole_camera,
    time_ns,
    transform_msg,
)
from ..tf_lookup import TransformLookup

# The Gaussian cloud's fields, float32 each except rgb (0x00RRGGBB in a float32 slot, as RViz and PCL read it):
# position (m), colour, opacity in (0, 1), the standard deviations along the Gaussian's axes (m) and its rotation
# as a unit quaternion (w, x, y, z) taking those axes into the cloud's frame.
GAUSSIAN_FIELD_NAMES = ("x", "y", "z", "rgb", "opacity", "scale_x", "scale_y", "scale_z", "rot_w", "rot_x", "rot_y",
                        "rot_z")  # fmt: skip
GAUSSIAN_FIELDS = tuple(PointField(name=name, offset=4 * index, datatype=PointField.FLOAT32, count=1)
                        for index, name in enumerate(GAUSSIAN_FIELD_NAMES))  # fmt: skip
GAUSSIAN_POINT_STEP = 4 * len(GAUSSIAN_FIELD_NAMES)


@dataclass
class GaussianMessages:
    """What one HandArray produced (None: not asked for or not possible), the hands drawn and the hands left out."""

    render: Image | None = None
    render_info: CameraInfo | None = None
    render_transform: object | None = None
    overlay: Image | None = None
    clouds: dict[str, PointCloud2] = field(default_factory=dict)
    drawn: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def gaussian_cloud_msg(gaussians: Gaussians, transform: np.ndarray | None, frame_id: str,
                       stamp_ns: int) -> PointCloud2:  # fmt: skip
    """sensor_msgs/PointCloud2 of posed Gaussians in :data:`GAUSSIAN_FIELDS`' layout; ``transform`` (4, 4) maps
    their frame into ``frame_id`` (None: they are in it)."""
    if transform is not None:
        gaussians = transformed(gaussians, transform)
    positions = gaussians.positions.double().numpy()
    rotations = gaussians.rotations.double().numpy()
    colors = np.clip(gaussians.colors.double().numpy() * 255.0 + 0.5, 0, 255).astype(np.uint32)
    packed = (colors[:, 0] << 16) | (colors[:, 1] << 8) | colors[:, 2]
    values = np.empty((len(positions), len(GAUSSIAN_FIELD_NAMES)), np.float32)
    values[:, 0:3] = positions
    values[:, 3] = packed.astype(np.uint32).view(np.float32)
    values[:, 4] = gaussians.opacities.double().numpy()
    values[:, 5:8] = gaussians.scales.double().numpy()
    values[:, 8:12] = rotations
    return PointCloud2(header=header_msg(frame_id, stamp_ns), height=1, width=len(values),
                       fields=list(GAUSSIAN_FIELDS), is_bigendian=False, point_step=GAUSSIAN_POINT_STEP,
                       row_step=GAUSSIAN_POINT_STEP * len(values), data=byte_array(values),
                       is_dense=True)  # fmt: skip


class GaussianMessageProcessor:
    """HandArray (+ the filming camera's image and CameraInfo) → render, overlay, clouds (module notes)."""

    def __init__(self, renderer: AvatarRenderer, view: ViewSpec, render_frame: str,
                 transforms: TransformLookup | None = None, tf_timeout_s: float = 0.0) -> None:  # fmt: skip
        self.renderer = renderer
        self.view = view
        self.render_frame = render_frame
        self._transforms = transforms
        self._tf_timeout_s = tf_timeout_s

    def close(self) -> None:
        """Stop the TF listener."""
        if self._transforms is not None:
            self._transforms.close()
            self._transforms = None

    def _camera_from_hands(self, hands_frame: str, camera_frame: str, stamp_ns: int) -> np.ndarray:
        if camera_frame == hands_frame:
            return np.eye(4)
        if self._transforms is None:
            raise InputError(f"the hands are in {hands_frame!r}, the camera is {camera_frame!r}, and no TF is heard")
        try:
            return self._transforms.lookup(camera_frame, hands_frame, stamp_ns, self._tf_timeout_s)
        except TransformUnavailable as error:
            raise InputError(f"no TF from {hands_frame!r} to the camera {camera_frame!r} at the hands' stamp: "
                             f"{error}") from None  # fmt: skip

    def process(self, hands: HandArray, image: Image | None = None, info: CameraInfo | None = None, *,
                render: bool = True, overlay: bool = False, clouds: bool = False) -> GaussianMessages:  # fmt: skip
        """Draw one HandArray; InputError when nothing can be drawn from it at all (the filming camera or its pose
        unknown)."""
        out = GaussianMessages()
        stamp = time_ns(hands.header.stamp)
        hands_frame = hands.header.frame_id
        usable: list[tuple] = []  # (side, vertices in the hands' frame, model name)
        for index, hand in enumerate(hands.hands):
            side = MSG_TO_SIDE.get(hand.side)
            label = f"hand {index} ({'side ' + str(hand.side) if side is None else side.value})"
            vertices = np.frombuffer(hand.vertices, dtype=np.float32)
            if side is None:
                out.skipped.append(f"{label}: Hand.side must be LEFT or RIGHT")
            elif not vertices.size:
                out.skipped.append(f"{label}: no vertices (the ego node sends them unless told not to)")
            elif vertices.size % 3:
                out.skipped.append(f"{label}: {vertices.size} vertex values, not a multiple of 3")
            else:
                usable.append((side, vertices.reshape(-1, 3).astype(np.float64), hand.model_name, label))
        if not usable or not (render or overlay or clouds):
            return out
        camera_frame = next((hand.image_frame_id for hand in hands.hands if hand.image_frame_id), "")
        camera_frame = camera_frame or ("" if image is None else image.header.frame_id)
        if not camera_frame:
            raise InputError("the hands name no image_frame_id (and no image of their stamp came): the camera whose "
                             "frame the avatars are lit in is unknown")  # fmt: skip
        # The avatars' light was learnt in the filming camera's frame: they are posed there, whatever is drawn.
        camera_from_hands = self._camera_from_hands(hands_frame, camera_frame, stamp)
        posed: list[Gaussians] = []
        for side, vertices, model_name, label in usable:
            try:
                posed.append(self.renderer.pose(side, vertices @ camera_from_hands[:3, :3].T + camera_from_hands[:3, 3],
                                                model_name))  # fmt: skip
            except HandNotRenderable as error:
                out.skipped.append(f"{label}: {error}")
                continue
            out.drawn.append(side.value)
        if clouds:
            hands_from_camera = inverse_matrices(camera_from_hands)
            for side, gaussians in zip(out.drawn, posed, strict=True):
                out.clouds[side] = gaussian_cloud_msg(gaussians, hands_from_camera, hands_frame, stamp)
        if render and posed:
            centre_cam = np.mean([g.positions.double().numpy().mean(axis=0) for g in posed], axis=0)
            if centre_cam[2] <= 0:
                out.warnings.append(f"the hands are behind the camera {camera_frame!r} (z = {centre_cam[2]:.3f} m): "
                                    "nothing rendered")  # fmt: skip
            else:
                camera, virtual_from_camera = virtual_camera(self.view, centre_cam)
                rendering = self.renderer.render(posed, camera, virtual_from_camera)
                pixels = np.clip(rendering.image.numpy() * 255.0 + 0.5, 0, 255).astype(np.uint8)
                out.render = image_msg(pixels, self.render_frame, stamp)
                out.render_info = camera_info_msg(camera, self.render_frame, stamp)
                out.render_transform = transform_msg(inverse_matrices(virtual_from_camera), camera_frame,
                                                     self.render_frame, stamp)  # fmt: skip
        if overlay and posed:
            self._overlay(out, posed, camera_frame, image, info)
        return out

    def _overlay(self, out: GaussianMessages, posed: list[Gaussians], camera_frame: str, image: Image | None,
                 info: CameraInfo | None) -> None:  # fmt: skip
        if image is None or info is None:
            out.warnings.append("overlay: no image (or CameraInfo) of the hands' stamp received")
            return
        if image.header.frame_id and image.header.frame_id != camera_frame:
            out.warnings.append(f"overlay: the image is in {image.header.frame_id!r} but the hands were seen by "
                                f"{camera_frame!r}: remap image to that camera's")  # fmt: skip
            return
        try:
            camera = pinhole_camera(info)
            check_image_size(image, camera)
            pixels = image_rgb(image)
        except InputError as error:
            out.warnings.append(f"overlay: {error}")
            return
        if camera.is_distorted:
            out.warnings.append("overlay: the camera is distorted; the Gaussian renderer draws pinhole images "
                                "(subscribe to a rectified image)")  # fmt: skip
            return
        rendering = self.renderer.render(posed, camera)
        out.overlay = image_msg(composite(rendering, pixels), image.header.frame_id, time_ns(image.header.stamp))

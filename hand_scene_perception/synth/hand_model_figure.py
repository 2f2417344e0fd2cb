"""A picture of the hand model (right and left hands in named poses), for docs and visual checks."""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image, ImageDraw

from ..core.camera import PinholeCamera
from ..core.hand_model.base import HandModel, HandSide
from ..core.hand_model.factory import create_hand_model
from ..core.hand_model.joint_order import mediapipe_to_model
from ..core.hand_model.open_model import local_joint_axes
from ..core.hand_model.poses import named_pose
from ..core.hand_model.wrist_frame import wrist_frame_from_joints
from ..core.raster import look_at, render_mesh

SKIN_RGB = (0.87, 0.68, 0.56)
BACKGROUND_RGB = (242, 242, 238)
_POSES = ("flat", "fist", "pinch")
_CELL = 360
_SUPERSAMPLE = 2
_LABEL_H = 28


def _view(side: HandSide) -> np.ndarray:
    """3/4 view of the palm side from the thumb side, wrist frame; the left view is the mirror image."""
    sign = 1.0 if side is HandSide.RIGHT else -1.0
    target = np.array([0.08, sign * 0.015, -0.015])
    direction = np.array([0.15, sign * 0.75, -0.65])
    eye = target + 0.50 * direction / np.linalg.norm(direction)
    return look_at(eye, target, up=np.array([1.0, 0.0, 0.0]))


def render_hand_model_figure(path: pathlib.Path, model: HandModel | None = None) -> pathlib.Path:
    """Write a PNG grid (rows: right, left; columns: flat, fist, pinch) so people can judge the model at a glance."""
    if model is None:
        model = create_hand_model("open")
    size = _CELL * _SUPERSAMPLE
    camera = PinholeCamera.from_intrinsics(
        fx=2.0 * size, fy=2.0 * size, cx=size / 2, cy=size / 2, width=size, height=size
    )
    sheet = Image.new("RGB", (_CELL * len(_POSES), (_CELL + _LABEL_H) * 2), BACKGROUND_RGB)
    draw = ImageDraw.Draw(sheet)
    for row, side in enumerate((HandSide.RIGHT, HandSide.LEFT)):
        # Pose axes and the viewpoint come from the model's own rest skeleton, so MANO
        # (whose rest frame is not the wrist frame) is shown the same way as the open model.
        rest_joints = model.forward(np.zeros((16, 3), np.float32), side=side).joints[0]
        axes = local_joint_axes(mediapipe_to_model(rest_joints), side)
        world_to_camera = _view(side) @ np.linalg.inv(wrist_frame_from_joints(rest_joints, side))
        for col, pose_name in enumerate(_POSES):
            pose = named_pose(pose_name, side, axes=axes)
            out = model.forward(pose[None].astype(np.float32), side=side)
            result = render_mesh(
                out.vertices[0],
                out.faces,
                camera,
                world_to_camera=world_to_camera,
                colors=SKIN_RGB,
                background=BACKGROUND_RGB,
            )
            tile = Image.fromarray(result.rgb).resize((_CELL, _CELL), Image.Resampling.LANCZOS)
            top = row * (_CELL + _LABEL_H)
            sheet.paste(tile, (col * _CELL, top + _LABEL_H))
            draw.text((col * _CELL + 10, top + 8), f"{side.value} hand - {pose_name}", fill=(40, 40, 40))
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path

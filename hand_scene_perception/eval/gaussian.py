"""Speed of the Gaussian hands on the CPU: posing the avatars and rasterising them, against the issue's frame time.

Two open-model hands (one avatar each, untrained: the cost does not depend on the learnt values) in random poses
within the joint limits, side by side 0.45 m in front of a square camera whose field of view holds both; per frame
both avatars are posed (their appearance computed once, as a node would) and rasterised on the CPU, with and
without back-facing Gaussians; and what the gaussian_hands node does per message for its render: one hand posed
from its avatar and rendered by a virtual camera at ``size`` x ``size``. One torch thread (the package's processes
run that way: core/threads.py).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..core.camera import PinholeCamera
from ..core.fitting import HandFitter, random_pose
from ..core.hand_model import HandSide, create_hand_model
from ..gaussian.mesh_gaussians import MeshGaussians
from ..gaussian.raster import render_gaussians
from ..gaussian.renderer import AvatarRenderer, ViewSpec, concatenated, virtual_camera

# The CPU target: 15 rendered frames a second of two hands at 256x256.
TARGET_FPS = 15.0
# The gaussian_hands node's: one hand rendered at 256x256 at 10 Hz or more (keeping up with the ego node's hands).
NODE_TARGET_HZ = 10.0


def benchmark_gaussian(num_frames: int = 10, size: int = 256, seed: int = 0) -> dict:
    """Milliseconds per frame (means) of posing two avatars and of rendering them at ``size`` x ``size``."""
    model = create_hand_model("open")
    fitter = HandFitter(model)
    rng = np.random.default_rng(seed)
    camera = PinholeCamera.from_intrinsics(1.4 * size, 1.4 * size, size / 2, size / 2, size, size)
    avatars = {}
    with torch.no_grad():
        for side in (HandSide.RIGHT, HandSide.LEFT):
            rest = np.asarray(model.forward(np.zeros((16, 3), np.float32), side=side).vertices[0], np.float64)
            avatar = MeshGaussians(model.faces(side), rest, model.name)
            avatars[side] = (avatar, avatar.appearance())
        pose_ms, culled_ms, all_ms, covered = [], [], [], []
        for _ in range(num_frames + 1):  # the first frame is not timed (it loads the compiled kernel)
            start = time.perf_counter()
            posed = []
            for offset, (side, (avatar, appearance)) in zip((0.05, -0.05), avatars.items(), strict=True):
                vertices = np.asarray(model.forward(random_pose(fitter, side, rng, spread=0.5), side=side).vertices[0])
                placed = vertices - vertices.mean(axis=0) + [offset, 0.0, 0.45]
                posed.append(avatar(torch.as_tensor(placed, dtype=torch.float32), appearance=appearance))
            both = concatenated(posed)
            pose_ms.append(1e3 * (time.perf_counter() - start))
            start = time.perf_counter()
            rendering = render_gaussians(both, camera, cull_back_facing=True)
            culled_ms.append(1e3 * (time.perf_counter() - start))
            start = time.perf_counter()
            render_gaussians(both, camera)
            all_ms.append(1e3 * (time.perf_counter() - start))
            covered.append(int((rendering.alpha > 0.5).sum()))
        node_ms = []  # what the gaussian_hands node does per HandArray for `render`: one hand, virtual camera
        renderer = AvatarRenderer(model, {HandSide.RIGHT: avatars[HandSide.RIGHT][0]})
        spec = ViewSpec(size, size)
        for _ in range(num_frames):
            vertices = np.asarray(model.forward(random_pose(fitter, HandSide.RIGHT, rng, spread=0.5),
                                                side=HandSide.RIGHT).vertices[0], np.float64)  # fmt: skip
            vertices += [0.0, 0.0, 0.45] - vertices.mean(axis=0)
            start = time.perf_counter()
            posed = renderer.pose(HandSide.RIGHT, vertices, model.name)
            virtual, transform = virtual_camera(spec, posed.positions.double().numpy().mean(axis=0))
            renderer.render([posed], virtual, transform)
            node_ms.append(1e3 * (time.perf_counter() - start))
    pose_ms, culled_ms, all_ms, covered = pose_ms[1:], culled_ms[1:], all_ms[1:], covered[1:]
    frame_ms = float(np.mean(pose_ms) + np.mean(culled_ms))
    return {
        "gaussians": len(both),
        "resolution": [size, size],
        "frames": num_frames,
        "torch_threads": torch.get_num_threads(),
        "pose_two_hands_ms": float(np.mean(pose_ms)),
        "render_culled_ms": float(np.mean(culled_ms)),
        "render_all_ms": float(np.mean(all_ms)),
        "covered_pixels": float(np.mean(covered)),
        "fps": 1e3 / frame_ms,
        "target_fps": TARGET_FPS,
        "ratio_to_target_frame_time": frame_ms * TARGET_FPS / 1e3,
        "node_one_hand_render_ms": float(np.mean(node_ms)),
        "node_one_hand_hz": 1e3 / float(np.mean(node_ms)),
        "node_target_hz": NODE_TARGET_HZ,
    }

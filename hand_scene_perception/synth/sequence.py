"""Deterministic synthetic egocentric sequences with ground truth: hands reaching for, grasping and
releasing boxes on a table, seen by a moving head camera.

Everything is a function of the seed (scene, skin tone, light, hand shapes, motion timing, camera
path, image noise), so the same arguments always give the same arrays. Per frame the generator
renders RGB (procedurally textured room + skin-shaded open hand model), metric depth, hand
segmentation and the ground truth a pipeline is scored against (DESIGN.md §3 frames and joint order).
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from ..core.camera import PinholeCamera
from ..core.hand_model.open_model import OpenHandModel
from ..core.hand_model.poses import named_local_angles
from ..core.hand_model.side import HandSide
from ..core.transforms import inverse_matrices
from .raster import look_at, rasterize, vertex_normals
from .scene import Scene, make_scene, render_scene

SEGMENTATION_LABELS: dict[HandSide, int] = {HandSide.LEFT: 1, HandSide.RIGHT: 2}
# Forearms (either side) get their own value so hand metrics stay hand-only while masks that must
# hide every moving body part (odometry, mapping) can use ``segmentation > 0``.
ARM_LABEL = 3

# Skin albedos (linear-ish RGB in [0, 1]) from light to dark; a sequence picks one and jitters it.
_SKIN_TONES = np.array(
    [
        [0.92, 0.74, 0.64],
        [0.87, 0.66, 0.54],
        [0.78, 0.57, 0.44],
        [0.66, 0.46, 0.33],
        [0.52, 0.35, 0.25],
        [0.38, 0.25, 0.18],
    ]
)
# Per-channel wrap of the diffuse term: light bleeds further around the terminator in red, a cheap
# stand-in for the warm look of subsurface scattering in skin.
_SKIN_WRAP = np.array([0.45, 0.25, 0.2], dtype=np.float32)
# Sleeve fabrics (navy, charcoal, black, red, olive, off-white, denim); some sequences show bare forearms.
_SLEEVE_COLORS = np.array(
    [
        [0.12, 0.16, 0.32],
        [0.25, 0.25, 0.27],
        [0.08, 0.08, 0.09],
        [0.55, 0.1, 0.12],
        [0.3, 0.34, 0.18],
        [0.85, 0.84, 0.8],
        [0.25, 0.35, 0.52],
    ]
)
_NAIL_RGB = np.array([0.95, 0.8, 0.78])
_FOREARM_LENGTH_M = 0.28  # wrist to elbow; the tube runs on past the elbow, out of the image
_ARM_TUBE_M = 0.45
_CYCLE_S = 3.6  # one reach → grasp → release → retract cycle
_POSE_CHUNK = 32  # frames posed per batched hand-model call


@dataclass(frozen=True)
class HandTruth:
    """Ground truth of one hand in one frame (metres; joints in DESIGN.md §3 order).

    ``visible``: the hand covers at least the generator's minimum pixel count in the segmentation;
    ``joints_in_image``: (21,) whether each projected joint lies inside the image, in front of the camera
    (occlusion not considered)."""

    side: HandSide
    joints_world: np.ndarray
    joints_cam: np.ndarray
    vertices_world: np.ndarray
    pose: np.ndarray
    shape: np.ndarray
    landmarks_px: np.ndarray
    joints_in_image: np.ndarray
    pixel_count: int
    visible: bool

    @property
    def label(self) -> int:
        """This hand's value in the segmentation image."""
        return SEGMENTATION_LABELS[self.side]


@dataclass(frozen=True)
class SynthFrame:
    """One rendered frame: rgb (H, W, 3) uint8; depth (H, W) float32 metres, 0 = no surface;
    segmentation (H, W) uint8, 0 background, 1 left hand, 2 right hand, 3 forearm (:data:`ARM_LABEL`);
    scene_surface (H, W) int16
    index into ``Scene.quads`` of the visible scene surface (-1 = hand or nothing);
    T_world_camera (4, 4) optical-frame camera pose."""

    index: int
    stamp: float
    rgb: np.ndarray
    depth: np.ndarray
    segmentation: np.ndarray
    scene_surface: np.ndarray
    T_world_camera: np.ndarray
    camera: PinholeCamera
    hands: tuple[HandTruth, ...]


def default_camera(width: int = 640, height: int = 480, horizontal_fov_deg: float = 70.0) -> PinholeCamera:
    """A head-camera-like pinhole: square pixels, centred principal point, the given horizontal field of view."""
    f = 0.5 * width / np.tan(np.radians(horizontal_fov_deg) / 2)
    return PinholeCamera.from_intrinsics(
        fx=f, fy=f, cx=(width - 1) / 2, cy=(height - 1) / 2, width=width, height=height
    )


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """C1 easing on [0, 1]: zero velocity at both keyframes, so motion starts and stops smoothly."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _wiggle(rng: np.random.Generator, dims: int, amplitude: float, max_hz: float) -> tuple[np.ndarray, ...]:
    """Random sum-of-sines parameters (amplitudes, frequencies, phases), for smooth pseudo-random motion."""
    return (
        rng.uniform(0.3, 1.0, (3, dims)) * amplitude / 3,
        rng.uniform(0.05, max_hz, (3, dims)),
        rng.uniform(0, 2 * np.pi, (3, dims)),
    )


def _eval_wiggle(params: tuple[np.ndarray, ...], t: np.ndarray) -> np.ndarray:
    """(N, dims) values of a sum of sines at times t (N,)."""
    amp, freq, phase = params
    return (amp[None] * np.sin(2 * np.pi * freq[None] * t[:, None, None] + phase[None])).sum(1)


def _forearm_mesh(rings: np.ndarray, segments: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """A tapered elliptic tube in the wrist frame (x toward the fingers, z dorsal) along x = -``rings``
    (metres behind the wrist): vertices (len(rings) * segments + 1, 3) and outward faces. Capped at the
    wrist, where it overlaps the hand mesh's wrist stub; open at the far end, which leaves the image."""
    frac = np.minimum(rings / _FOREARM_LENGTH_M, 1.0)
    half_width = 0.022 + 0.017 * np.sqrt(frac)  # flat at the wrist, rounder toward the elbow
    half_depth = 0.017 + 0.016 * np.sqrt(frac)
    angle = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    verts = np.stack(
        [
            np.repeat(-rings, segments),
            (half_width[:, None] * np.cos(angle)[None]).ravel(),
            (half_depth[:, None] * np.sin(angle)[None] - 0.003).ravel(),
        ],
        1,
    )
    ring, seg = np.meshgrid(np.arange(len(rings) - 1), np.arange(segments), indexing="ij")
    a = (ring * segments + seg).ravel()
    b = (ring * segments + (seg + 1) % segments).ravel()
    c, d = a + segments, b + segments
    cap_centre = len(verts)
    cap = np.stack([np.full(segments, cap_centre), np.arange(segments), (np.arange(segments) + 1) % segments], 1)
    verts = np.concatenate([verts, [[-rings[0], 0.0, -0.003]]])
    return verts, np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1), cap])


class _HandAnimator:
    """Keyframed reach → grasp → release → retract cycles for one hand toward one box, plus its forearm.

    Egocentric layout: the wrist rests near the table's front edge, 0.35–0.5 m from the head camera,
    so the hand spans ~150–250 px at 640x480 and its forearm enters from the bottom of the image, the
    way a head-mounted camera sees its wearer's hands (and the way MediaPipe's palm detector expects them)."""

    def __init__(self, rng: np.random.Generator, model: OpenHandModel, side: HandSide, scene: Scene) -> None:
        self.side = side
        sign = -1.0 if side is HandSide.LEFT else 1.0
        boxes = scene.boxes
        box = boxes[np.argmin(boxes[:, 0])] if side is HandSide.LEFT else boxes[np.argmax(boxes[:, 0])]
        top = scene.table_top_z
        front = scene.table_front_y
        self.rest = np.array(
            [sign * rng.uniform(0.07, 0.12), front + rng.uniform(-0.03, 0.04), top + rng.uniform(0.08, 0.14)]
        )
        forward = box[:2] - self.rest[:2]
        forward = np.array([*forward / np.linalg.norm(forward), 0.0])
        self.grasp = np.array([box[0], box[1], box[2]]) - forward * (0.075 + box[3]) + np.array([0, 0, 0.045])
        self.pregrasp = self.grasp - forward * 0.06 + np.array([0, 0, 0.07])
        pitch = rng.uniform(0.2, 0.45)  # fingers tilted down toward the table
        x_axis = np.cos(pitch) * forward - np.sin(pitch) * np.array([0, 0, 1.0])
        z_axis = np.sin(pitch) * forward + np.cos(pitch) * np.array([0, 0, 1.0])
        self.base = Rotation.from_matrix(np.stack([x_axis, np.cross(z_axis, x_axis), z_axis], 1))
        # Roll the thumb side up a little, more while grasping (boxes are gripped from the side, thumb on top,
        # which also keeps the curled fingers in the camera's view); mirrored for the left hand (+y is ulnar).
        self.roll_axis = x_axis * -sign
        self.roll = (rng.uniform(0.2, 0.5), rng.uniform(0.5, 0.9))
        relaxed = np.zeros((16, 3))
        relaxed[1:13, 0] = rng.uniform(0.05, 0.25, 12)  # fingers slightly curled at rest
        self.relaxed = relaxed
        # Grasps keep fingers in view: mostly pinches, otherwise a loose (half-closed) power grip, not a full fist
        # seen from behind (hard even for real images).
        fist = named_local_angles("fist")
        self.grips = [named_local_angles("pinch"), relaxed + 0.5 * (fist - relaxed)]
        self.grip_choice = rng.choice(2, size=64, p=[0.75, 0.25])
        self.offset_s = rng.uniform(0, _CYCLE_S)
        self.shape = np.clip(rng.normal(0.0, 0.04, model.num_shape_params), -0.1, 0.1)
        self.tremor = _wiggle(rng, 3, 0.006, 1.5)
        self.model = model
        cuff = rng.uniform(0.05, 0.14) if rng.random() < 0.6 else np.inf  # sleeve start behind the wrist
        rings = np.union1d(np.linspace(0.035, _ARM_TUBE_M, 10), [cuff - 0.004, cuff] if np.isfinite(cuff) else [])
        self.arm_verts, self.arm_faces = _forearm_mesh(rings)
        self.arm_sleeve = np.append(np.repeat(rings >= cuff, (len(self.arm_verts) - 1) // len(rings)), False)
        # Elbow near the body, at about table height: forearms rise from the bottom of the image.
        self.elbow = np.array(
            [sign * rng.uniform(0.2, 0.26), front - rng.uniform(0.28, 0.34), top + rng.uniform(0, 0.05)]
        )
        self.sleeve_rgb = _SLEEVE_COLORS[rng.integers(len(_SLEEVE_COLORS))] * rng.uniform(0.85, 1.15)

    def arm_vertices(self, wrist: np.ndarray, wrist_rot: np.ndarray) -> np.ndarray:
        """Forearm tube vertices in the world: from the wrist toward the elbow, rolled with the back of the hand,
        so the wrist bends a little instead of the arm sticking out along the hand's axis."""
        x_axis = wrist - self.elbow
        x_axis /= np.linalg.norm(x_axis)
        z_axis = wrist_rot[:, 2] - (wrist_rot[:, 2] @ x_axis) * x_axis
        z_axis /= np.linalg.norm(z_axis)
        return self.arm_verts @ np.stack([x_axis, np.cross(z_axis, x_axis), z_axis], 1).T + wrist

    def poses(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Axis-angle poses (N, 16, 3) and wrist translations (N, 3) at times (N,) seconds."""
        t = times + self.offset_s
        cycle = np.floor(t / _CYCLE_S).astype(np.int64)
        phase = t / _CYCLE_S - cycle
        # Keyframes: (phase, wrist position, grip amount 0 = relaxed, 1 = closed).
        keys = [
            (0.0, self.rest, 0.0),
            (0.12, self.rest, 0.0),
            (0.38, self.pregrasp, 0.1),
            (0.52, self.grasp, 1.0),
            (0.68, self.grasp, 1.0),
            (0.78, self.pregrasp, 0.0),
            (1.0, self.rest, 0.0),
        ]
        stops = np.array([k[0] for k in keys])
        seg = np.clip(np.searchsorted(stops, phase, side="right") - 1, 0, len(keys) - 2)
        w = _smoothstep((phase - stops[seg]) / (stops[seg + 1] - stops[seg]))
        pos = np.stack([k[1] for k in keys])
        grip = np.array([k[2] for k in keys])
        transl = pos[seg] + w[:, None] * (pos[seg + 1] - pos[seg]) + _eval_wiggle(self.tremor, times)
        amount = grip[seg] + w * (grip[seg + 1] - grip[seg])
        target = np.stack(self.grips)[self.grip_choice[cycle % len(self.grip_choice)]]
        local = self.relaxed[None] + amount[:, None, None] * (target - self.relaxed[None])
        pose = self.model.pose_from_local(local, self.side)
        roll = self.roll[0] + amount * self.roll[1]
        pose[:, 0] = (Rotation.from_rotvec(roll[:, None] * self.roll_axis) * self.base).as_rotvec()
        return pose, transl


class _CameraPath:
    """Smooth egocentric head motion: small translations and gaze wander around looking at the table."""

    def __init__(self, rng: np.random.Generator, scene: Scene) -> None:
        top = scene.table_top_z
        front = scene.table_front_y
        # Head of a person at the table's front edge, looking down ~50° at the reachable area.
        self.eye = np.array([rng.uniform(-0.04, 0.04), front - rng.uniform(0.1, 0.18), top + rng.uniform(0.4, 0.48)])
        self.target = np.array([0.0, front + 0.16, top])
        self.eye_wiggle = _wiggle(rng, 3, 0.04, 0.35)
        self.gaze_wiggle = _wiggle(rng, 3, 0.06, 0.3)
        self.roll_wiggle = _wiggle(rng, 1, np.radians(3.0), 0.3)

    def world_to_camera(self, time_s: float) -> np.ndarray:
        """(4, 4) world→optical-frame transform at ``time_s``."""
        t = np.array([time_s])
        eye = self.eye + _eval_wiggle(self.eye_wiggle, t)[0]
        target = self.target + _eval_wiggle(self.gaze_wiggle, t)[0]
        roll = np.eye(4)
        roll[:3, :3] = Rotation.from_rotvec([0.0, 0.0, _eval_wiggle(self.roll_wiggle, t)[0, 0]]).as_matrix()
        return roll @ look_at(eye, target, up=(0.0, 0.0, 1.0))


class SyntheticSequence:
    """A seeded synthetic sequence: its scene, hands, camera path and light; :meth:`frames` renders it."""

    def __init__(
        self,
        seed: int,
        num_hands: int = 2,
        camera: PinholeCamera | None = None,
        fps: float = 30.0,
        noise_std: float = 2.0,
        model: OpenHandModel | None = None,
        min_visible_pixels: int = 200,
    ) -> None:
        """``noise_std``: image noise in 8-bit grey levels; ``model``: an open hand model to share across
        sequences (building one takes a moment)."""
        if num_hands not in (1, 2):
            raise ValueError(f"num_hands must be 1 or 2, got {num_hands}")
        rng = np.random.default_rng(seed)
        self.camera = camera or default_camera()
        self.fps = float(fps)
        self.min_visible_pixels = int(min_visible_pixels)
        self.scene = make_scene(int(rng.integers(2**31)))
        self.model = model or OpenHandModel()
        sides = [HandSide.LEFT, HandSide.RIGHT] if num_hands == 2 else [HandSide(rng.choice(["left", "right"]))]
        self.hands = [_HandAnimator(rng, self.model, side, self.scene) for side in sides]
        tone = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.93, 1.07, 3)
        nails = _nail_weights(self.model)
        self.skin = {
            h.side: _mottled(rng, tone, self.model.num_vertices) * (1 - nails) + _NAIL_RGB * tone**0.25 * nails
            for h in self.hands
        }
        self.faces = {h.side: self.model.faces(h.side) for h in self.hands}
        self.arm_albedo = {
            h.side: np.where(h.arm_sleeve[:, None], h.sleeve_rgb, _mottled(rng, tone, len(h.arm_verts)))
            for h in self.hands
        }
        azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(np.radians(35), np.radians(75))
        self.light_world = np.array(
            [np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation), np.sin(elevation)]
        )
        self.ambient = float(rng.uniform(0.3, 0.45))
        self.camera_path = _CameraPath(rng, self.scene)
        self.noise_std = float(noise_std)
        pad = 32
        self._noise = (rng.standard_normal((self.camera.height + pad, self.camera.width + pad, 3)) * noise_std).astype(
            np.float32
        )
        self._noise_offsets = rng.integers(0, pad, size=(1024, 2))

    def frames(self, num_frames: int) -> Iterator[SynthFrame]:
        """Render frames 0..num_frames-1 lazily (hand models are posed in batches of a few frames)."""
        for chunk_start in range(0, num_frames, _POSE_CHUNK):
            indices = np.arange(chunk_start, min(chunk_start + _POSE_CHUNK, num_frames))
            times = indices / self.fps
            posed = []
            for hand in self.hands:
                pose, transl = hand.poses(times)
                out = self.model.forward(
                    pose.astype(np.float32),
                    np.broadcast_to(hand.shape, (len(times), len(hand.shape))).astype(np.float32),
                    side=hand.side,
                    transl=transl.astype(np.float32),
                )
                posed.append((pose, out.vertices, out.joints))
            for k, index in enumerate(indices):
                yield self._render(
                    int(index), [(h, p[0][k], p[1][k], p[2][k]) for h, p in zip(self.hands, posed, strict=True)]
                )

    def _render(self, index: int, hands: list[tuple[_HandAnimator, np.ndarray, np.ndarray, np.ndarray]]) -> SynthFrame:
        """Render the scene, composite the shaded forearms and hands by depth, add noise and collect ground truth."""
        cam = self.camera
        w2c = self.camera_path.world_to_camera(index / self.fps)
        rot, trans = w2c[:3, :3], w2c[:3, 3]
        scene = render_scene(self.scene, cam, w2c, self.light_world, ambient=self.ambient)
        image = (scene.albedo * (scene.shading * np.float32(1 / 255))[..., None]).reshape(-1, 3)
        depth = np.where(scene.depth > 0, scene.depth, np.inf).ravel()
        seg = np.zeros(cam.height * cam.width, dtype=np.uint8)
        light_cam = (rot @ self.light_world).astype(np.float32)
        truths = []
        for hand, pose, verts_world, joints_world in hands:
            arm_world = hand.arm_vertices(joints_world[0].astype(np.float64), Rotation.from_rotvec(pose[0]).as_matrix())
            arm_cam = arm_world @ rot.T + trans
            verts_cam = verts_world.astype(np.float64) @ rot.T + trans
            for mesh_cam, faces, albedo, label in (
                (arm_cam, hand.arm_faces, self.arm_albedo[hand.side], ARM_LABEL),
                (verts_cam, self.faces[hand.side], self.skin[hand.side], SEGMENTATION_LABELS[hand.side]),
            ):
                frags = rasterize(mesh_cam, faces, cam, cull_back=True)
                win = frags.depth < depth[frags.pixel]
                pix = frags.pixel[win]
                depth[pix] = frags.depth[win]
                seg[pix] = label
                image[pix] = _shade_skin(
                    mesh_cam, faces, albedo, frags.face[win], frags.bary[win], light_cam, self.ambient
                )
            joints_cam = joints_world.astype(np.float64) @ rot.T + trans
            landmarks = cam.project(joints_cam)
            in_image = (
                (joints_cam[:, 2] > 0)
                & np.all(landmarks >= -0.5, axis=1)
                & (landmarks[:, 0] <= cam.width - 0.5)
                & (landmarks[:, 1] <= cam.height - 0.5)
            )
            truths.append((hand, pose, verts_world, joints_world, joints_cam, landmarks, in_image))
        counts = np.bincount(seg, minlength=ARM_LABEL + 1)
        hand_truths = tuple(
            HandTruth(
                side=hand.side,
                joints_world=joints_world.astype(np.float64),
                joints_cam=joints_cam,
                vertices_world=verts_world.astype(np.float64),
                pose=pose,
                shape=hand.shape.copy(),
                landmarks_px=landmarks,
                joints_in_image=in_image,
                pixel_count=int(counts[SEGMENTATION_LABELS[hand.side]]),
                visible=bool(counts[SEGMENTATION_LABELS[hand.side]] >= self.min_visible_pixels),
            )
            for hand, pose, verts_world, joints_world, joints_cam, landmarks, in_image in truths
        )
        dy, dx = self._noise_offsets[index % len(self._noise_offsets)]
        noise = self._noise[dy : dy + cam.height, dx : dx + cam.width]
        rgb = np.clip(image.reshape(cam.height, cam.width, 3) * 255 + noise + 0.5, 0, 255).astype(np.uint8)
        surface = np.where(seg.reshape(cam.height, cam.width) > 0, np.int16(-1), scene.surface)
        return SynthFrame(
            index=index,
            stamp=index / self.fps,
            rgb=rgb,
            depth=np.where(np.isfinite(depth), depth, 0).astype(np.float32).reshape(cam.height, cam.width),
            segmentation=seg.reshape(cam.height, cam.width),
            scene_surface=surface,
            T_world_camera=inverse_matrices(w2c),
            camera=cam,
            hands=hand_truths,
        )


def _shade_skin(
    verts_cam: np.ndarray,
    faces: np.ndarray,
    albedo: np.ndarray,
    face: np.ndarray,
    bary: np.ndarray,
    light_cam: np.ndarray,
    ambient: float,
) -> np.ndarray:
    """Colour (N, 3) in [0, 1] of skin (or sleeve) fragments: wrapped (warm) Lambertian + ambient + a faint
    Blinn-Phong highlight, with per-vertex albedo (V, 3) interpolated across each face."""
    corners = faces[face]
    w = bary.astype(np.float32)[..., None]
    normals = (vertex_normals(verts_cam, faces).astype(np.float32)[corners] * w).sum(1)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-6)
    view = -(verts_cam.astype(np.float32)[corners] * w).sum(1)
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    flip = np.einsum("ij,ij->i", normals, view) < 0
    normals[flip] *= -1
    n_dot_l = normals @ light_cam
    diffuse = np.clip((n_dot_l[:, None] + _SKIN_WRAP) / (1 + _SKIN_WRAP), 0, 1)
    half = view + light_cam
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    specular = 0.06 * np.clip(np.einsum("ij,ij->i", normals, half), 0, 1) ** 24 * (n_dot_l > 0)
    return (albedo.astype(np.float32)[corners] * w).sum(1) * (ambient + (1 - ambient) * diffuse) + specular[:, None]


def _mottled(rng: np.random.Generator, tone: np.ndarray, count: int) -> np.ndarray:
    """(count, 3) float32 skin albedo: ``tone`` with a little per-vertex variation, as real skin is never flat."""
    return np.clip(tone * (1 + 0.05 * rng.standard_normal((count, 1))), 0, 1).astype(np.float32)


def _nail_weights(model: OpenHandModel) -> np.ndarray:
    """(V, 1) weight in [0, 1] of fingernail colour per hand vertex: the dorsal half of each distal phalanx's
    last two thirds. Vertex order is shared by both sides, so the right rest pose decides for both."""
    rest = model.forward(np.zeros((1, 16, 3), np.float32), side=HandSide.RIGHT)
    verts, joints = rest.vertices[0].astype(np.float64), rest.joints[0].astype(np.float64)
    normals = vertex_normals(verts, model.faces(HandSide.RIGHT))
    weight = np.zeros(len(verts))
    for tip in (4, 8, 12, 16, 20):
        axis = joints[tip] - joints[tip - 1]
        along = (verts - joints[tip - 1]) @ axis / (axis @ axis)
        radial = np.linalg.norm(verts - joints[tip - 1] - along[:, None] * axis, axis=1)
        on_nail = (along > 0.3) & (along < 0.95) & (radial < 0.011)
        weight = np.maximum(weight, on_nail * np.clip((normals[:, 2] - 0.35) / 0.4, 0, 1))
    return weight[:, None].astype(np.float32)


def generate_sequence(
    seed: int,
    num_frames: int,
    num_hands: int = 2,
    camera: PinholeCamera | None = None,
    fps: float = 30.0,
    noise_std: float = 2.0,
    model: OpenHandModel | None = None,
) -> Iterator[SynthFrame]:
    """Frames of the sequence defined by ``seed`` (see :class:`SyntheticSequence`), rendered lazily."""
    return SyntheticSequence(seed, num_hands, camera, fps, noise_std, model).frames(num_frames)


def save_sequence(frames: Iterable[SynthFrame], out_dir: str | pathlib.Path) -> pathlib.Path:
    """Write rgb/NNNNN.png, depth/NNNNN.png (uint16 millimetres), segmentation/NNNNN.png (labels 0–3) and
    ground_truth.npz (stacked camera poses, intrinsics, per-hand joints/vertices/landmarks/pose/shape/visibility),
    so sequences can be inspected and replayed without this code."""
    out = pathlib.Path(out_dir)
    for sub in ("rgb", "depth", "segmentation"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    poses, stamps, per_hand, camera, sides = [], [], {}, None, []
    for frame in frames:
        name = f"{frame.index:05d}.png"
        Image.fromarray(frame.rgb).save(out / "rgb" / name)
        Image.fromarray(np.round(frame.depth * 1000).clip(0, 65535).astype(np.uint16)).save(out / "depth" / name)
        Image.fromarray(frame.segmentation).save(out / "segmentation" / name)
        poses.append(frame.T_world_camera)
        stamps.append(frame.stamp)
        camera = frame.camera
        sides = [h.side.value for h in frame.hands]
        for h in frame.hands:
            for key in ("joints_world", "joints_cam", "vertices_world", "pose", "shape", "landmarks_px", "visible"):
                per_hand.setdefault(f"{h.side.value}_{key}", []).append(getattr(h, key))
    if camera is None:
        raise ValueError("save_sequence needs at least one frame")
    np.savez_compressed(
        out / "ground_truth.npz",
        T_world_camera=np.stack(poses),
        stamps=np.array(stamps),
        K=camera.K,
        image_size=np.array([camera.width, camera.height]),
        **{k: np.stack(v) for k, v in per_hand.items()},
    )
    (out / "sides.json").write_text(json.dumps(sides))
    return out


def preview_image(frames: Iterable[SynthFrame], scale: float = 0.5) -> Image.Image:
    """One row per frame: RGB with the projected ground-truth joints, depth (near = bright) and segmentation,
    so a person can check at a glance that images and ground truth agree."""
    from PIL import ImageDraw

    rows = []
    for frame in frames:
        rgb = Image.fromarray(frame.rgb)
        draw = ImageDraw.Draw(rgb)
        for hand in frame.hands:
            color = (60, 200, 255) if hand.side is HandSide.LEFT else (255, 230, 40)
            for u, v in hand.landmarks_px[hand.joints_in_image]:
                draw.ellipse((u - 2, v - 2, u + 2, v + 2), fill=color)
        valid = frame.depth > 0
        depth = np.zeros(frame.depth.shape, np.uint8)
        if valid.any():
            lo, hi = np.percentile(frame.depth[valid], [1, 99])
            depth[valid] = (255 * np.clip((hi - frame.depth[valid]) / max(hi - lo, 1e-6), 0, 1)).astype(np.uint8)
        palette = np.array([[30, 30, 30], [60, 200, 255], [255, 230, 40], [200, 90, 200]], np.uint8)
        tiles = [rgb, Image.fromarray(depth).convert("RGB"), Image.fromarray(palette[frame.segmentation])]
        size = (int(frame.camera.width * scale), int(frame.camera.height * scale))
        rows.append(np.concatenate([np.asarray(t.resize(size, Image.Resampling.BILINEAR)) for t in tiles], 1))
    if not rows:
        raise ValueError("preview_image needs at least one frame")
    return Image.fromarray(np.concatenate(rows, 0))

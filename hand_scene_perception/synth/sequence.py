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
from ..core.hand_model.base import HandSide
from ..core.hand_model.open_model import OpenHandModel
from ..core.hand_model.poses import named_local_angles
from ..core.transforms import inverse_matrices
from .raster import look_at, rasterize, vertex_normals
from .scene import Scene, make_scene, render_scene

SEGMENTATION_LABELS: dict[HandSide, int] = {HandSide.LEFT: 1, HandSide.RIGHT: 2}

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
    segmentation (H, W) uint8, 0 background, 1 left hand, 2 right hand; scene_surface (H, W) int16
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


class _HandAnimator:
    """Keyframed reach → grasp → release → retract cycles for one hand toward one box."""

    def __init__(self, rng: np.random.Generator, model: OpenHandModel, side: HandSide, scene: Scene) -> None:
        self.side = side
        sign = -1.0 if side is HandSide.LEFT else 1.0
        boxes = scene.boxes
        box = boxes[np.argmin(boxes[:, 0])] if side is HandSide.LEFT else boxes[np.argmax(boxes[:, 0])]
        top = scene.table_top_z
        self.rest = np.array([sign * rng.uniform(0.16, 0.24), rng.uniform(-0.25, -0.18), top + rng.uniform(0.1, 0.16)])
        forward = box[:2] - self.rest[:2]
        forward = np.array([*forward / np.linalg.norm(forward), 0.0])
        self.grasp = np.array([box[0], box[1], box[2]]) - forward * (0.075 + box[3]) + np.array([0, 0, 0.045])
        self.pregrasp = self.grasp - forward * 0.06 + np.array([0, 0, 0.07])
        pitch = rng.uniform(0.2, 0.45)  # fingers tilted down toward the table
        x_axis = np.cos(pitch) * forward - np.sin(pitch) * np.array([0, 0, 1.0])
        z_axis = np.sin(pitch) * forward + np.cos(pitch) * np.array([0, 0, 1.0])
        base = np.stack([x_axis, np.cross(z_axis, x_axis), z_axis], 1)
        # Roll the thumb side up a little, mirrored for the left hand (whose +y is ulnar).
        roll = Rotation.from_rotvec(x_axis * -sign * rng.uniform(0.2, 0.5))
        self.root = (roll * Rotation.from_matrix(base)).as_rotvec()
        relaxed = np.zeros((16, 3))
        relaxed[1:13, 0] = rng.uniform(0.05, 0.25, 12)  # fingers slightly curled at rest
        self.relaxed = relaxed
        self.grips = [named_local_angles(name) for name in ("fist", "pinch")]
        self.grip_choice = rng.integers(0, 2, size=64)
        self.offset_s = rng.uniform(0, _CYCLE_S)
        self.shape = np.clip(rng.normal(0.0, 0.04, model.num_shape_params), -0.1, 0.1)
        self.tremor = _wiggle(rng, 3, 0.006, 1.5)
        self.model = model

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
        pose[:, 0] = self.root
        return pose, transl


class _CameraPath:
    """Smooth egocentric head motion: small translations and gaze wander around looking at the table."""

    def __init__(self, rng: np.random.Generator, scene: Scene) -> None:
        top = scene.table_top_z
        self.eye = np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.62, -0.5), top + rng.uniform(0.45, 0.55)])
        self.target = np.array([0.0, 0.05, top])
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
        # Mottled skin: a little per-vertex albedo variation (vertices are ~4.5 mm apart).
        self.skin = {
            h.side: np.clip(tone * (1 + 0.05 * rng.standard_normal((self.model.num_vertices, 1))), 0, 1).astype(
                np.float32
            )
            for h in self.hands
        }
        self.faces = {h.side: self.model.faces(h.side) for h in self.hands}
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
        """Render the scene, composite the skin-shaded hands by depth, add noise and collect ground truth."""
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
            verts_cam = verts_world.astype(np.float64) @ rot.T + trans
            frags = rasterize(verts_cam, self.faces[hand.side], cam)
            win = frags.depth < depth[frags.pixel]
            pix = frags.pixel[win]
            depth[pix] = frags.depth[win]
            seg[pix] = SEGMENTATION_LABELS[hand.side]
            image[pix] = self._shade_skin(hand.side, verts_cam, frags.face[win], frags.bary[win], light_cam)
            joints_cam = joints_world.astype(np.float64) @ rot.T + trans
            landmarks = cam.project(joints_cam)
            in_image = (
                (joints_cam[:, 2] > 0)
                & np.all(landmarks >= -0.5, axis=1)
                & (landmarks[:, 0] <= cam.width - 0.5)
                & (landmarks[:, 1] <= cam.height - 0.5)
            )
            truths.append((hand, pose, verts_world, joints_world, joints_cam, landmarks, in_image))
        counts = np.bincount(seg, minlength=3)
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
        self, side: HandSide, verts_cam: np.ndarray, face: np.ndarray, bary: np.ndarray, light_cam: np.ndarray
    ) -> np.ndarray:
        """Skin colour (N, 3) in [0, 1]: wrapped (warm) Lambertian + ambient + a faint Blinn-Phong highlight."""
        faces = self.faces[side][face]
        w = bary.astype(np.float32)[..., None]
        normals = (vertex_normals(verts_cam, self.faces[side]).astype(np.float32)[faces] * w).sum(1)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-6)
        view = -(verts_cam.astype(np.float32)[faces] * w).sum(1)
        view /= np.linalg.norm(view, axis=1, keepdims=True)
        flip = np.einsum("ij,ij->i", normals, view) < 0
        normals[flip] *= -1
        n_dot_l = normals @ light_cam
        diffuse = np.clip((n_dot_l[:, None] + _SKIN_WRAP) / (1 + _SKIN_WRAP), 0, 1)
        half = view + light_cam
        half /= np.linalg.norm(half, axis=1, keepdims=True)
        specular = 0.06 * np.clip(np.einsum("ij,ij->i", normals, half), 0, 1) ** 24 * (n_dot_l > 0)
        albedo = (self.skin[side][faces] * w).sum(1)
        return albedo * (self.ambient + (1 - self.ambient) * diffuse) + specular[:, None]


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
    """Write rgb/NNNNN.png, depth/NNNNN.png (uint16 millimetres), segmentation/NNNNN.png (labels 0/1/2) and
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
        palette = np.array([[30, 30, 30], [60, 200, 255], [255, 230, 40]], np.uint8)
        tiles = [rgb, Image.fromarray(depth).convert("RGB"), Image.fromarray(palette[frame.segmentation])]
        size = (int(frame.camera.width * scale), int(frame.camera.height * scale))
        rows.append(np.concatenate([np.asarray(t.resize(size, Image.Resampling.BILINEAR)) for t in tiles], 1))
    if not rows:
        raise ValueError("preview_image needs at least one frame")
    return Image.fromarray(np.concatenate(rows, 0))

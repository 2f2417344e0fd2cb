"""Deterministic synthetic egocentric sequences with ground truth: hands reaching for, grasping and
releasing boxes on a table, seen by a moving head camera.

Everything is a function of the seed (scene, skin tone, light, hand shapes, motion timing, camera
path, image noise), so the same arguments always give the same arrays. Per frame the generator
renders RGB (procedurally textured room + skin-shaded open hand model with a forearm, lens blur and
sensor noise), metric depth, hand segmentation and the ground truth a pipeline is scored against
(ARCHITECTURE.md, Conventions frames and joint order).

Realism is tuned against the embedded detector (``tools/synth_detection_rate.py``): MediaPipe was
trained on photos, so hands come with forearms that hide the hand model's wrist stub (otherwise the
detector puts the wrist where the stub ends), natural finger cascades and grasps seen from behind,
smooth skin-tone variation, lighter palms, nails, warm wrapped diffuse light and a soft sheen.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from ..core.camera import PinholeCamera
from ..core.hand_model.open_model import OpenHandModel
from ..core.hand_model.poses import named_local_angles
from ..core.hand_model.side import HandSide
from ..core.raster import look_at, rasterize, vertex_normals
from ..core.transforms import inverse_matrices
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
_PALM_RGB = np.array([0.93, 0.72, 0.66])
_FOREARM_TINT = np.array([1.02, 0.99, 0.97])  # forearm skin: the hand's tone, a touch less red
_BLUR_SIGMA_PX = 0.7  # lens blur: also softens the rasteriser's aliased silhouettes
_FOREARM_LENGTH_M = 0.28  # wrist to elbow; the tube runs on past the elbow, out of the image
_ARM_TUBE_M = 0.45
_ARM_START_M = 0.001  # the tube starts just behind the wrist joint, inside the hand mesh
# Forearm girth behind the wrist relative to the cut it must hide. A fuller arm hides more of the hand from
# the head camera; a slimmer one shows more of the hand's heel, and MediaPipe then puts the wrist a little
# toward the elbow. Seeds 0-7, 60 frames: 1.0 → detection 0.925, wrist error 15.5 px; 0.92 → 0.922, 17.7 px;
# 0.85 → 0.949, 21.5 px. Detection matters more downstream (misses break tracks).
_FOREARM_SLIM = 0.85
_ARM_BEND_M = 0.035  # the tube follows the hand's axis for a few centimetres before turning to the elbow
# Relaxed flexion (MCP, PIP, DIP) of index, middle, little and ring finger (MANO chain order).
_RELAXED_FLEXION = np.array([0.15, 0.2, 0.1, 0.22, 0.28, 0.14, 0.38, 0.42, 0.2, 0.3, 0.35, 0.17])
# Top grasp flexion in the same order: bent mostly at the knuckles, fingers still in the head camera's view.
_TOP_GRASP_FLEXION = np.array([0.45, 0.25, 0.1, 0.5, 0.3, 0.12, 0.6, 0.38, 0.16, 0.55, 0.34, 0.14])
_CYCLE_S = 3.6  # one reach → grasp → release → retract cycle
# Wrist wander for multi-view sequences: peak translation (sum of three sines), lift above the egocentric rest
# pose and least wrist height above the table top (keep the wandering fingers off the table), and peak rotation
# about the hand's x (pronation/supination), y and z axes.
_WANDER_M = 0.22
_WANDER_LIFT_M = 0.05
_WANDER_CLEARANCE_M = 0.07
_WANDER_RAD = np.array([1.6, 0.7, 0.7])
_POSE_CHUNK = 32  # frames posed per batched hand-model call
# Without rendering, a hand counts as visible when at least this many joints are in the image with a clear line
# of sight through the scene and half their pixel bounding box covers ``min_visible_pixels`` (a stand-in for the
# rendered pixel count; they agree on 97-99% of rendered multi-view hands, test/synth/test_multiview_synth.py).
MIN_SEEN_JOINTS = 8


@dataclass(frozen=True)
class HandTruth:
    """Ground truth of one hand in one frame (metres; joints in ARCHITECTURE.md, Conventions order).

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


def _wiggle(
    rng: np.random.Generator, dims: int, amplitude: float, max_hz: float, min_hz: float = 0.05
) -> tuple[np.ndarray, ...]:
    """Random sum-of-sines parameters (amplitudes, frequencies, phases), for smooth pseudo-random motion."""
    return (
        rng.uniform(0.3, 1.0, (3, dims)) * amplitude / 3,
        rng.uniform(min_hz, max_hz, (3, dims)),
        rng.uniform(0, 2 * np.pi, (3, dims)),
    )


def _eval_wiggle(params: tuple[np.ndarray, ...], t: np.ndarray) -> np.ndarray:
    """(N, dims) values of a sum of sines at times t (N,)."""
    amp, freq, phase = params
    return (amp[None] * np.sin(2 * np.pi * freq[None] * t[:, None, None] + phase[None])).sum(1)


def _forearm_tube(rings: np.ndarray, segments: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """A tapered elliptic tube with ``rings`` (distances in metres along the arm from the wrist): per-vertex
    (ring index, y, z) cross-section offsets (R·S, 3) and outward faces. The rings up to 2 cm from the wrist
    enclose the hand mesh's cut (see :func:`_stub_faces`); behind them the arm is slimmer, as a real wrist is
    narrower than the hand's heel, and a little rounder toward the elbow. The wrist end is open (it lies inside
    the hand), the far end capped."""
    frac = np.minimum(rings / _FOREARM_LENGTH_M, 1.0)
    slim = np.where(rings > 0.0201, _FOREARM_SLIM, 1.0)
    half_width = (0.032 + 0.005 * np.sqrt(frac)) * slim
    half_depth = (0.0235 + 0.007 * np.sqrt(frac)) * slim
    angle = np.linspace(0, 2 * np.pi, segments, endpoint=False)

    def boxy(c: np.ndarray) -> np.ndarray:
        return np.sign(c) * np.abs(c) ** 0.8  # a superellipse: fuller flanks, like a wrist (and the hand's cut)

    profile = np.stack(
        [
            np.repeat(np.arange(len(rings)), segments).astype(np.float64),
            (half_width[:, None] * boxy(np.cos(angle))[None]).ravel(),
            (half_depth[:, None] * boxy(np.sin(angle))[None] - 0.003).ravel(),
        ],
        1,
    )
    ring, seg = np.meshgrid(np.arange(len(rings) - 1), np.arange(segments), indexing="ij")
    a = (ring * segments + seg).ravel()
    b = (ring * segments + (seg + 1) % segments).ravel()
    c, d = a + segments, b + segments
    # The far end is capped by a fan around a centre vertex (seen from multi-view cameras, an open end would
    # show the culled inside of the tube).
    centre = len(profile)
    last = (len(rings) - 1) * segments + np.arange(segments)
    cap = np.stack([np.full(segments, centre), np.roll(last, -1), last], 1)
    profile = np.vstack([profile, [len(rings) - 1, 0.0, -0.003]])
    return profile, np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1), cap])


def _stub_faces(model: OpenHandModel) -> np.ndarray:
    """(F,) bool: hand faces behind the wrist crease (rest-pose x < -12 mm in the wrist frame). The open
    model closes the hand with a rounded stub there; a real hand goes on into the forearm, so the renderer
    draws the forearm instead (the stub stays in the ground-truth mesh). Both sides share vertex order."""
    rest = model.forward(np.zeros((1, 16, 3), np.float32), side=HandSide.RIGHT).vertices[0]
    return np.all(rest[model.faces(HandSide.RIGHT)][..., 0] < -0.012, axis=1)


class _HandAnimator:
    """Keyframed reach → grasp → release → retract cycles for one hand toward one box, plus its forearm.

    Egocentric layout: the wrist rests near the table's front edge, 0.35–0.5 m from the head camera,
    so the hand spans ~150–250 px at 640x480 and its forearm enters from the bottom of the image, the
    way a head-mounted camera sees its wearer's hands (and the way MediaPipe's palm detector expects them).

    ``wander`` adds smooth wrist translation and rotation (mostly pronation/supination) away from the box, so the
    hand sweeps a volume in many orientations, as multi-view self-calibration needs; it is faded out on the
    approach and while holding the box. Its parameters are drawn last, so egocentric hands stay unchanged."""

    def __init__(
        self, rng: np.random.Generator, model: OpenHandModel, side: HandSide, scene: Scene, wander: bool = False
    ) -> None:
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
        pitch = rng.uniform(0.0, 0.2)  # fingers tilted down toward the table
        x_axis = np.cos(pitch) * forward - np.sin(pitch) * np.array([0, 0, 1.0])
        z_axis = np.sin(pitch) * forward + np.cos(pitch) * np.array([0, 0, 1.0])
        self.base = Rotation.from_matrix(np.stack([x_axis, np.cross(z_axis, x_axis), z_axis], 1))
        # Roll the thumb side up a little, more while grasping; mirrored for the left hand (+y is ulnar). Kept
        # small: the back of the hand stays toward the head camera, as in real tabletop grasps from above (a hand
        # seen edge-on from its thumb side is where MediaPipe misses hands and confuses their side).
        self.roll_axis = x_axis * -sign
        self.roll = (rng.uniform(0.1, 0.3), rng.uniform(0.15, 0.4))
        # A relaxed hand curls in a cascade, the index least and the little finger most (MediaPipe, trained on
        # real hands, finds natural poses far more reliably than uniform or random curls).
        relaxed = np.zeros((16, 3))
        relaxed[1:13, 0] = _RELAXED_FLEXION * rng.uniform(0.6, 1.3) + rng.uniform(-0.05, 0.05, 12)
        self.relaxed = relaxed
        # Grasps keep fingers in view, as a head camera sees them from behind: mostly a top grasp (fingers bent
        # at the knuckles over the box, thumb opposed), otherwise a pinch; never a fist seen from behind (hard
        # even on real images).
        pinch = named_local_angles("pinch")
        top_grasp = np.zeros((16, 3))
        top_grasp[1:13, 0] = _TOP_GRASP_FLEXION
        top_grasp[13:] = 0.8 * pinch[13:]
        self.grips = [top_grasp, pinch]
        self.grip_choice = rng.choice(2, size=64, p=[0.8, 0.2])
        self.offset_s = rng.uniform(0, _CYCLE_S)
        self.shape = np.clip(rng.normal(0.0, 0.04, model.num_shape_params), -0.1, 0.1)
        self.tremor = _wiggle(rng, 3, 0.006, 1.5)
        self.model = model
        cuff = rng.uniform(0.05, 0.14) if rng.random() < 0.6 else np.inf  # sleeve start behind the wrist
        extra = [cuff - 0.004, cuff] if np.isfinite(cuff) else []
        self.arm_rings = np.union1d(np.r_[_ARM_START_M, np.geomspace(0.02, _ARM_TUBE_M, 9)], extra)
        self.arm_profile, self.arm_faces = _forearm_tube(self.arm_rings)
        self.arm_sleeve = self.arm_rings[self.arm_profile[:, 0].astype(np.int64)] >= cuff
        # Elbow near the body, a little below the wrist: forearms rise from the bottom of the image and the
        # wrist stays nearly straight, as in relaxed reaching.
        self.elbow = np.array(
            [sign * rng.uniform(0.2, 0.26), front - rng.uniform(0.28, 0.34), self.rest[2] - rng.uniform(0.03, 0.08)]
        )
        self.sleeve_rgb = _SLEEVE_COLORS[rng.integers(len(_SLEEVE_COLORS))] * rng.uniform(0.85, 1.15)
        self.wander = None
        if wander:
            turn_amp, turn_hz, turn_phase = _wiggle(rng, 3, 1.0, 0.5, min_hz=0.2)
            self.wrist_floor_z = scene.table_top_z + _WANDER_CLEARANCE_M
            self.wander = (
                _wiggle(rng, 3, _WANDER_M, 0.6, min_hz=0.3),
                (turn_amp * _WANDER_RAD, turn_hz, turn_phase),
            )

    def arm_vertices(self, wrist: np.ndarray, wrist_rot: np.ndarray) -> np.ndarray:
        """Forearm tube vertices in the world. The tube leaves the wrist along the hand's own axis (hiding the
        hand mesh's stub, so the hand narrows into the arm at the wrist crease as real hands do) and bends
        smoothly toward the elbow (a quadratic Bézier), each ring rolled with the back of the hand."""
        hand_x, hand_z = wrist_rot[:, 0], wrist_rot[:, 2]
        to_elbow = self.elbow - wrist
        far = wrist + to_elbow * (_ARM_TUBE_M / np.linalg.norm(to_elbow))
        ctrl = wrist - hand_x * _ARM_BEND_M
        # Rings sit at their arc length along the curve (sampled densely, then interpolated).
        dense = np.linspace(0.0, 1.0, 48)[:, None]
        points = (1 - dense) ** 2 * wrist + 2 * dense * (1 - dense) * ctrl + dense**2 * far
        arc = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))]
        t = np.interp(self.arm_rings, arc, dense[:, 0])[:, None]
        centre = (1 - t) ** 2 * wrist + 2 * t * (1 - t) * ctrl + t**2 * far
        tangent = 2 * (1 - t) * (ctrl - wrist) + 2 * t * (far - ctrl)  # toward the elbow
        x_axis = -tangent / np.linalg.norm(tangent, axis=1, keepdims=True)
        z_axis = hand_z - (x_axis @ hand_z)[:, None] * x_axis
        z_axis /= np.linalg.norm(z_axis, axis=1, keepdims=True)
        y_axis = np.cross(z_axis, x_axis)
        ring = self.arm_profile[:, 0].astype(np.int64)
        return centre[ring] + self.arm_profile[:, 1:2] * y_axis[ring] + self.arm_profile[:, 2:3] * z_axis[ring]

    def poses(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Axis-angle poses (N, 16, 3) and wrist translations (N, 3) at times (N,) seconds."""
        t = times + self.offset_s
        cycle = np.floor(t / _CYCLE_S).astype(np.int64)
        phase = t / _CYCLE_S - cycle
        # Keyframes: (phase, wrist position, grip amount 0 = relaxed, 1 = closed, wander weight).
        keys = [
            (0.0, self.rest, 0.0, 1.0),
            (0.12, self.rest, 0.0, 1.0),
            (0.38, self.pregrasp, 0.1, 0.6),
            (0.52, self.grasp, 1.0, 0.0),
            (0.68, self.grasp, 1.0, 0.0),
            (0.78, self.pregrasp, 0.0, 0.6),
            (1.0, self.rest, 0.0, 1.0),
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
        wrist = Rotation.from_rotvec(roll[:, None] * self.roll_axis) * self.base
        if self.wander is not None:
            free = np.array([k[3] for k in keys])
            free = (free[seg] + w * (free[seg + 1] - free[seg]))[:, None]
            shift, turn = self.wander
            transl = transl + free * (_eval_wiggle(shift, times) + [0.0, 0.0, _WANDER_LIFT_M])
            # A smooth floor (softplus, about 1 cm wide) keeps the wrist above the table top.
            transl[:, 2] = self.wrist_floor_z + 0.01 * np.logaddexp(0.0, (transl[:, 2] - self.wrist_floor_z) / 0.01)
            wrist = wrist * Rotation.from_rotvec(free * _eval_wiggle(turn, times))  # about the hand's own axes
        pose[:, 0] = wrist.as_rotvec()
        return pose, transl


class _CameraPath:
    """Smooth egocentric head motion: small translations and gaze wander around looking at the table."""

    def __init__(self, rng: np.random.Generator, scene: Scene) -> None:
        top = scene.table_top_z
        front = scene.table_front_y
        # Head of a person at the table's front edge, looking down ~60° at the reachable area (close enough
        # that hands span ~150-250 px: MediaPipe's palm detector misses hands much smaller than that).
        self.eye = np.array([rng.uniform(-0.04, 0.04), front - rng.uniform(0.04, 0.1), top + rng.uniform(0.42, 0.48)])
        self.target = np.array([0.0, front + 0.18, top])
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


PosedHand = tuple[_HandAnimator, np.ndarray, np.ndarray, np.ndarray]
"""One hand in one frame: its animator, axis-angle pose (16, 3), world vertices (V, 3) and joints (21, 3)."""


@dataclass(frozen=True)
class ViewRender:
    """Everything one camera sees of one frame (see :class:`SynthFrame` for the arrays)."""

    rgb: np.ndarray
    depth: np.ndarray
    segmentation: np.ndarray
    scene_surface: np.ndarray
    hands: tuple[HandTruth, ...]


class SensorNoise:
    """A pre-drawn field of per-pixel image noise; each frame (and stream, e.g. camera) reads a shifted window, so
    noise changes every frame without drawing a full frame of random numbers each time."""

    _PAD = 32

    def __init__(self, rng: np.random.Generator, height: int, width: int, std: float, streams: int = 1) -> None:
        shape = (height + self._PAD, width + self._PAD, 3)
        self._field = (rng.standard_normal(shape) * std + 0.5).astype(np.float32)
        self._offsets = rng.integers(0, self._PAD, size=(streams, 1024, 2))

    def window(self, index: int, height: int, width: int, stream: int = 0) -> np.ndarray:
        """(height, width, 3) float32 noise of frame ``index`` (carries the +0.5 that makes a uint8 cast round)."""
        dy, dx = self._offsets[stream, index % self._offsets.shape[1]]
        return self._field[dy : dy + height, dx : dx + width]


class HandStage:
    """A seeded scene with animated, skin-shaded hands and forearms and a light: what any camera looks at.

    :meth:`posed_frames` animates the hands, :meth:`render_view` renders them from any camera pose and
    :meth:`view_truths` gives the ground truth one camera sees without rendering; the egocentric
    :class:`SyntheticSequence` and the multi-view generator (``synth/multiview.py``) add their cameras."""

    def __init__(
        self,
        rng: np.random.Generator,
        num_hands: int,
        fps: float,
        model: OpenHandModel | None,
        min_visible_pixels: int,
        *,
        wander: bool = False,
        closed_room: bool = False,
    ) -> None:
        """``wander``: wrist wander on top of the reach cycle (see :class:`_HandAnimator`); ``closed_room``:
        walls all around (see :func:`make_scene`)."""
        if num_hands not in (1, 2):
            raise ValueError(f"num_hands must be 1 or 2, got {num_hands}")
        self.fps = float(fps)
        self.min_visible_pixels = int(min_visible_pixels)
        self.scene = make_scene(int(rng.integers(2**31)), closed=closed_room)
        self.model = model or OpenHandModel()
        sides = [HandSide.LEFT, HandSide.RIGHT] if num_hands == 2 else [HandSide(rng.choice(["left", "right"]))]
        self.hands = [_HandAnimator(rng, self.model, side, self.scene, wander) for side in sides]
        tone = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.93, 1.07, 3)
        skin = _skin_albedo(rng, self.model, tone)
        self.skin = {h.side: skin for h in self.hands}
        drawn = ~_stub_faces(self.model)
        self.faces = {h.side: self.model.faces(h.side)[drawn] for h in self.hands}
        self.arm_albedo = {
            h.side: np.where(h.arm_sleeve[:, None], h.sleeve_rgb, tone * _FOREARM_TINT).astype(np.float32)
            for h in self.hands
        }
        azimuth, elevation = rng.uniform(0, 2 * np.pi), rng.uniform(np.radians(35), np.radians(75))
        self.light_world = np.array(
            [np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation), np.sin(elevation)]
        )
        self.ambient = float(rng.uniform(0.3, 0.45))

    def posed_frames(self, num_frames: int) -> Iterator[tuple[int, list[PosedHand]]]:
        """Frames 0..num_frames-1 lazily as (index, posed hands); hand models are posed in batches of frames.

        Every batch is a whole chunk of ``_POSE_CHUNK`` frames, also past the sequence's end: a matrix product's
        float32 rounding depends on its batch size (the BLAS kernel's blocking), so a frame's pixels must not
        depend on how many frames were asked for."""
        for chunk_start in range(0, num_frames, _POSE_CHUNK):
            indices = np.arange(chunk_start, chunk_start + _POSE_CHUNK)
            posed = [self.pose_hand(hand, indices / self.fps) for hand in self.hands]
            for k, index in enumerate(indices[: num_frames - chunk_start]):
                yield int(index), [(h, p[0][k], p[1][k], p[2][k]) for h, p in zip(self.hands, posed, strict=True)]

    def pose_hand(self, hand: _HandAnimator, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One hand at ``times`` (N,) seconds: axis-angle poses (N, 16, 3), world vertices (N, V, 3) and joints
        (N, 21, 3) (float32), in one batched hand-model call."""
        pose, transl = hand.poses(times)
        out = self.model.forward(
            pose.astype(np.float32),
            np.broadcast_to(hand.shape, (len(times), len(hand.shape))).astype(np.float32),
            side=hand.side,
            transl=transl.astype(np.float32),
        )
        return pose, out.vertices, out.joints

    def render_view(self, hands: list[PosedHand], cam: PinholeCamera, w2c: np.ndarray, noise: np.ndarray) -> ViewRender:
        """Render the scene from ``w2c`` (world→optical frame), z-buffer all forearms and hands in one pass against
        its depth, shade, blur like a lens, add ``noise`` ((H, W, 3) float32, see :class:`SensorNoise`) and
        collect ground truth."""
        rot, trans = w2c[:3, :3], w2c[:3, 3]
        scene = render_scene(self.scene, cam, w2c, self.light_world, ambient=self.ambient)
        # Colours stay on the 0..255 scale throughout (fewer full-frame passes); the scene's depth array is
        # reused as the frame's (0 = no surface), and only fragment pixels are touched after this.
        image = cv2.multiply(scene.albedo, cv2.merge([scene.shading] * 3), dtype=cv2.CV_32F).reshape(-1, 3)
        depth = scene.depth.ravel()
        surface = scene.surface.ravel()
        seg = np.zeros(cam.height * cam.width, dtype=np.uint8)
        light_cam = (rot @ self.light_world).astype(np.float32)
        up_cam = rot[:, 2].astype(np.float32)
        verts, faces, colors, labels = [], [], [], []
        offset = 0
        for hand, pose, verts_world, joints_world in hands:
            hand_label = SEGMENTATION_LABELS[hand.side]
            arm_world = hand.arm_vertices(joints_world[0].astype(np.float64), Rotation.from_rotvec(pose[0]).as_matrix())
            for mesh_world, mesh_faces, albedo, label in (
                (arm_world, hand.arm_faces, self.arm_albedo[hand.side], ARM_LABEL),
                (verts_world.astype(np.float64), self.faces[hand.side], self.skin[hand.side], hand_label),
            ):
                mesh_cam = mesh_world @ rot.T + trans
                verts.append(mesh_cam)
                faces.append(mesh_faces + offset)
                colors.append(_shade_vertices(mesh_cam, mesh_faces, albedo, light_cam, up_cam, self.ambient) * 255)
                labels.append(np.full(len(mesh_faces), label, dtype=np.uint8))
                offset += len(mesh_cam)
        all_faces = np.concatenate(faces)
        frags = rasterize(np.concatenate(verts), all_faces, cam, cull_back=True)
        behind = depth[frags.pixel]
        win = (frags.depth < behind) | (behind == 0)
        pix, face, bary = frags.pixel[win], frags.face[win], frags.bary[win].astype(np.float32)
        depth[pix] = frags.depth[win]
        seg[pix] = np.concatenate(labels)[face]
        surface[pix] = -1
        # Corner colours per face first (few faces), then one gather of whole rows per fragment.
        face_rgb = np.concatenate(colors)[all_faces]
        image[pix] = np.einsum("nk,nkc->nc", bary, face_rgb[face])
        counts = np.bincount(seg, minlength=ARM_LABEL + 1)
        optics = cv2.GaussianBlur(image.reshape(cam.height, cam.width, 3), (3, 3), _BLUR_SIGMA_PX)
        optics += noise  # the noise carries the +0.5 that makes the uint8 cast round
        rgb = np.clip(optics, 0, 255, out=optics).astype(np.uint8)
        return ViewRender(
            rgb=rgb,
            depth=scene.depth,
            segmentation=seg.reshape(cam.height, cam.width),
            scene_surface=scene.surface,
            hands=self.view_truths(hands, cam, w2c, [int(counts[SEGMENTATION_LABELS[h.side]]) for h, *_ in hands]),
        )

    def view_truths(
        self, hands: list[PosedHand], cam: PinholeCamera, w2c: np.ndarray, pixel_counts: list[int] | None = None
    ) -> tuple[HandTruth, ...]:
        """Ground truth of ``hands`` seen from ``w2c``. With ``pixel_counts`` (rendered segmentation) a hand is
        visible when it covers at least ``min_visible_pixels``; without (nothing rendered; ``pixel_count`` is then
        0) the geometric rule of :meth:`visible_without_render` decides."""
        truths = []
        for k, (hand, pose, verts_world, joints_world) in enumerate(hands):
            joints_cam, landmarks, in_image = project_joints(joints_world.astype(np.float64), cam, w2c)
            if pixel_counts is None:
                count = 0
                visible = bool(self.visible_without_render(joints_world, landmarks, in_image, w2c))
            else:
                count = pixel_counts[k]
                visible = count >= self.min_visible_pixels
            truths.append(
                HandTruth(
                    side=hand.side,
                    joints_world=joints_world.astype(np.float64),
                    joints_cam=joints_cam,
                    vertices_world=verts_world.astype(np.float64),
                    pose=pose,
                    shape=hand.shape.copy(),
                    landmarks_px=landmarks,
                    joints_in_image=in_image,
                    pixel_count=count,
                    visible=visible,
                )
            )
        return tuple(truths)

    def visible_without_render(
        self, joints_world: np.ndarray, landmarks: np.ndarray, in_image: np.ndarray, w2c: np.ndarray
    ) -> np.ndarray:
        """(...) whether hands with joints (..., 21, 3), their pixels (..., 21, 2) and in-image flags (..., 21)
        count as visible from ``w2c`` without rendering: at least :data:`MIN_SEEN_JOINTS` joints in the image
        with a clear line of sight through the scene (hands and forearms hide nothing here), and half the pixel
        bounding box of those joints at least ``min_visible_pixels``."""
        eye = -w2c[:3, :3].T @ w2c[:3, 3]
        seen = np.asarray(in_image, dtype=bool).copy()
        seen[seen] = ~self.scene.blocks(np.asarray(joints_world, dtype=np.float64)[seen], eye)
        lo = np.where(seen[..., None], landmarks, np.inf).min(axis=-2)
        hi = np.where(seen[..., None], landmarks, -np.inf).max(axis=-2)
        with np.errstate(invalid="ignore"):
            area = np.prod(hi - lo, axis=-1)
        return (seen.sum(-1) >= MIN_SEEN_JOINTS) & (0.5 * area >= self.min_visible_pixels)


def project_joints(
    joints_world: np.ndarray, cam: PinholeCamera, w2c: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joints (..., 21, 3) in the camera frame, their pixels (..., 21, 2) and whether each lies inside the image
    in front of the camera (..., 21) (occlusion not considered)."""
    joints_cam = joints_world @ w2c[:3, :3].T + w2c[:3, 3]
    landmarks = cam.project(joints_cam)
    in_image = (
        (joints_cam[..., 2] > 0)
        & np.all(landmarks >= -0.5, axis=-1)
        & (landmarks[..., 0] <= cam.width - 0.5)
        & (landmarks[..., 1] <= cam.height - 0.5)
    )
    return joints_cam, landmarks, in_image


class SyntheticSequence(HandStage):
    """A seeded egocentric sequence: its scene, hands, head-camera path and light; :meth:`frames` renders it."""

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
        rng = np.random.default_rng(seed)
        super().__init__(rng, num_hands, fps, model, min_visible_pixels)
        self.camera = camera or default_camera()
        self.camera_path = _CameraPath(rng, self.scene)
        self.noise_std = float(noise_std)
        self._noise = SensorNoise(rng, self.camera.height, self.camera.width, noise_std)

    def frames(self, num_frames: int) -> Iterator[SynthFrame]:
        """Render frames 0..num_frames-1 lazily (hand models are posed in batches of a few frames)."""
        for index, hands in self.posed_frames(num_frames):
            yield self.render_frame(index, hands)

    def render_frame(self, index: int, hands: list[PosedHand]) -> SynthFrame:
        """Render frame ``index`` (its posed hands from :meth:`posed_frames`) from the head camera's pose at its
        time; :meth:`render_view` renders the same hands from any other camera."""
        cam = self.camera
        w2c = self.camera_path.world_to_camera(index / self.fps)
        view = self.render_view(hands, cam, w2c, self._noise.window(index, cam.height, cam.width))
        return SynthFrame(
            index=index,
            stamp=index / self.fps,
            rgb=view.rgb,
            depth=view.depth,
            segmentation=view.segmentation,
            scene_surface=view.scene_surface,
            T_world_camera=inverse_matrices(w2c),
            camera=cam,
            hands=view.hands,
        )


def _shade_vertices(
    verts_cam: np.ndarray,
    faces: np.ndarray,
    albedo: np.ndarray,
    light_cam: np.ndarray,
    up_cam: np.ndarray,
    ambient: float,
) -> np.ndarray:
    """Per-vertex colour (V, 3) float32 of skin (or sleeve), interpolated across faces by the rasteriser
    (vertices are a few pixels apart, so this matches per-pixel shading at a fraction of the cost):
    sky-weighted ambient (more light on upward-facing skin), wrapped Lambertian per channel (light bleeds
    further around the terminator in red, a cheap stand-in for subsurface scattering) and a soft sheen."""
    normals = vertex_normals(verts_cam, faces).astype(np.float32)
    view = -verts_cam.astype(np.float32)
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    n_dot_l = normals @ light_cam
    diffuse = np.clip((n_dot_l[:, None] + _SKIN_WRAP) / (1 + _SKIN_WRAP), 0, 1)
    sky = ambient * (0.8 + 0.2 * (normals @ up_cam))
    half = view + light_cam
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    sheen = 0.07 * np.clip(np.einsum("ij,ij->i", normals, half), 0, 1) ** 18 * (n_dot_l > 0)
    return albedo * (sky[:, None] + (1 - ambient) * diffuse) + sheen[:, None]


def _skin_albedo(rng: np.random.Generator, model: OpenHandModel, tone: np.ndarray) -> np.ndarray:
    """(V, 3) float32 hand albedo: ``tone`` with smooth blotches (low-frequency waves over the rest pose, as
    real skin varies over centimetres, not from pore to pore), redder knuckles and fingertips, a lighter palm
    and pale pink nails. Vertex order is shared by both sides, so the right rest pose decides for both."""
    rest = model.forward(np.zeros((1, 16, 3), np.float32), side=HandSide.RIGHT)
    verts, joints = rest.vertices[0].astype(np.float64), rest.joints[0].astype(np.float64)
    normals = vertex_normals(verts, model.faces(HandSide.RIGHT))
    waves = rng.normal(0.0, 1.0, (3, 3)) * 2 * np.pi / rng.uniform(0.03, 0.08, (3, 1))
    blotch = 1 + 0.035 * np.sin(verts @ waves.T + rng.uniform(0, 2 * np.pi, 3)).sum(1)
    albedo = tone[None] * blotch[:, None]
    # Skin around the MCP and PIP knuckles and the fingertips flushes slightly red.
    flush_at = joints[[5, 6, 9, 10, 13, 14, 17, 18, 4, 8, 12, 16, 20]]
    near = np.exp(-((np.linalg.norm(verts[:, None] - flush_at[None], axis=2).min(1) / 0.008) ** 2))
    albedo *= 1 - 0.12 * near[:, None] * np.array([0.0, 1.0, 1.0])
    palm = np.clip(-normals[:, 2], 0, 1)[:, None]  # palmar skin is lighter and pinker on every skin tone
    albedo = albedo * (1 - 0.35 * palm) + 0.35 * palm * (0.55 * tone + 0.45 * _PALM_RGB)
    nails = _nail_weights(verts, joints, normals)
    return (np.clip(albedo, 0, 1) * (1 - nails) + _NAIL_RGB * tone**0.25 * nails).astype(np.float32)


def _nail_weights(verts: np.ndarray, joints: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(V, 1) weight in [0, 1] of fingernail colour per rest-pose hand vertex: the dorsal half of each distal
    phalanx's last two thirds."""
    weight = np.zeros(len(verts))
    for tip in (4, 8, 12, 16, 20):
        axis = joints[tip] - joints[tip - 1]
        along = (verts - joints[tip - 1]) @ axis / (axis @ axis)
        radial = np.linalg.norm(verts - joints[tip - 1] - along[:, None] * axis, axis=1)
        on_nail = (along > 0.3) & (along < 0.95) & (radial < 0.011)
        weight = np.maximum(weight, on_nail * np.clip((normals[:, 2] - 0.35) / 0.4, 0, 1))
    return weight[:, None]


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


def stamp_ns(frame: SynthFrame, offset_ns: int = 0) -> int:
    """Integer nanosecond stamp of a synthetic frame."""
    return offset_ns + round(frame.stamp * 1_000_000_000)

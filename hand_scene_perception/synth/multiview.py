"""Deterministic synthetic multi-view sequences with ground truth, for uncalibrated multi-camera hand fusion
(issue 5, HGGT-like rigs): the egocentric generator's scene and animated hands with forearms, seen by 2–8 static
cameras placed at random around the hands' workspace, each with its own random intrinsics (and optionally its
own resolution).

Rig (like the multi-camera captures HGGT and POEM train and test on): cameras on a partial sphere 0.45–0.9 m
from the workspace centre (the mean of the hands' joints over the first seconds), 10–70° above it, at least
``min_separation_deg`` apart as seen from the centre, never inside the person's body (behind the hands below
50° elevation), with a clear line of sight to the centre; each looks at the centre with a small random offset
and roll, through a pinhole with a 50–85° horizontal field of view (fx = fy, principal point within a few
pixels of the image centre). A camera that would not see every hand in at least ``min_view_fraction`` of the
first seconds (by the geometric visibility rule below) is drawn again.

The hands wander (wrist translation and rotation on top of the reach → grasp → release cycle), so over ~100
frames they sweep a volume in many orientations, as self-calibration from hands needs.

Visibility (:attr:`HandTruth.visible`): on rendered frames, as in the egocentric generator, a hand covering at
least ``min_visible_pixels`` of its view's segmentation; with ``render=False`` (nothing rasterised, for
oracle-mode benchmarks) a hand with at least :data:`~.sequence.MIN_SEEN_JOINTS` joints inside the image and not
hidden by the scene whose pixel extent would cover ``min_visible_pixels``
(:meth:`~.sequence.HandStage.visible_without_render`; ``pixel_count`` is then 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..core.camera import PinholeCamera
from ..core.hand_model.open_model import OpenHandModel
from ..core.hand_model.side import HandSide
from ..core.raster import look_at
from ..core.transforms import inverse_matrices
from .sequence import HandStage, HandTruth, SensorNoise, project_joints

MIN_VIEWS, MAX_VIEWS = 2, 8
# Common sensor sizes (width, height) for ``random_resolution``.
RESOLUTIONS = ((640, 480), (848, 480), (1280, 720))
_DISTANCE_M = (0.45, 0.9)
_ELEVATION_DEG = (10.0, 70.0)
_FOV_DEG = (50.0, 85.0)
_PRINCIPAL_JITTER_PX = 4.0
_AIM_JITTER_M = 0.03  # the optical axis passes this close (std per axis) to the workspace centre
_ROLL_DEG = 12.0
# The person stands at -y, facing +y: no camera within this azimuth of straight behind the hands unless it
# looks down from at least the given elevation (over the head or shoulder).
_BODY_AZIMUTH_DEG = 35.0
_BODY_ELEVATION_DEG = 50.0
# Visibility check of a drawn camera: poses sampled over the first seconds of the sequence.
_CHECK_SECONDS = 8.0
_CHECK_HZ = 5.0
_MAX_ATTEMPTS = 400


@dataclass(frozen=True)
class ViewTruth:
    """Ground truth of one camera: its name, true intrinsics (with its own image size) and the optical frame's
    pose in the world (static over the sequence)."""

    name: str
    camera: PinholeCamera
    T_world_camera: np.ndarray

    @property
    def world_to_camera(self) -> np.ndarray:
        """(4, 4) world→optical-frame transform."""
        return inverse_matrices(self.T_world_camera)


@dataclass(frozen=True)
class MultiViewFrame:
    """One instant seen by every camera. Per view (in :attr:`MultiViewSequence.views` order): ``images`` RGB
    (H, W, 3) uint8, ``depths`` (H, W) float32 metres (0 = no surface), ``segmentations`` (H, W) uint8 (labels as
    in :class:`~.sequence.SynthFrame`), all None when not rendered, and ``hands``: the frame's hands as that view
    sees them (joints in its camera frame, pixels, visibility); ``depths``/``segmentations`` are empty when a
    frame is built elsewhere without them. Per hand (in the sequence's hand order): world
    joints (21, 3), world vertices (V, 3) and sides."""

    index: int
    stamp: float
    images: tuple[np.ndarray | None, ...]
    hands: tuple[tuple[HandTruth, ...], ...]
    joints_world: tuple[np.ndarray, ...]
    vertices_world: tuple[np.ndarray, ...]
    sides: tuple[HandSide, ...]
    depths: tuple[np.ndarray | None, ...] = ()
    segmentations: tuple[np.ndarray | None, ...] = ()


class MultiViewSequence(HandStage):
    """A seeded multi-view sequence: scene, wandering hands, a static rig of :attr:`views`; :meth:`frames`
    renders it (or only projects its ground truth)."""

    def __init__(
        self,
        seed: int,
        num_views: int = 4,
        num_hands: int = 1,
        *,
        fps: float = 30.0,
        model: OpenHandModel | None = None,
        width: int = 640,
        height: int = 480,
        random_resolution: bool = False,
        noise_std: float = 2.0,
        min_visible_pixels: int = 200,
        min_separation_deg: float = 25.0,
        min_view_fraction: float = 0.8,
    ) -> None:
        """``width``/``height``: every view's image size unless ``random_resolution`` picks one of
        :data:`RESOLUTIONS` per view; ``noise_std``: image noise in 8-bit grey levels; ``min_separation_deg``: least
        angle between two cameras seen from the workspace centre; ``min_view_fraction``: least fraction of the
        checked frames in which each camera must see each hand."""
        if not _is_int(num_views) or not MIN_VIEWS <= num_views <= MAX_VIEWS:
            raise ValueError(f"num_views must be an integer in {MIN_VIEWS}..{MAX_VIEWS}, got {num_views!r}")
        if not (_is_int(width) and _is_int(height)) or width < 16 or height < 16:
            raise ValueError(f"width and height must be integers >= 16, got {width!r}x{height!r}")
        if not isinstance(fps, (int, float, np.integer, np.floating)) or not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if not 0.0 <= min_view_fraction <= 1.0 or not 0.0 <= min_separation_deg < 90.0:
            raise ValueError(
                f"min_view_fraction must be in [0, 1] and min_separation_deg in [0, 90), "
                f"got {min_view_fraction} and {min_separation_deg}"
            )
        rng = np.random.default_rng(seed)
        super().__init__(rng, num_hands, fps, model, min_visible_pixels, wander=True, closed_room=True)
        samples = np.arange(0.0, _CHECK_SECONDS, 1.0 / _CHECK_HZ)
        joints = np.stack([self.pose_hand(hand, samples)[2] for hand in self.hands]).astype(np.float64)
        self.workspace_centre = joints.reshape(-1, 3).mean(axis=0)
        self.min_separation_deg = float(min_separation_deg)
        views: list[ViewTruth] = []
        fractions: list[np.ndarray] = []
        for k in range(int(num_views)):
            size = RESOLUTIONS[rng.integers(len(RESOLUTIONS))] if random_resolution else (int(width), int(height))
            view, fraction = self._draw_view(rng, f"cam{k}", size, views, joints, min_view_fraction)
            views.append(view)
            fractions.append(fraction)
        self.views = tuple(views)
        self.check_fractions = np.stack(fractions)
        """(views, hands) fraction of the checked frames in which each view sees each hand (geometric rule)."""
        self.noise_std = float(noise_std)
        self._noise = SensorNoise(
            rng,
            max(v.camera.height for v in views),
            max(v.camera.width for v in views),
            noise_std,
            streams=len(views),
        )
        self._w2c = [v.world_to_camera for v in views]

    def frames(self, num_frames: int, render: bool = True) -> Iterator[MultiViewFrame]:
        """Frames 0..num_frames-1 lazily. ``render=False`` skips all rasterisation (posing and projection only):
        ``images``/``depths``/``segmentations`` are None and visibility follows the geometric rule."""
        for index, hands in self.posed_frames(num_frames):
            per_view, images, depths, segmentations = [], [], [], []
            for k, (view, w2c) in enumerate(zip(self.views, self._w2c, strict=True)):
                cam = view.camera
                if render:
                    out = self.render_view(hands, cam, w2c, self._noise.window(index, cam.height, cam.width, k))
                    per_view.append(out.hands)
                    images.append(out.rgb)
                    depths.append(out.depth)
                    segmentations.append(out.segmentation)
                else:
                    per_view.append(self.view_truths(hands, cam, w2c))
                    images.append(None)
                    depths.append(None)
                    segmentations.append(None)
            first = per_view[0]
            yield MultiViewFrame(
                index=index,
                stamp=index / self.fps,
                images=tuple(images),
                hands=tuple(per_view),
                joints_world=tuple(h.joints_world for h in first),
                vertices_world=tuple(h.vertices_world for h in first),
                sides=tuple(h.side for h in first),
                depths=tuple(depths),
                segmentations=tuple(segmentations),
            )

    def _draw_view(
        self,
        rng: np.random.Generator,
        name: str,
        size: tuple[int, int],
        others: list[ViewTruth],
        joints: np.ndarray,
        min_view_fraction: float,
    ) -> tuple[ViewTruth, np.ndarray]:
        """A camera that satisfies the rig's constraints (module docstring) and sees every hand in at least
        ``min_view_fraction`` of the sampled poses ``joints`` (hands, T, 21, 3); after :data:`_MAX_ATTEMPTS`
        draws, the one that sees the hands best. Returns it and its per-hand visible fractions."""
        width, height = size
        centre = self.workspace_centre
        taken = [self._direction(v) for v in others]
        best: tuple[float, ViewTruth, np.ndarray] | None = None
        for _ in range(_MAX_ATTEMPTS):
            azimuth = rng.uniform(0.0, 2 * np.pi)
            elevation = np.radians(rng.uniform(*_ELEVATION_DEG))
            distance = rng.uniform(*_DISTANCE_M)
            fov = np.radians(rng.uniform(*_FOV_DEG))
            jitter = rng.uniform(-_PRINCIPAL_JITTER_PX, _PRINCIPAL_JITTER_PX, 2)
            aim = rng.normal(0.0, _AIM_JITTER_M, 3)
            roll = np.radians(rng.uniform(-_ROLL_DEG, _ROLL_DEG))
            direction = np.array(
                [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)]
            )
            behind = np.degrees(np.arccos(np.clip(-direction[1] / np.cos(elevation), -1, 1)))
            if behind < _BODY_AZIMUTH_DEG and np.degrees(elevation) < _BODY_ELEVATION_DEG:
                continue
            if any(np.degrees(np.arccos(np.clip(direction @ d, -1, 1))) < self.min_separation_deg for d in taken):
                continue
            eye = centre + distance * direction
            if self.scene.blocks(centre[None], eye)[0]:
                continue  # behind a wall or inside the furniture
            focal = 0.5 * width / np.tan(fov / 2)
            camera = PinholeCamera.from_intrinsics(
                fx=focal,
                fy=focal,
                cx=(width - 1) / 2 + jitter[0],
                cy=(height - 1) / 2 + jitter[1],
                width=width,
                height=height,
            )
            rolled = np.eye(4)
            rolled[:3, :3] = Rotation.from_rotvec([0.0, 0.0, roll]).as_matrix()
            w2c = rolled @ look_at(eye, centre + aim, up=(0.0, 0.0, 1.0))
            _, landmarks, in_image = project_joints(joints, camera, w2c)
            fraction = self.visible_without_render(joints, landmarks, in_image, w2c).mean(-1)
            view = ViewTruth(name=name, camera=camera, T_world_camera=inverse_matrices(w2c))
            if fraction.min() >= min_view_fraction:
                return view, fraction
            if best is None or fraction.min() > best[0]:
                best = (float(fraction.min()), view, fraction)
        if best is None:
            raise RuntimeError(f"no placement for {name} satisfies the rig constraints; lower min_separation_deg")
        return best[1], best[2]

    def _direction(self, view: ViewTruth) -> np.ndarray:
        """Unit vector from the workspace centre to a camera."""
        offset = view.T_world_camera[:3, 3] - self.workspace_centre
        return offset / np.linalg.norm(offset)


def _is_int(value: object) -> bool:
    """Whether ``value`` is an integer (numpy's too), and not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

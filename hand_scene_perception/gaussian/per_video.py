"""Per-video mode (the CPU mode): learn one hand's Gaussian avatar from a video's frames and tracked meshes.

Each frame's hand becomes a :class:`HandView`: a square crop around the tracked mesh's projection, resized to
``crop_size`` pixels, with the crop's own pinhole camera (so rendering the crop costs the same for a near hand and a
far one), the hand's pixels (a given segmentation, else the tracked mesh's silhouette) and the tracked hand-model
parameters in the camera frame. :func:`fit_avatar` then learns the avatar's appearance from the training views by
Adam on L1 + D-SSIM between the crop rendered on black and the crop's hand pixels on black (3DGS's weights: the
Hand-4DGS paper's were not in the material available here), plus the representation's opacity regulariser and a
pull of each scale toward its base. With ``refine_pose`` each training view's pose and translation get a learnt
correction once the appearance has settled (``pose_start``), held near the tracked pose by a prior: the image
loss moves the mesh where the pixels say the hand is. :func:`evaluate_views` renders held-out views (their pose
refined against the image with the appearance frozen, when asked) and measures PSNR and SSIM on the hand's pixels.

Fitting is resumable: :class:`FitCheckpoint` holds the step, the avatar, the optimiser and the pose corrections,
and the order of training views is a function of the seed and the epoch, so a resumed fit continues as the
uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ..core.camera import PinholeCamera
from ..core.hand_model import HandModel, HandSide
from ..core.hand_model.base import HandModelOutput
from ..core.raster import rasterize
from .avatar_file import load_weights_file
from .mesh_gaussians import MeshGaussians
from .metrics import masked_psnr, masked_ssim
from .raster import render_gaussians

CROP_SIZE = 128
# The crop's side is the mesh's projected extent times this: room for the tracked mesh being off by a little.
BOX_PADDING = 1.3
# A hand whose crop would cover fewer image pixels than this is too small to learn appearance from.
MIN_BOX_PX = 16
CHECKPOINT_FORMAT = "hand_scene_perception.gaussian_fit"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class HandView:
    """One hand in one frame, ready to fit: ``image`` (S, S, 3) float32 in [0, 1] and ``mask`` (S, S) bool (its
    hand pixels) of the crop, ``camera`` the crop's pinhole camera, ``pose`` (16, 3), ``shape`` (K,) and
    ``translation`` (3,) the tracked hand-model parameters in the camera frame."""

    frame_index: int
    side: HandSide
    image: np.ndarray
    mask: np.ndarray
    camera: PinholeCamera
    pose: np.ndarray
    shape: np.ndarray
    translation: np.ndarray


def crop_view(frame_index: int, image_rgb: np.ndarray, camera: PinholeCamera, side: HandSide, pose: np.ndarray,
              shape: np.ndarray, translation: np.ndarray, model: HandModel, hand_mask: np.ndarray | None = None,
              crop_size: int = CROP_SIZE) -> HandView | None:  # fmt: skip
    """The :class:`HandView` of one tracked hand, or None when the mesh is not in front of the camera or its crop
    would be under MIN_BOX_PX. ``hand_mask`` (H, W) bool: the hand's pixels if known (a segmentation), else the
    posed mesh's silhouette is used."""
    if camera.is_distorted or camera.skew:
        raise ValueError("the Gaussian fit renders pinhole crops: undistort the images (and camera) first")
    pose = np.asarray(pose, np.float64).reshape(16, 3)
    shape = np.asarray(shape, np.float64).reshape(-1)
    translation = np.asarray(translation, np.float64).reshape(3)
    if not (np.all(np.isfinite(pose)) and np.all(np.isfinite(shape)) and np.all(np.isfinite(translation))):
        return None
    vertices = np.asarray(model.forward(pose.astype(np.float32), shape.astype(np.float32), side=side,
                                        transl=translation.astype(np.float32)).vertices[0], np.float64)  # fmt: skip
    if np.any(vertices[:, 2] <= 0.01):
        return None
    uv = camera.project(vertices)
    low, high = uv.min(axis=0), uv.max(axis=0)
    side_px = float(np.max(high - low)) * BOX_PADDING
    if not math.isfinite(side_px) or side_px < MIN_BOX_PX:
        return None
    scale = crop_size / side_px
    origin = 0.5 * (low + high) - 0.5 * side_px  # image coordinates of the crop pixel (0, 0)'s centre, / scale
    warp = np.array([[scale, 0.0, -origin[0] * scale], [0.0, scale, -origin[1] * scale]])
    size = (crop_size, crop_size)
    crop_camera = PinholeCamera.from_intrinsics(camera.fx * scale, camera.fy * scale, (camera.cx - origin[0]) * scale,
                                                (camera.cy - origin[1]) * scale, crop_size, crop_size)  # fmt: skip
    image = cv2.warpAffine(*_prefiltered(np.ascontiguousarray(image_rgb), scale, origin), size,
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # fmt: skip
    if hand_mask is None:
        fragments = rasterize(vertices, model.faces(side), crop_camera, cull_back=True)
        mask = np.zeros(crop_size * crop_size, bool)
        mask[fragments.pixel] = True
        mask = mask.reshape(crop_size, crop_size)
    else:
        mask = cv2.warpAffine(np.asarray(hand_mask, np.uint8), warp, size, flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0  # fmt: skip
    if not mask.any():
        return None
    return HandView(frame_index, side, image.astype(np.float32) / 255.0, mask, crop_camera, pose, shape, translation)


def _prefiltered(image: np.ndarray, scale: float, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image, warp) for a crop ``scale`` times the image's size: halved by cv2.pyrDown (whose pixel x sits at 2x of
    the level above) while the warp would shrink it more than twice, so the bilinear warp never skips pixels (an
    affine warp ignores INTER_AREA), and the warp from that level."""
    level = 1.0
    while scale * level < 0.5 and min(image.shape[:2]) > 2:
        image = cv2.pyrDown(image)
        level *= 2.0
    warp = np.array([[scale * level, 0.0, -origin[0] * scale], [0.0, scale * level, -origin[1] * scale]])
    return image, warp


@dataclass(frozen=True)
class AvatarFitConfig:
    """Settings of :func:`fit_avatar`. Learning rates are Adam's; weights multiply the loss terms."""

    steps: int = 2000
    refine_pose: bool = True
    pose_start: float = 0.3  # fraction of the steps after which the pose corrections are learnt
    dssim_weight: float = 0.2
    opacity_weight: float = 0.01
    scale_weight: float = 0.01
    # prior on the pose corrections: (radians)² per joint angle and metres² of translation, times these
    pose_prior_weight: float = 1.0
    translation_prior_weight: float = 100.0
    embedding_lr: float = 1e-2
    network_lr: float = 2e-3
    base_lr: float = 5e-3  # log base scales and opacity logits
    pose_lr: float = 2e-3
    translation_lr: float = 5e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if not 0.0 <= self.pose_start <= 1.0:
            raise ValueError(f"pose_start must be a fraction in [0, 1], got {self.pose_start}")


@dataclass
class PoseCorrections:
    """Learnt per-view corrections of the tracked pose (16, 3) and translation (3,), one pair per view."""

    pose: list[torch.nn.Parameter]
    translation: list[torch.nn.Parameter]

    @classmethod
    def zeros(cls, count: int) -> PoseCorrections:
        return cls([torch.nn.Parameter(torch.zeros(16, 3, dtype=torch.float64)) for _ in range(count)],
                   [torch.nn.Parameter(torch.zeros(3, dtype=torch.float64)) for _ in range(count)])  # fmt: skip

    def parameters(self) -> list[torch.nn.Parameter]:
        return [*self.pose, *self.translation]


@dataclass
class FitState:
    """What a fit has learnt so far: the avatar, its optimiser, the pose corrections, the next step, the losses."""

    avatar: MeshGaussians
    optimizer: torch.optim.Optimizer
    corrections: PoseCorrections
    step: int = 0
    losses: list[float] = field(default_factory=list)


def new_avatar(model: HandModel, side: HandSide) -> MeshGaussians:
    """An untrained avatar on ``model``'s mesh of ``side``."""
    rest = model.forward(np.zeros((16, 3), np.float32), side=side).vertices[0]
    return MeshGaussians(model.faces(side), np.asarray(rest, np.float64), model.name)


def _optimizer(avatar: MeshGaussians, corrections: PoseCorrections, config: AvatarFitConfig) -> torch.optim.Adam:
    return torch.optim.Adam([
        {"params": [avatar.vertex_embeddings], "lr": config.embedding_lr},
        {"params": [*avatar.color_mlp.parameters(), *avatar.scale_mlp.parameters()], "lr": config.network_lr},
        {"params": [avatar.log_scale_base, avatar.opacity_logits, avatar.light_direction, avatar.ambient,
                    avatar.diffuse_gain], "lr": config.base_lr},
        {"params": corrections.pose, "lr": config.pose_lr},
        {"params": corrections.translation, "lr": config.translation_lr},
    ])  # fmt: skip


def start_fit(model: HandModel, side: HandSide, num_views: int, config: AvatarFitConfig) -> FitState:
    """A fit at step 0: a new avatar, zero pose corrections, a fresh optimiser."""
    avatar = new_avatar(model, side)
    corrections = PoseCorrections.zeros(num_views)
    return FitState(avatar, _optimizer(avatar, corrections, config), corrections)


def posed_hand(model: HandModel, view: HandView, pose_correction: torch.Tensor | None = None,
               translation_correction: torch.Tensor | None = None) -> HandModelOutput:  # fmt: skip
    """The view's hand model posed in its camera frame (a batch of one, torch), with the corrections added
    (differentiable in them)."""
    pose = torch.as_tensor(view.pose, dtype=torch.float64)
    translation = torch.as_tensor(view.translation, dtype=torch.float64)
    if pose_correction is not None:
        pose = pose + pose_correction
    if translation_correction is not None:
        translation = translation + translation_correction
    return model.forward(pose[None].float(), torch.as_tensor(view.shape, dtype=torch.float32)[None], side=view.side,
                         transl=translation[None].float())  # fmt: skip


def posed_vertices(model: HandModel, view: HandView, pose_correction: torch.Tensor | None = None,
                   translation_correction: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """(V, 3) float32 vertices of :func:`posed_hand`."""
    return posed_hand(model, view, pose_correction, translation_correction).vertices[0]


def image_loss(avatar: MeshGaussians, vertices: torch.Tensor, view: HandView, config: AvatarFitConfig,
               appearance: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:  # fmt: skip
    """(1 - w) L1 + w D-SSIM between the view rendered on black and its hand pixels on black."""
    gaussians = avatar(vertices, appearance=appearance)
    rendered = render_gaussians(gaussians, view.camera, cull_back_facing=True).image
    mask = torch.as_tensor(view.mask)
    target = torch.as_tensor(view.image, dtype=rendered.dtype) * mask[..., None]
    l1 = torch.mean(torch.abs(rendered - target))
    return (1.0 - config.dssim_weight) * l1 + config.dssim_weight * (1.0 - masked_ssim(rendered, target, mask))


def _regularisers(avatar: MeshGaussians, scales: torch.Tensor, config: AvatarFitConfig) -> torch.Tensor:
    residual = torch.log(scales) - avatar.log_scale_base[:, None]
    return config.opacity_weight * avatar.opacity_loss() + config.scale_weight * torch.mean(residual**2)


def _pose_prior(pose: torch.Tensor, translation: torch.Tensor, config: AvatarFitConfig) -> torch.Tensor:
    """The pull of pose corrections toward the tracked pose (mean squared joint angle, squared translation)."""
    return config.pose_prior_weight * torch.sum(pose**2) / 16 + config.translation_prior_weight * torch.sum(
        translation**2)


def epoch_order(num_views: int, seed: int, epoch: int) -> np.ndarray:
    """The training views' order in one epoch: a function of the seed and the epoch only (resumable)."""
    return np.random.default_rng([seed, epoch]).permutation(num_views)


def fit_avatar(model: HandModel, views: Sequence[HandView], config: AvatarFitConfig, state: FitState | None = None,
               on_step: Callable[[FitState], None] | None = None) -> FitState:  # fmt: skip
    """Learn one hand's avatar from ``views`` (all of one side) for ``config.steps`` steps, continuing ``state``
    (a resumed fit) or from scratch. ``on_step`` is called after every step (progress, checkpoints)."""
    if not views:
        raise ValueError("no views of the hand to fit")
    sides = {view.side for view in views}
    if len(sides) != 1:
        raise ValueError(f"all views of one avatar must show the same side, got {sorted(s.value for s in sides)}")
    state = state or start_fit(model, views[0].side, len(views), config)
    if len(state.corrections.pose) != len(views):
        raise ValueError(f"the fit being resumed has {len(state.corrections.pose)} views, this one {len(views)}")
    pose_from = int(config.pose_start * config.steps) if config.refine_pose else None
    while state.step < config.steps:
        epoch, position = divmod(state.step, len(views))
        index = int(epoch_order(len(views), config.seed, epoch)[position])
        view = views[index]
        refine = pose_from is not None and state.step >= pose_from
        pose_correction = state.corrections.pose[index] if refine else None
        translation_correction = state.corrections.translation[index] if refine else None
        vertices = posed_vertices(model, view, pose_correction, translation_correction)
        appearance = state.avatar.appearance()
        loss = image_loss(state.avatar, vertices, view, config, appearance) + _regularisers(
            state.avatar, appearance[1], config)
        if refine:
            loss = loss + _pose_prior(pose_correction, translation_correction, config)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        state.losses.append(float(loss.detach()))
        state.step += 1
        if on_step is not None:
            on_step(state)
    return state


@dataclass(frozen=True)
class ViewScore:
    """One evaluated view: PSNR (dB) on its hand pixels, SSIM on their bounding box."""

    frame_index: int
    psnr_db: float
    ssim: float


def refine_view_pose(model: HandModel, avatar: MeshGaussians, view: HandView, steps: int,
                     config: AvatarFitConfig) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Pose and translation corrections of one view against its image, the avatar frozen (``steps`` Adam steps;
    zeros for 0): how a held-out frame's tracked pose is improved at test time."""
    pose = torch.zeros(16, 3, dtype=torch.float64, requires_grad=True)
    translation = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    if steps <= 0:
        return pose.detach(), translation.detach()
    optimizer = torch.optim.Adam([{"params": [pose], "lr": config.pose_lr},
                                  {"params": [translation], "lr": config.translation_lr}])  # fmt: skip
    with torch.no_grad():
        appearance = tuple(value.detach() for value in avatar.appearance())
    for _ in range(steps):
        loss = image_loss(avatar, posed_vertices(model, view, pose, translation), view, config, appearance) \
            + _pose_prior(pose, translation, config)  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return pose.detach(), translation.detach()


def score_view(avatar: MeshGaussians, vertices: torch.Tensor, view: HandView,
               camera_from_frame: np.ndarray | None = None) -> ViewScore:  # fmt: skip
    """PSNR and SSIM of the avatar posed on ``vertices`` against the view; ``camera_from_frame`` (4, 4) maps the
    vertices' frame into the view's camera (None: they are in it)."""
    transform = None if camera_from_frame is None else torch.as_tensor(camera_from_frame, dtype=torch.float32)
    with torch.no_grad():
        rendered = render_gaussians(avatar(vertices.detach()), view.camera, transform, cull_back_facing=True).image
        mask = torch.as_tensor(view.mask)
        target = torch.as_tensor(view.image, dtype=rendered.dtype) * mask[..., None]
        ssim = float(masked_ssim(rendered, target, mask))
        return ViewScore(view.frame_index, masked_psnr(rendered, target, mask), ssim)


def evaluate_views(model: HandModel, avatar: MeshGaussians, views: Sequence[HandView], refine_steps: int,
                   config: AvatarFitConfig) -> list[ViewScore]:  # fmt: skip
    """Each view scored with its tracked pose refined for ``refine_steps`` against its image (0: as tracked)."""
    scores = []
    for view in views:
        pose, translation = refine_view_pose(model, avatar, view, refine_steps, config)
        scores.append(score_view(avatar, posed_vertices(model, view, pose, translation), view))
    return scores


def split_views(views: Sequence[HandView], held_out_every: int) -> tuple[list[HandView], list[HandView]]:
    """(training, held-out) views: every ``held_out_every``-th view is held out (0: none)."""
    if held_out_every < 0 or held_out_every == 1:
        raise ValueError(f"held_out_every must be 0 (none) or at least 2, got {held_out_every}")
    if held_out_every == 0:
        return list(views), []
    return ([v for i, v in enumerate(views) if i % held_out_every != held_out_every // 2],
            [v for i, v in enumerate(views) if i % held_out_every == held_out_every // 2])  # fmt: skip


def _views_key(views: Sequence[HandView]) -> torch.Tensor:
    """What identifies a fit's training views: their frame indices and the crop size."""
    return torch.tensor([*(view.frame_index for view in views), views[0].image.shape[0] if views else 0])


def save_checkpoint(path: Path, state: FitState, side: HandSide, model_name: str, config: AvatarFitConfig,
                    views: Sequence[HandView]) -> None:  # fmt: skip
    """The fit so far, atomically (weights only: tensors, numbers and strings), with the settings and the training
    views it was run with (a resume must use the same: :func:`load_checkpoint`)."""
    from ..core.files import atomic_write

    with atomic_write(path) as handle:
        torch.save({
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "side": side.value, "model_name": model_name,
            "config": dataclasses.asdict(config), "views": _views_key(views),
            "step": state.step, "losses": torch.tensor(state.losses, dtype=torch.float64),
            "avatar": state.avatar.state_dict(), "optimizer": state.optimizer.state_dict(),
            "pose_corrections": torch.stack([p.detach() for p in state.corrections.pose]),
            "translation_corrections": torch.stack([t.detach() for t in state.corrections.translation]),
        }, handle)  # fmt: skip


def load_checkpoint(path: Path, model: HandModel, side: HandSide, views: Sequence[HandView],
                    config: AvatarFitConfig) -> FitState:  # fmt: skip
    """A fit saved by :func:`save_checkpoint`, checked against this run's model, side, settings and training views
    (anything else would not continue the same fit); ValueError saying what differs."""
    saved = load_weights_file(path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "a fit checkpoint",
                              "start the fit again without --resume")  # fmt: skip
    if saved["side"] != side.value or saved["model_name"] != model.name:
        raise ValueError(f"{path} fits a {saved['model_name']} {saved['side']} hand, not a {model.name} "
                         f"{side.value} one")  # fmt: skip
    before = saved["config"]
    changed = [f"{key} {before.get(key)} (now {value})" for key, value in dataclasses.asdict(config).items()
               if before.get(key) != value]  # fmt: skip
    if changed:
        raise ValueError(f"{path} was fitted with other settings: {', '.join(changed)}; resume with the same ones, "
                         "or start again without --resume")  # fmt: skip
    if not torch.equal(saved["views"], _views_key(views)):
        raise ValueError(f"{path} was fitted on other frames of the hand ({len(saved['views']) - 1} views, this input "
                         f"gives {len(views)}) or another crop size: the input, --max-frames, --held-out-every or "
                         "--crop-size changed; start again without --resume")  # fmt: skip
    num_views = len(views)
    state = start_fit(model, side, num_views, config)
    state.avatar.load_state_dict(saved["avatar"])
    with torch.no_grad():
        for parameter, value in zip(state.corrections.pose, saved["pose_corrections"], strict=True):
            parameter.copy_(value)
        for parameter, value in zip(state.corrections.translation, saved["translation_corrections"], strict=True):
            parameter.copy_(value)
    state.optimizer.load_state_dict(saved["optimizer"])
    state.step = int(saved["step"])
    state.losses = [float(x) for x in saved["losses"]]
    return state


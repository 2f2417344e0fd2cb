"""Per-video Gaussian avatars on synthetic sequences with ground truth (`hand-scene eval gaussian`).

One hand, RGB only (as an egocentric video): the embedded tier (MediaPipe and the ego pipeline) tracks it, each
tracked frame becomes a crop view with the ground-truth hand segmentation as its mask (so the score is about the
avatar, not about a silhouette estimate), every ``held_out_every``-th view is held out, and the avatar is fitted on
the rest. Reported: held-out PSNR on the hand's pixels and SSIM on their box, with the tracked pose and with it
refined against the image (the avatar frozen), against the same numbers on training views; and the hand's joint
error (MPJPE, in the camera frame, and after Procrustes alignment) of the tracked poses before and after the image
supervision refined them, on the training views (whose corrections the fit learnt) and on the held-out ones.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..core.alignment import procrustes_align
from ..core.hand_model import create_hand_model
from ..core.hand_state import transformed_model_params
from ..core.transforms import inverse_matrices
from ..gaussian.per_video import (
    CROP_SIZE,
    AvatarFitConfig,
    HandView,
    crop_view,
    fit_avatar,
    posed_hand,
    posed_vertices,
    refine_view_pose,
    score_view,
    split_views,
)
from ..gaussian.renderer import ViewSpec, virtual_camera
from ..pipelines.ego import EgoConfig, EgoFrame, EgoPipeline
from ..synth.sequence import SyntheticSequence, stamp_ns
from .ego import match_synthetic_hands

# The novel view: the head camera turned this far about the hand (a camera the avatar never saw), its field of view.
NOVEL_YAW_DEG = 40.0
NOVEL_FOV_DEG = 70.0


def _joint_errors_mm(model, views, truths, corrections) -> dict[str, float]:
    """Mean camera-frame and Procrustes-aligned joint errors (mm) of the views' poses with ``corrections``."""
    camera_frame, aligned = [], []
    for view, truth, correction in zip(views, truths, corrections, strict=True):
        with torch.no_grad():
            joints = posed_hand(model, view, *correction).joints[0].double().numpy()
        camera_frame.append(np.linalg.norm(joints - truth, axis=1).mean())
        aligned.append(np.linalg.norm(procrustes_align(joints, truth) - truth, axis=1).mean())
    return {"mpjpe_mm": 1e3 * float(np.mean(camera_frame)), "pa_mpjpe_mm": 1e3 * float(np.mean(aligned))}


def params_in_frame(model, view: HandView, correction: tuple[torch.Tensor, torch.Tensor],
                    transform: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The view's (corrected) pose and translation for the same hand expressed through ``transform`` (4, 4)."""
    root = posed_hand(model, view, *correction).joints[0][0].double().numpy()
    return transformed_model_params(view.pose + correction[0].numpy(), view.translation + correction[1].numpy(), root,
                                    transform)  # fmt: skip


def _novel_view_scores(model, avatar, sequence: SyntheticSequence, posed_hands: dict, held: list[HandView],
                       corrections: list, crop_size: int) -> dict[str, float]:  # fmt: skip
    """PSNR/SSIM of the held-out frames seen by a second camera (the head camera turned NOVEL_YAW_DEG about the
    hand), rendered by the generator with the true hand and by the avatar posed in the head camera's frame (where
    its light is) with the (refined) tracked pose and moved into the second camera."""
    scores = []
    for view, correction in zip(held, corrections, strict=True):
        hands, w2c = posed_hands[view.frame_index]
        vertices = posed_vertices(model, view, *correction).detach()
        spec = ViewSpec(sequence.camera.width, sequence.camera.height, NOVEL_FOV_DEG, yaw_deg=NOVEL_YAW_DEG)
        camera, novel_from_head = virtual_camera(spec, vertices.double().numpy().mean(axis=0))
        noise = np.full((camera.height, camera.width, 3), 0.5, np.float32)
        render = sequence.render_view(hands, camera, novel_from_head @ w2c, noise)
        truth = next(t for t in render.hands if t.side is view.side)
        pose, translation = params_in_frame(model, view, correction, novel_from_head)
        novel = crop_view(view.frame_index, render.rgb, camera, view.side, pose, view.shape, translation, model,
                          render.segmentation == truth.label, crop_size)  # fmt: skip
        if novel is None:
            continue
        # the crop camera shares the novel camera's frame: the head-camera Gaussians go there by novel_from_head
        scores.append(score_view(avatar, vertices, novel, novel_from_head))
    return {"psnr_db": float(np.mean([s.psnr_db for s in scores])), "ssim": float(np.mean([s.ssim for s in scores])),
            "views": len(scores), "yaw_deg": NOVEL_YAW_DEG}  # fmt: skip


def true_params_cam(model, truth, T_world_camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A generated hand's true pose and translation in its camera's frame (the oracle's tracked hand)."""
    rest = model.forward(truth.pose[None].astype(np.float32), truth.shape[None].astype(np.float32), side=truth.side)
    translation_world = truth.vertices_world[0] - np.asarray(rest.vertices[0][0], np.float64)
    return transformed_model_params(truth.pose, translation_world, truth.joints_world[0],
                                    inverse_matrices(T_world_camera))  # fmt: skip


def evaluate_gaussian_fit(num_frames: int = 300, steps: int = 2000, seed: int = 0, held_out_every: int = 10,
                          refine_steps: int = 20, refine_pose: bool = True, crop_size: int = CROP_SIZE,
                          oracle: bool = False) -> dict:  # fmt: skip
    """Fit one synthetic hand's avatar per video and score it (module notes); ``oracle``: the true hand poses
    instead of the tracked ones (what the avatar reaches when the mesh is exact)."""
    model = create_hand_model("open")
    views, truths = [], []
    posed_hands = {}  # frame index: (posed hands, world-to-head-camera), for the novel views
    sequence = SyntheticSequence(seed, num_hands=1)
    start = time.perf_counter()
    with EgoPipeline(EgoConfig(max_hands=1, camera_pose_source="static")) as pipeline:
        for index, hands in sequence.posed_frames(num_frames):
            frame = sequence.render_frame(index, hands)
            result = pipeline.process(EgoFrame(frame.rgb, frame.camera, stamp_ns(frame)))
            for truth_index, hand_index in match_synthetic_hands(result, frame):
                truth, hand = frame.hands[truth_index], result.hands[hand_index].camera
                if hand.side is not truth.side:
                    continue
                mask = frame.segmentation == truth.label
                pose, shape, translation = hand.model_pose, hand.model_shape, hand.model_translation
                if oracle:
                    (pose, translation), shape = true_params_cam(model, truth, frame.T_world_camera), truth.shape
                view = crop_view(frame.index, frame.rgb, frame.camera, hand.side, pose, shape, translation, model,
                                 mask, crop_size)  # fmt: skip
                if view is not None:
                    views.append(view)
                    truths.append(truth.joints_cam)
                    posed_hands[index] = (hands, inverse_matrices(frame.T_world_camera))
    tracking_s = time.perf_counter() - start
    if len(views) < 4:
        raise ValueError(f"only {len(views)} usable views of the hand in {num_frames} frames")
    config = AvatarFitConfig(steps=steps, refine_pose=refine_pose, seed=seed)
    train, held = split_views(views, held_out_every)
    train_truths = [t for v, t in zip(views, truths, strict=True) if v in train]
    held_truths = [t for v, t in zip(views, truths, strict=True) if v in held]
    start = time.perf_counter()
    state = fit_avatar(model, train, config)
    fit_s = time.perf_counter() - start
    zero = [(torch.zeros(16, 3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))] * len(views)
    learnt = [(p.detach(), t.detach()) for p, t in zip(state.corrections.pose, state.corrections.translation,
                                                      strict=True)]  # fmt: skip
    held_refined = [refine_view_pose(model, state.avatar, view, refine_steps, config) for view in held]

    def image_scores(scored_views, corrections) -> dict[str, float]:
        scores = [score_view(state.avatar, posed_vertices(model, view, pose, translation), view)
                  for view, (pose, translation) in zip(scored_views, corrections, strict=True)]  # fmt: skip
        return {"psnr_db": float(np.mean([score.psnr_db for score in scores])),
                "ssim": float(np.mean([score.ssim for score in scores]))}

    return {
        "sequence": {"seed": seed, "frames": num_frames, "views": len(views), "training_views": len(train),
                     "held_out_views": len(held), "crop_px": crop_size,
                     "tracking": "true poses (oracle)" if oracle else "embedded tier, RGB only"},
        "fit": {"steps": steps, "refine_pose": refine_pose, "seconds": fit_s, "ms_per_step": 1e3 * fit_s / steps,
                "tracking_seconds": tracking_s, "final_loss": float(np.mean(state.losses[-50:]))},
        "held_out": {"tracked_pose": image_scores(held, zero[: len(held)]),
                     f"pose_refined_{refine_steps}_steps": image_scores(held, held_refined)},
        "novel_view": {"tracked_pose": _novel_view_scores(model, state.avatar, sequence, posed_hands, held,
                                                          zero[: len(held)], crop_size),
                       f"pose_refined_{refine_steps}_steps": _novel_view_scores(model, state.avatar, sequence,
                                                                                posed_hands, held, held_refined,
                                                                                crop_size)},
        "training": {"learnt_pose": image_scores(train, learnt)},
        "joints": {"training_tracked": _joint_errors_mm(model, train, train_truths, zero[: len(train)]),
                   "training_after_image_supervision": _joint_errors_mm(model, train, train_truths, learnt),
                   "held_out_tracked": _joint_errors_mm(model, held, held_truths, zero[: len(held)]),
                   "held_out_refined": _joint_errors_mm(model, held, held_truths, held_refined)},
    }  # fmt: skip

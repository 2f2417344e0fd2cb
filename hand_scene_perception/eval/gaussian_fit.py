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
from ..gaussian.per_video import (
    CROP_SIZE,
    AvatarFitConfig,
    crop_view,
    fit_avatar,
    posed_vertices,
    refine_view_pose,
    score_view,
    split_views,
)
from ..pipelines.ego import EgoConfig, EgoFrame, EgoPipeline
from ..synth.sequence import generate_sequence, stamp_ns
from .ego import match_synthetic_hands


def _joint_errors_mm(model, views, truths, corrections) -> dict[str, float]:
    """Mean camera-frame and Procrustes-aligned joint errors (mm) of the views' poses with ``corrections``."""
    camera_frame, aligned = [], []
    for view, truth, (pose, translation) in zip(views, truths, corrections, strict=True):
        with torch.no_grad():
            out = model.forward((torch.as_tensor(view.pose) + pose)[None].float(),
                                torch.as_tensor(view.shape, dtype=torch.float32)[None], side=view.side,
                                transl=(torch.as_tensor(view.translation) + translation)[None].float())  # fmt: skip
        joints = out.joints[0].double().numpy()
        camera_frame.append(np.linalg.norm(joints - truth, axis=1).mean())
        aligned.append(np.linalg.norm(procrustes_align(joints, truth) - truth, axis=1).mean())
    return {"mpjpe_mm": 1e3 * float(np.mean(camera_frame)), "pa_mpjpe_mm": 1e3 * float(np.mean(aligned))}


def evaluate_gaussian_fit(num_frames: int = 300, steps: int = 2000, seed: int = 0, held_out_every: int = 10,
                          refine_steps: int = 20, refine_pose: bool = True,
                          crop_size: int = CROP_SIZE) -> dict:  # fmt: skip
    """Fit one synthetic hand's avatar per video and score it (module notes)."""
    model = create_hand_model("open")
    views, truths = [], []
    start = time.perf_counter()
    with EgoPipeline(EgoConfig(max_hands=1, camera_pose_source="static")) as pipeline:
        for frame in generate_sequence(seed, num_frames, num_hands=1):
            result = pipeline.process(EgoFrame(frame.rgb, frame.camera, stamp_ns(frame)))
            for truth_index, hand_index in match_synthetic_hands(result, frame):
                truth, hand = frame.hands[truth_index], result.hands[hand_index].camera
                if hand.side is not truth.side:
                    continue
                mask = frame.segmentation == truth.label
                view = crop_view(frame.index, frame.rgb, frame.camera, hand.side, hand.model_pose, hand.model_shape,
                                 hand.model_translation, model, mask, crop_size)
                if view is not None:
                    views.append(view)
                    truths.append(truth.joints_cam)
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
                     "held_out_views": len(held), "crop_px": crop_size, "tracking": "embedded tier, RGB only"},
        "fit": {"steps": steps, "refine_pose": refine_pose, "seconds": fit_s, "ms_per_step": 1e3 * fit_s / steps,
                "tracking_seconds": tracking_s, "final_loss": float(np.mean(state.losses[-50:]))},
        "held_out": {"tracked_pose": image_scores(held, zero[: len(held)]),
                     f"pose_refined_{refine_steps}_steps": image_scores(held, held_refined)},
        "training": {"learnt_pose": image_scores(train, learnt)},
        "joints": {"training_tracked": _joint_errors_mm(model, train, train_truths, zero[: len(train)]),
                   "training_after_image_supervision": _joint_errors_mm(model, train, train_truths, learnt),
                   "held_out_tracked": _joint_errors_mm(model, held, held_truths, zero[: len(held)]),
                   "held_out_refined": _joint_errors_mm(model, held, held_truths, held_refined)},
    }  # fmt: skip

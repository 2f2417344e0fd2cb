"""`hand-scene fit gaussian`: learn each tracked hand's Gaussian avatar from a video (the per-video mode)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .common import Progress, add_backend_argument, add_hand_model_arguments, add_intrinsics_arguments, run_camera

# Views of a side needed to fit its avatar (fewer: the side is skipped, with the reason in the report).
MIN_VIEWS = 8
CHECKPOINT_EVERY = 100


def _undistorted(camera, where: str):
    """The camera, or ValueError before any work when its lens is distorted (the fit renders pinhole crops)."""
    if camera.is_distorted:
        raise ValueError(f"{where} describes a distorted lens; the Gaussian fit renders pinhole images: undistort "
                         "the frames (image_proc's rectify) and give the rectified camera")  # fmt: skip
    return camera


def _frames(args: argparse.Namespace):
    """(frames: (index, stamp ns, RGB, camera) iterator, close, total or None, description) of a video, an image
    folder (camera from the intrinsics arguments) or a bag (camera from its CameraInfo)."""
    from ..ros.bags.frames import bag_camera_frames, is_bag

    if is_bag(args.input):
        if args.intrinsics is not None or any(getattr(args, k) is not None for k in ("fx", "fy", "cx", "cy")):
            raise ValueError("a bag brings its camera (CameraInfo): drop --intrinsics / --fx ...")
        bag = bag_camera_frames(args.input, args.image_topic, args.camera_info_topic, args.max_frames)
        frames = (frame for frame in bag if _undistorted(frame[3], f"the CameraInfo in {args.input}"))
        return frames, bag.close, None, {"bag": str(args.input), "intrinsics": "the bag's CameraInfo"}
    from ..io.frames import open_frames

    source = open_frames(args.input, args.fps, args.max_frames)
    try:
        camera, intrinsics = run_camera(args, source.height, source.width)
        _undistorted(camera, str(args.intrinsics or "the intrinsics"))
    except BaseException:
        source.close()
        raise
    frames = ((index, stamp, image, camera) for index, stamp, image in source.frames)
    return frames, source.close, source.total, {"width": source.width, "height": source.height,
                                                "intrinsics": intrinsics}  # fmt: skip


def _collect_views(args: argparse.Namespace, model) -> tuple[dict, dict]:
    """Track the hands over the input with the ego pipeline; each tracked hand's crop view, per side."""
    from ..gaussian.per_video import crop_view
    from ..pipelines.ego import EgoConfig, EgoFrame, EgoPipeline

    frames, close, total, description = _frames(args)
    views: dict = {}
    count = 0
    try:
        config = EgoConfig(backend=args.backend, max_hands=args.max_hands, hand_model=args.hand_model,
                           mano_dir=None if args.mano_dir is None else str(args.mano_dir),
                           camera_pose_source="static")  # fmt: skip
        progress = Progress(total, command="fit (tracking)")
        with EgoPipeline(config) as pipeline:
            for index, stamp_ns, image, camera in frames:
                result = pipeline.process(EgoFrame(image, camera, stamp_ns))
                for hand in result.hands:
                    state = hand.camera
                    view = crop_view(index, image, camera, state.side, state.model_pose, state.model_shape,
                                     state.model_translation, model, crop_size=args.crop_size)  # fmt: skip
                    if view is not None:
                        views.setdefault(state.side, []).append(view)
                count += 1
                progress.update(count, sum(len(v) for v in views.values()))
        progress.update(count, sum(len(v) for v in views.values()), final=True)
    finally:
        close()
    return views, {"frames": count, **description}


def _fit_side(args: argparse.Namespace, model, side, views: list, report: dict) -> None:
    """Fit (or resume) one side's avatar, save it and its held-out preview; its part of the report goes into
    ``report`` as soon as the avatar is saved (and grows with the scores)."""
    import numpy as np
    import torch

    from ..gaussian.avatar_file import AVATAR_SUFFIX, save_avatar
    from ..gaussian.per_video import (
        AvatarFitConfig,
        evaluate_views,
        fit_avatar,
        load_checkpoint,
        save_checkpoint,
        split_views,
        start_fit,
    )
    from ..gaussian.preview import write_preview

    config = AvatarFitConfig(steps=args.steps, refine_pose=not args.no_refine_pose, seed=args.seed)
    train, held = split_views(views, args.held_out_every)
    checkpoint = args.out / f"{side.value}.fit.pt"
    if args.resume and checkpoint.exists():
        state = load_checkpoint(checkpoint, model, side, train, config)
    else:
        state = start_fit(model, side, len(train), config)
    resumed_at = state.step
    progress = Progress(config.steps, command=f"fit {side.value} hand", unit="steps")

    def on_step(current) -> None:
        progress.update(current.step, None)
        if current.step % CHECKPOINT_EVERY == 0:
            save_checkpoint(checkpoint, current, side, model.name, config, train)

    start = time.perf_counter()
    try:
        fit_avatar(model, train, config, state, on_step)
    except KeyboardInterrupt:
        save_checkpoint(checkpoint, state, side, model.name, config, train)
        print(f"hand-scene fit: interrupted at step {state.step}; the fit so far is in {checkpoint}: rerun with "
              "--resume to continue")  # fmt: skip
        raise
    progress.update(state.step, None, final=True)
    save_checkpoint(checkpoint, state, side, model.name, config, train)
    avatar_path = args.out / f"{side.value}{AVATAR_SUFFIX}"
    save_avatar(avatar_path, state.avatar, side)
    report.update({"avatar": str(avatar_path), "views": len(views), "training_views": len(train),
                   "held_out_views": len(held), "steps": state.step, "resumed_at_step": resumed_at,
                   "fit_seconds": round(time.perf_counter() - start, 1),
                   "final_loss": float(np.mean(state.losses[-50:]))})  # fmt: skip
    if held:
        scores = evaluate_views(model, state.avatar, held, args.refine_steps, config)
        report["held_out_masked_psnr_db"] = float(np.mean([s.psnr_db for s in scores]))
        report["held_out_ssim"] = float(np.mean([s.ssim for s in scores]))
        report["held_out_mask"] = "tracked mesh silhouette"
        report["held_out_pose_refine_steps"] = args.refine_steps
        with torch.no_grad():
            report["preview"] = str(write_preview(args.out / f"{side.value}_held_out.png", model, state.avatar,
                                                  held[len(held) // 2]))  # fmt: skip


def run_fit(args: argparse.Namespace) -> int:
    """Track the video's hands, then fit, save and score one avatar per side (module notes)."""
    if args.steps < 1 or args.crop_size < 32:
        raise ValueError("--steps must be at least 1 and --crop-size at least 32")
    if args.held_out_every < 0 or args.held_out_every == 1:
        raise ValueError(f"--held-out-every must be 0 (none) or at least 2, got {args.held_out_every}")
    if not args.input.exists():
        raise FileNotFoundError(f"no video, image folder or bag at {args.input}")
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} exists and is not a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    from ..core.files import atomic_write
    from ..core.hand_model import create_hand_model

    model = create_hand_model(args.hand_model, args.mano_dir)
    try:
        views, run = _collect_views(args, model)
    except KeyboardInterrupt:
        print("hand-scene fit: interrupted while tracking the hands: no avatar written")
        return 130
    report = {"input": str(args.input), **run, "hand_model": model.name, "hands": {}}
    outcome = 0
    try:
        for side, side_views in sorted(views.items(), key=lambda item: item[0].value):
            if len(side_views) < MIN_VIEWS:
                reason = f"tracked in {len(side_views)} frames, fewer than {MIN_VIEWS}"
                report["hands"][side.value] = {"skipped": reason}
                continue
            report["hands"][side.value] = {}
            _fit_side(args, model, side, side_views, report["hands"][side.value])
    except KeyboardInterrupt:
        outcome = 130
    finally:
        with atomic_write(args.out / "fit_report.json", "w") as handle:
            json.dump(report, handle, indent=2)
    if not views:
        print(f"hand-scene fit: no hand was tracked in {run['frames']} frames: no avatar written")
        return 1 if outcome == 0 else outcome
    for side, entry in report["hands"].items():
        if "skipped" in entry:
            print(f"hand-scene fit: {side} hand skipped: {entry['skipped']}")
        elif "avatar" not in entry:
            print(f"hand-scene fit: {side} hand interrupted before its avatar was written: rerun with --resume")
        else:
            scores = "" if "held_out_masked_psnr_db" not in entry else (
                f"; held-out PSNR {entry['held_out_masked_psnr_db']:.2f} dB, SSIM {entry['held_out_ssim']:.3f}")
            print(f"hand-scene fit: {side} hand: {entry['avatar']} from {entry['training_views']} frames in "
                  f"{entry['fit_seconds']} s{scores}")
    if outcome == 0 and not any("avatar" in entry for entry in report["hands"].values()):
        return 1  # every tracked side was too short to fit
    return outcome


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register the command and its arguments."""
    fit = commands.add_parser("fit", help="learn the hands' Gaussian avatars from a video (per-video mode)")
    fit.add_argument("system", choices=("gaussian",), help="what to fit: gaussian (one Gaussian avatar per hand)")
    fit.add_argument("input", type=Path, help="video file (any format OpenCV reads), folder of *.png/*.jpg frames, "
                     "or a camera bag (rosbag2 directory, .mcap or .db3: images with their CameraInfo)")
    fit.add_argument("--image-topic", default=None, help="bag: the image topic (default /camera/image_raw)")
    fit.add_argument("--camera-info-topic", default=None, help="bag: its CameraInfo (default /camera/camera_info)")
    fit.add_argument("--out", type=Path, required=True,
                     help="output folder: left/right.avatar.pt, their fit checkpoints, fit_report.json, previews")
    fit.add_argument("--steps", type=int, default=2000, help="optimisation steps per hand (default 2000)")
    fit.add_argument("--crop-size", type=int, default=128, help="side of the hand crops in pixels (default 128)")
    fit.add_argument("--held-out-every", type=int, default=10,
                     help="every N-th tracked frame is held out and scored (default 10; 0: none)")
    fit.add_argument("--refine-steps", type=int, default=20,
                     help="steps refining a held-out frame's pose against its image before scoring (default 20)")
    fit.add_argument("--no-refine-pose", action="store_true",
                     help="keep the tracked poses (default: the image loss refines each training frame's pose)")
    fit.add_argument("--resume", action="store_true", help="continue from the fit checkpoints in --out")
    fit.add_argument("--seed", type=int, default=0, help="order of the training frames (default 0)")
    fit.add_argument("--intrinsics", type=Path, default=None, help="camera calibration YAML (camera_info format)")
    add_intrinsics_arguments(fit)
    fit.add_argument("--fps", type=float, default=None,
                     help="frame rate for the stamps (default: the video's own; 30 for image folders)")
    fit.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    add_backend_argument(fit)
    fit.add_argument("--max-hands", type=int, default=2, help="most hands to track (default 2)")
    add_hand_model_arguments(fit)
    fit.set_defaults(handler=run_fit)

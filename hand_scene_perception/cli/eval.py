"""`hand-scene eval`: accuracy on synthetic sequences or real ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..io.frames import (
    open_frames,
)
from .common import (
    Progress,
    add_backend_argument,
    add_hand_model_arguments,
    add_intrinsics_arguments,
    camera_from_args,
    print_report,
)


def run_eval_real(args: argparse.Namespace) -> int:
    """The ego pipeline, its per-image path and its raw detector on real frames: against the ground truth of a
    ``ground_truth.npz`` folder, or (a video or image folder without labels) against each other."""
    from ..datasets.ground_truth import GROUND_TRUTH_FILE, load_real_sequence
    from ..eval.real import consistency, evaluate_real, expert_factory, run_estimates
    from ..pipelines.ego import EgoConfig

    if args.path is None:
        raise ValueError("eval real needs a folder (frames/ + ground_truth.npz) or a video / image folder")
    config = EgoConfig(backend=args.backend, max_hands=args.max_hands, hand_model=args.hand_model,
                       mano_dir=str(args.mano_dir) if args.mano_dir else None)
    has_truth = (args.path / GROUND_TRUTH_FILE).is_file()
    if args.retarget_urdf_dir is not None and not has_truth:
        raise ValueError(f"--retarget-urdf-dir compares with the ground truth: {args.path} has no {GROUND_TRUTH_FILE}")
    if has_truth:
        sequence = load_real_sequence(args.path, with_depth=args.depth)
        progress = Progress(len(sequence.frames), command="eval real")
        if args.retarget_urdf_dir is not None:
            from ..eval.retarget import dex_factory, evaluate_real_with_retargeting

            robots = [name.strip() for name in args.retarget_robots.split(",") if name.strip()]
            factory = dex_factory(args.retarget_urdf_dir, robots)  # fails before any frame is processed
            report = evaluate_real_with_retargeting(sequence, factory, robots, args.depth, config,
                                                    progress=lambda done: progress.update(done, None))
        else:
            report = evaluate_real(sequence, args.depth, config, progress=lambda done: progress.update(done, None))
        progress.update(len(sequence.frames), None, final=True)
        return print_report({"input": str(args.path), **report}, args.json)
    if args.depth:
        raise ValueError(f"--depth needs the ground-truth layout ({GROUND_TRUTH_FILE}, depth/) in {args.path}")
    source = open_frames(args.path, args.fps, args.max_frames)
    camera, intrinsics = camera_from_args(args, source.height, source.width)
    frames = ((rgb, camera, None) for _, _, rgb in source.frames)
    try:
        estimates = run_estimates(frames, source.fps, expert_factory(config.backend, config.max_hands), config)
    finally:
        source.close()
    return print_report({"input": str(args.path), "intrinsics": intrinsics, **consistency(estimates)}, args.json)


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate a pipeline on generated sequences with ground truth and print the metrics."""
    if args.system == "real":
        return run_eval_real(args)
    if args.system == "multiview":
        from ..eval.multiview import evaluate_multiview

        hands = args.hands or [1]
        if len(hands) != 1:
            raise ValueError(f"eval multiview takes one --hands count (1 or 2), got {hands}")
        summary = evaluate_multiview(
            seeds=tuple(args.seeds), num_frames=args.frames or 150, num_views=args.views, num_hands=hands[0],
            oracle=args.oracle, noise_px=args.noise_px, camera_info=args.camera_info,
        )  # fmt: skip
        return print_report(summary, args.json)
    if args.system == "gaussian":
        from ..eval.gaussian_fit import evaluate_gaussian_fit

        summary = evaluate_gaussian_fit(num_frames=args.frames or 300, steps=args.steps, seed=args.seeds[0],
                                        refine_pose=not args.no_refine_pose, oracle=args.oracle)  # fmt: skip
        return print_report(summary, args.json)
    from ..eval.ego import evaluate_ego

    summary = evaluate_ego(
        seeds=tuple(args.seeds), num_frames=args.frames or 100, num_hands=tuple(args.hands or [1, 2]),
        oracle=args.oracle, noise_px=args.noise_px, use_depth=not args.no_depth,
    )  # fmt: skip
    return print_report(summary, args.json)


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register the command and its arguments."""
    evaluate = commands.add_parser("eval", help="measure a pipeline on synthetic sequences or real ground truth")
    evaluate.add_argument("system", choices=("ego", "multiview", "real", "gaussian"),
                          help="which pipeline: ego / multiview on generated sequences, real: the ego pipeline on "
                               "real frames (see `convert-gt`), gaussian: a per-video Gaussian avatar of a generated "
                               "hand (held-out PSNR/SSIM, joint errors before and after image supervision)")
    evaluate.add_argument("path", type=Path, nargs="?", default=None,
                          help="real: a folder with frames/ and ground_truth.npz, or a video / image folder without "
                               "labels (then only the checks that need none)")
    evaluate.add_argument("--depth", action="store_true", help="real: use the folder's aligned depth/ images")
    add_backend_argument(evaluate)
    evaluate.add_argument("--max-hands", type=int, default=2, help="real: most hands per frame (default 2)")
    evaluate.add_argument("--fps", type=float, default=None, help="real, unlabelled video: frame rate for stamps")
    evaluate.add_argument("--max-frames", type=int, default=None, help="real, unlabelled video: stop after N frames")
    evaluate.add_argument("--retarget-urdf-dir", type=Path, default=None,
                          help="real: dex-urdf's robots/ folder; adds robot joint commands (dex-retargeting) vs the "
                               "ground truth's to the report (key retargeting)")
    evaluate.add_argument("--retarget-robots", default="allegro,shadow",
                          help="real, with --retarget-urdf-dir: dex-retargeting robots, comma-separated "
                               "(default allegro,shadow)")
    add_intrinsics_arguments(evaluate)
    add_hand_model_arguments(evaluate)
    evaluate.add_argument("--oracle", action="store_true", help="ground-truth landmarks + pixel noise, no detector "
                          "(gaussian: the true hand poses instead of the tracked ones)")
    evaluate.add_argument("--noise-px", type=float, default=2.0, help="oracle landmark noise, pixels (default 2)")
    evaluate.add_argument("--no-depth", action="store_true", help="RGB only: monocular odometry, no map")
    evaluate.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="sequence seeds (default: 0 1)")
    evaluate.add_argument("--hands", type=int, nargs="+", default=None, choices=(1, 2),
                          help="hand counts to generate (ego default: 1 2; multiview: one count, default 1)")
    evaluate.add_argument("--frames", type=int, default=None,
                          help="frames per sequence (default: ego 100, multiview 150, gaussian 300)")
    evaluate.add_argument("--steps", type=int, default=2000, help="gaussian: fitting steps (default 2000)")
    evaluate.add_argument("--no-refine-pose", action="store_true",
                          help="gaussian: keep the tracked poses (default: refined by the image loss)")
    evaluate.add_argument("--views", type=int, default=4, help="multiview: cameras in the rig, 2-8 (default 4)")
    evaluate.add_argument("--camera-info", action="store_true",
                          help="multiview: cameras publish their true intrinsics (default: all estimated)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(handler=run_eval)


"""The `hand-scene` command: one entry point for demos, offline runs, evaluation and benchmarks.

Sub-commands import their heavy dependencies lazily so `hand-scene --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__

# Default focal length as a multiple of the image's larger side: a 2·atan(1/2) ≈ 53° field of view across it,
# typical of webcams and phone main cameras; real intrinsics (--fx ...) are always better.
DEFAULT_FOCAL_PER_SIDE = 1.0


def run_demo(args: argparse.Namespace) -> int:
    """The main job: the ego node (its own process) on a synthetic RGB-D bag over DDS, outputs recorded, summary and
    picture; a node that fails exits 1 with its error and the end of its log."""
    from .ros.demo import format_summary
    from .ros.demo import run_demo as run_ego_demo
    from .ros.node_process import NodeProcessError

    try:
        summary = run_ego_demo(args.out, frames=args.frames, seed=args.seed, rate=args.rate, out=sys.stdout)
    except NodeProcessError as error:
        print(f"hand-scene demo: error: {error}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    return 0


def run_hand_model_figure(args: argparse.Namespace) -> int:
    """Render the configured hand model in a few poses, both sides, to a PNG."""
    from .core.hand_model import create_hand_model
    from .synth.hand_model_figure import render_hand_model_figure

    model = create_hand_model(args.hand_model, mano_dir=args.mano_dir)
    path = render_hand_model_figure(args.out / "hand_model.png", model=model)
    print(f"hand-model-figure: wrote {path} ({model.name}: open palm, fist and pinch, right and left hands)")
    return 0


def _load_rgb(path: Path):
    """RGB uint8 array of an image file (alpha dropped, gray expanded), or ValueError naming the file."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read {path} as an image: {error}") from None


def _load_depth_m(path: Path, height: int, width: int):
    """Depth in metres at the colour size (0 = no depth): a .npy of metres or a 16-bit PNG of millimetres."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from .core.depth import aligned_depth_metres

    if not path.is_file():
        raise FileNotFoundError(f"no such depth file: {path}")
    try:
        if path.suffix.lower() == ".npy":
            raw = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as image:
                raw = np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ValueError(f"cannot read {path} as depth: {error}") from None
    if raw.dtype == np.int32 and raw.size and raw.min() >= 0 and raw.max() <= np.iinfo(np.uint16).max:
        raw = raw.astype(np.uint16)  # Pillow opens some 16-bit PNGs as 32-bit integers
    return aligned_depth_metres(raw, height, width)


def _camera_from_args(args: argparse.Namespace, height: int, width: int):
    """Camera from --fx/--fy/--cx/--cy, each missing one filled with the documented default (53° FOV, centred;
    a warning on stderr says so), and those intrinsics as a dict with ``assumed``."""
    from .core.camera import PinholeCamera

    focal = DEFAULT_FOCAL_PER_SIDE * max(width, height)
    fx = args.fx if args.fx is not None else (args.fy if args.fy is not None else focal)
    fy = args.fy if args.fy is not None else fx
    cx = args.cx if args.cx is not None else (width - 1) / 2.0
    cy = args.cy if args.cy is not None else (height - 1) / 2.0
    camera = PinholeCamera.from_intrinsics(fx, fy, cx, cy, width, height)
    assumed = any(getattr(args, name) is None for name in ("fx", "fy", "cx", "cy"))
    if assumed:
        fov = math.degrees(2.0 * math.atan(max(width, height) / (2.0 * fx)))
        print(
            f"hand-scene {args.command}: warning: intrinsics not all given; assuming a {fov:.0f}° field of view "
            "and the principal point at the centre",
            file=sys.stderr,
        )
    return camera, {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "assumed": assumed}


def run_detect(args: argparse.Namespace) -> int:
    """Detect hands in one image and estimate each in the camera frame (the ego pipeline's per-frame estimate)."""
    import numpy as np

    from .backends.mediapipe_hands import MediaPipeHandDetector, MediaPipeUnavailableError
    from .pipelines.ego import EgoConfig, hand_estimator

    image = _load_rgb(args.image)
    height, width = image.shape[:2]
    camera, intrinsics = _camera_from_args(args, height, width)
    depth = _load_depth_m(args.depth, height, width) if args.depth is not None else None
    try:
        with MediaPipeHandDetector(max_hands=args.max_hands, mode="image") as detector:
            detections = detector.detect(image)
            estimator = hand_estimator(EgoConfig(max_hands=args.max_hands), detector)
    except MediaPipeUnavailableError as error:
        print(f"hand-scene detect: error: {error}", file=sys.stderr)
        return 2
    hands = []
    for detection in detections:
        try:
            fit = estimator.estimate(detection, camera, depth)
        except ValueError:  # landmarks that cannot be placed (an inconsistent detection): not reported
            continue
        hands.append(
            {
                "side": detection.side.value,
                "score": round(detection.score, 4),
                "landmarks_px": np.round(detection.landmarks_px, 2).tolist(),
                "joints_cam_m": np.round(fit.joints_cam, 5).tolist(),
                "wrist_m": np.round(fit.joints_cam[0], 5).tolist(),
                "wrist_pose": np.round(fit.wrist_pose, 6).tolist(),
                "model_pose": np.round(fit.pose, 6).tolist(),
                "reprojection_error_px": round(float(fit.reprojection_error_px or 0.0), 3),
            }
        )
    report = {
        "hands": hands,
        "image": {"path": str(args.image), "width": width, "height": height, "depth": args.depth is not None},
        "intrinsics": intrinsics,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"{args.image}: {width}x{height}, fx={intrinsics['fx']:.1f} fy={intrinsics['fy']:.1f} "
        f"cx={intrinsics['cx']:.1f} cy={intrinsics['cy']:.1f}{' (assumed)' if intrinsics['assumed'] else ''}, "
        f"{len(hands)} hand(s)"
    )
    for index, hand in enumerate(hands, 1):
        x, y, z = hand["wrist_m"]
        print(
            f"  hand {index}: {hand['side']} (score {hand['score']:.2f}), wrist at ({x:.3f}, {y:.3f}, {z:.3f}) m, "
            f"reprojection {hand['reprojection_error_px']:.1f} px"
        )
    return 0


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEPTH_SUFFIXES = (".png", ".npy")
DEFAULT_IMAGE_FPS = 30.0


@dataclass
class _FrameSource:
    """An opened run input: frame size, rate, the input's frame count (``length``) and how many of them will run
    (``total``) when known, the image files (folders only) and the frames themselves as (index, stamp_ns, rgb)."""

    width: int
    height: int
    fps: float
    length: int | None
    total: int | None
    files: list[Path] | None
    frames: Iterator[tuple[int, int, Any]]
    close: Callable[[], None] = lambda: None


def _sorted_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files of ``folder`` with one of ``suffixes`` (any case), in natural name order."""
    from .datasets.ground_truth import natural_key

    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes), key=natural_key)


def _stamp_ns(index: int, fps: float) -> int:
    """Stamp of frame ``index`` at ``fps``, exact to the nanosecond (never the wall clock, DESIGN.md §3)."""
    return round(index * 1e9 / fps)


def _open_image_folder(folder: Path, fps: float | None, max_frames: int | None) -> _FrameSource:
    """Sorted *.png/*.jpg of a folder, all of the first one's size; stamps from ``fps`` (default 30)."""
    files = _sorted_files(folder, IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join('*' + s for s in IMAGE_SUFFIXES)}) in {folder}")
    fps = DEFAULT_IMAGE_FPS if fps is None else fps
    first = _load_rgb(files[0])
    height, width = first.shape[:2]
    chosen = files[:max_frames] if max_frames is not None else files

    def frames() -> Iterator[tuple[int, int, Any]]:
        for index, path in enumerate(chosen):
            image = first if index == 0 else _load_rgb(path)
            if image.shape[:2] != (height, width):
                raise ValueError(f"{path} is {image.shape[1]}x{image.shape[0]} but {files[0].name} is {width}x{height}")
            yield index, _stamp_ns(index, fps), image

    return _FrameSource(width, height, fps, len(files), len(chosen), files, frames())


def _open_video(path: Path, fps: float | None, max_frames: int | None) -> _FrameSource:
    """Frames of a video file through OpenCV, converted to RGB; stamps from the frame index and the file's rate
    (``fps`` overrides it, and stands in when the file has none)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok or first is None:
        capture.release()
        raise ValueError(f"cannot read {path} as a video (OpenCV could not decode a first frame)")
    if fps is None:
        fps = capture.get(cv2.CAP_PROP_FPS)
        if not (math.isfinite(fps) and fps > 0):
            print(
                f"hand-scene run: warning: {path} states no frame rate; assuming {DEFAULT_IMAGE_FPS:g} FPS (set --fps)",
                file=sys.stderr,
            )
            fps = DEFAULT_IMAGE_FPS
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    length = count if count > 0 else None
    total = length if max_frames is None else min(length or max_frames, max_frames)

    def frames() -> Iterator[tuple[int, int, Any]]:
        image, index = first, 0
        while image is not None and (max_frames is None or index < max_frames):
            yield index, _stamp_ns(index, fps), cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            ok, image = capture.read()
            image, index = (image if ok else None), index + 1

    height, width = first.shape[:2]
    return _FrameSource(width, height, float(fps), length, total, None, frames(), capture.release)


def _open_run_input(path: Path, fps: float | None, max_frames: int | None) -> _FrameSource:
    """A video file or an image folder, checked before any output is written."""
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"--fps must be a positive number, got {fps}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1, got {max_frames}")
    if path.is_dir():
        return _open_image_folder(path, fps, max_frames)
    if not path.is_file():
        raise FileNotFoundError(f"no such video file or image folder: {path}")
    return _open_video(path, fps, max_frames)


def _depth_files(folder: Path, source: _FrameSource) -> list[Path] | None:
    """One depth file per frame to run: by file stem when every image has a same-named depth file, else by sorted
    order when the counts agree; None for a video of unknown length (matched by order as it plays)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"no such depth folder: {folder}")
    depth = _sorted_files(folder, DEPTH_SUFFIXES)
    if not depth:
        raise ValueError(f"no depth images (*.png in millimetres, *.npy in metres) in {folder}")
    if source.files is not None:
        by_stem = {p.stem: p for p in depth}
        if all(f.stem in by_stem for f in source.files[: source.total]):
            return [by_stem[f.stem] for f in source.files[: source.total]]
    if source.length is None:
        return depth
    if len(depth) != source.length:
        names = ", and their names do not match the images'" if source.files is not None else ""
        raise ValueError(
            f"{len(depth)} depth files in {folder} for {source.length} frames{names}: depth is matched by file "
            "stem or, with equal counts, by sorted order"
        )
    return depth[: source.total]


def _run_camera(args: argparse.Namespace, height: int, width: int):
    """Camera from --intrinsics (a camera_info YAML, rescaled to the frames when only the resolution differs)
    or from --fx/--fy/--cx/--cy with the documented defaults; and a JSON-ready description of it."""
    from .core.camera import load_camera_info_yaml

    if args.intrinsics is None:
        return _camera_from_args(args, height, width)
    if any(getattr(args, name) is not None for name in ("fx", "fy", "cx", "cy")):
        raise ValueError("give either --intrinsics or --fx/--fy/--cx/--cy, not both")
    camera = load_camera_info_yaml(args.intrinsics)
    if (camera.width, camera.height) != (width, height):
        sx, sy = width / camera.width, height / camera.height
        if abs(sx - sy) > 0.01 * max(sx, sy):
            raise ValueError(
                f"{args.intrinsics} is for {camera.width}x{camera.height} images, but the frames are "
                f"{width}x{height} (another aspect ratio: not the same camera mode)"
            )
        print(
            f"hand-scene {args.command}: warning: scaling {args.intrinsics} from {camera.width}x{camera.height} to the "
            f"frames' {width}x{height}",
            file=sys.stderr,
        )
        camera = camera.scaled(sx, sy)
    description = {
        "fx": camera.fx,
        "fy": camera.fy,
        "cx": camera.cx,
        "cy": camera.cy,
        "assumed": False,
        "distortion_model": camera.distortion_model,
        "d": list(camera.d),
        "file": str(args.intrinsics),
    }
    return camera, description


def _check_overlay_path(path: Path) -> None:
    """`run --overlay`: checked before anything is written (a bad name exits 2 with nothing written)."""
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"--overlay names the video to write and must end in .mp4, got {path}")
    if not path.parent.is_dir():
        raise ValueError(f"--overlay {path}: no folder {path.parent}")


def _overlay_video(path: Path, fps: float, width: int, height: int):
    """OpenCV's writer for `run --overlay`: MPEG-4 Part 2 ('mp4v'), which the OpenCV wheel the project already has
    (through mediapipe) encodes without any further dependency."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise ValueError(f"cannot write the overlay video {path} (OpenCV could not open it for mp4v)")
    return writer


class _Progress:
    """Frames done, rate and hands on stderr: one line redrawn in place on a terminal; on a pipe or log file a
    plain line every few seconds instead (no carriage-return clutter)."""

    def __init__(self, total: int | None, clock: Callable[[], float] = time.monotonic, command: str = "run") -> None:
        self.total = total
        self.command = command
        self._clock = clock
        self._start = self._last = clock()
        try:
            self._tty = sys.stderr is not None and sys.stderr.isatty()
        except (AttributeError, ValueError):  # replaced or closed stderr
            self._tty = False

    def update(self, done: int, hands: int | None, final: bool = False) -> None:
        """Show progress after ``done`` frames (``hands`` detected so far, None: not counted), throttled to a few
        updates a second."""
        now = self._clock()
        if not final and now - self._last < (0.2 if self._tty else 5.0):
            return
        self._last = now
        rate = done / max(now - self._start, 1e-9)
        of = f"/{self.total}" if self.total else ""
        line = f"hand-scene {self.command}: {done}{of} frames, {rate:.1f} FPS"
        line += "" if hands is None else f", {hands} hand samples"
        try:
            if self._tty:
                sys.stderr.write("\r" + line + ("\n" if final else ""))
            else:
                sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):  # no usable stderr: progress is optional
            pass


def run_run(args: argparse.Namespace) -> int:
    """Run the ego pipeline offline over a video or image folder and write hands, trajectory, map and overview
    (and with ``--overlay`` a video of the hands drawn over each frame).

    Outputs are written when the run ends, also after Ctrl-C (exit 130) or an error part-way (which then
    exits as usual), so the frames processed so far are never lost."""
    source = _open_run_input(args.input, args.fps, args.max_frames)
    video = None
    try:
        depth_files = _depth_files(args.depth_dir, source) if args.depth_dir is not None else None
        camera, intrinsics = _run_camera(args, source.height, source.width)
        if args.overlay is not None:
            _check_overlay_path(args.overlay)
        # Imported only now, so bad arguments are reported without waiting for the pipeline's imports.
        import cv2

        from .backends.mediapipe_hands import MediaPipeUnavailableError
        from .core.hand_model.side import HandSide
        from .pipelines.ego import EgoConfig, EgoFrame, EgoPipeline
        from .pipelines.ego_outputs import EgoRecorder
        from .pipelines.overlay import draw_overlay

        config = EgoConfig(
            max_hands=args.max_hands,
            hand_model=args.hand_model,
            mano_dir=None if args.mano_dir is None else str(args.mano_dir),
            camera_pose_source=args.camera_pose_source,
        )
        if args.out.exists() and not args.out.is_dir():
            raise ValueError(f"--out {args.out} exists and is not a folder")
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(f"cannot create the output folder {args.out}: {error}") from None
        try:
            pipeline = EgoPipeline(config)
        except MediaPipeUnavailableError as error:
            raise ValueError(str(error)) from None
        with pipeline:
            recorder = EgoRecorder(pipeline.model.name, pipeline.model.num_shape_params)
            faces = {side: pipeline.model.faces(side) for side in HandSide}
            if args.overlay is not None:
                video = _overlay_video(args.overlay, source.fps, source.width, source.height)
            progress = _Progress(source.total)
            outcome = "complete"
            start = time.perf_counter()
            try:
                for index, stamp_ns, image in source.frames:
                    depth = None
                    if depth_files is not None:
                        if index >= len(depth_files):
                            raise ValueError(
                                f"{len(depth_files)} depth files in {args.depth_dir} but the video has more frames"
                            )
                        depth = _load_depth_m(depth_files[index], source.height, source.width)
                    result = pipeline.process(EgoFrame(image, camera, stamp_ns, depth))
                    recorder.add(index, result)
                    if video is not None:
                        drawn = draw_overlay(image, camera, [hand.camera for hand in result.hands], faces)
                        video.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
                    progress.update(recorder.frames, recorder.hand_samples)
            except KeyboardInterrupt:
                outcome = "interrupted"
            except BaseException as error:
                outcome = f"stopped by an error: {error}"
                raise
            finally:
                wall_s = time.perf_counter() - start
                progress.update(recorder.frames, recorder.hand_samples, final=True)
                extra = {
                    "outcome": outcome,
                    "input": str(args.input),
                    "depth_dir": None if args.depth_dir is None else str(args.depth_dir),
                    "width": source.width,
                    "height": source.height,
                    "input_fps": source.fps,
                    "fps": round(recorder.frames / wall_s, 2) if wall_s > 0 else None,
                    "wall_s": round(wall_s, 3),
                    "intrinsics": intrinsics,
                    "overlay": None if args.overlay is None else str(args.overlay),
                }
                written = recorder.write(args.out, pipeline.map.points(), pipeline.map.colors(), extra)
    finally:
        source.close()
        if video is not None:
            video.release()
    summary = recorder.summary()
    print(
        f"hand-scene run: {outcome}: {recorder.frames} frames, {summary['hand_samples']} hand samples in "
        f"{len(summary['tracks'])} track(s), {extra['fps']} FPS; wrote {', '.join(written)} to {args.out}"
        + ("" if args.overlay is None else f" and the overlay video {args.overlay}")
    )
    return 130 if outcome == "interrupted" else 0


def run_eval_real(args: argparse.Namespace) -> int:
    """The ego pipeline, its per-image path and its raw detector on real frames: against the ground truth of a
    ``ground_truth.npz`` folder, or (a video or image folder without labels) against each other."""
    from .datasets.ground_truth import GROUND_TRUTH_FILE, load_real_sequence
    from .pipelines.ego import EgoConfig
    from .pipelines.real_eval import consistency, evaluate_real, mediapipe_factory, run_estimates

    if args.path is None:
        raise ValueError("eval real needs a folder (frames/ + ground_truth.npz) or a video / image folder")
    config = EgoConfig(max_hands=args.max_hands, hand_model=args.hand_model,
                       mano_dir=str(args.mano_dir) if args.mano_dir else None)
    has_truth = (args.path / GROUND_TRUTH_FILE).is_file()
    if args.retarget_urdf_dir is not None and not has_truth:
        raise ValueError(f"--retarget-urdf-dir compares with the ground truth: {args.path} has no {GROUND_TRUTH_FILE}")
    if has_truth:
        sequence = load_real_sequence(args.path, with_depth=args.depth)
        progress = _Progress(len(sequence.frames), command="eval real")
        if args.retarget_urdf_dir is not None:
            from .pipelines.retarget_eval import dex_factory, evaluate_real_with_retargeting

            robots = [name.strip() for name in args.retarget_robots.split(",") if name.strip()]
            factory = dex_factory(args.retarget_urdf_dir, robots)  # fails before any frame is processed
            report = evaluate_real_with_retargeting(sequence, factory, robots, args.depth, config,
                                                    progress=lambda done: progress.update(done, None))
        else:
            report = evaluate_real(sequence, args.depth, config, progress=lambda done: progress.update(done, None))
        progress.update(len(sequence.frames), None, final=True)
        return _print_report({"input": str(args.path), **report}, args.json)
    if args.depth:
        raise ValueError(f"--depth needs the ground-truth layout ({GROUND_TRUTH_FILE}, depth/) in {args.path}")
    source = _open_run_input(args.path, args.fps, args.max_frames)
    camera, intrinsics = _camera_from_args(args, source.height, source.width)
    frames = ((rgb, camera, None) for _, _, rgb in source.frames)
    try:
        estimates = run_estimates(frames, source.fps, mediapipe_factory(config.max_hands), config)
    finally:
        source.close()
    return _print_report({"input": str(args.path), "intrinsics": intrinsics, **consistency(estimates)}, args.json)


def run_convert_gt(args: argparse.Namespace) -> int:
    """Convert a public dataset's files into the ground-truth layout that ``eval real`` reads."""
    from .datasets.converters import convert_fphab, convert_ge2019, convert_interhand

    if args.dataset == "fphab":
        if args.skeleton is None:
            raise ValueError("fphab needs --skeleton PATH (the sequence's skeleton.txt)")
        path = convert_fphab(args.source, args.skeleton, args.out, with_depth=not args.no_depth)
    elif args.dataset == "ge2019":
        path = convert_ge2019(args.source, args.out, crops=args.crops)
    else:
        path = convert_interhand(args.source, args.out)
    print(f"convert-gt: wrote {path} and {args.out / 'frames'}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Evaluate a pipeline on generated sequences with ground truth and print the metrics."""
    if args.system == "real":
        return run_eval_real(args)
    if args.system == "multiview":
        from .pipelines.multiview_eval import evaluate_multiview

        hands = args.hands or [1]
        if len(hands) != 1:
            raise ValueError(f"eval multiview takes one --hands count (1 or 2), got {hands}")
        summary = evaluate_multiview(
            seeds=tuple(args.seeds), num_frames=args.frames or 150, num_views=args.views, num_hands=hands[0],
            oracle=args.oracle, noise_px=args.noise_px, camera_info=args.camera_info,
        )  # fmt: skip
        return _print_report(summary, args.json)
    from .pipelines.ego_eval import evaluate_ego

    summary = evaluate_ego(
        seeds=tuple(args.seeds), num_frames=args.frames or 100, num_hands=tuple(args.hands or [1, 2]),
        oracle=args.oracle, noise_px=args.noise_px, use_depth=not args.no_depth,
    )  # fmt: skip
    return _print_report(summary, args.json)


def run_bench(args: argparse.Namespace) -> int:
    """Benchmark a pipeline against its reference in the same run (or the synthetic generator) and print it."""
    if args.system == "synth":
        from .synth.bench import benchmark_synth

        return _print_report(benchmark_synth(num_frames=args.frames, seed=args.seed), args.json)
    if args.system == "ros-ego":
        from .ros.ego_bench import benchmark_ros_ego

        return _print_report(benchmark_ros_ego(duration_s=args.duration), args.json)
    if args.system == "ros-soak":
        from .ros.ego_bench import benchmark_ros_soak

        return _print_report(benchmark_ros_soak(duration_s=args.duration), args.json)
    if args.system == "multiview":
        from .pipelines.multiview_eval import benchmark_multiview

        return _print_report(benchmark_multiview(num_frames=args.frames, seed=args.seed), args.json)
    from .pipelines.ego_eval import benchmark_ego

    return _print_report(benchmark_ego(num_frames=args.frames, seed=args.seed), args.json)


def run_launch(args: argparse.Namespace) -> int:
    """Run a system's launch plan in this process (the wiring of launch/<system>.launch.py; no `ros2 launch`)."""
    from .ros.launch_runner import launch_values, run_launch

    values = launch_values(args.arguments, None if args.params is None else str(args.params))
    return run_launch(args.system, values, args.ros_args, allow_network_discovery=args.allow_network_discovery,
                      print_plan=args.print_plan)  # fmt: skip


def run_video2bag(args: argparse.Namespace) -> int:
    """Turn a video or image folder (optionally with aligned depth) into a rosbag2 camera bag."""
    from .ros.bags import CameraFrame, camera_topics, write_camera_bag

    source = _open_run_input(args.input, args.fps, args.max_frames)
    try:
        depth_files = _depth_files(args.depth_dir, source) if args.depth_dir is not None else None
        camera, _ = _run_camera(args, source.height, source.width)
        if not (math.isfinite(args.start_time) and args.start_time > 0):
            raise ValueError(f"--start-time must be a positive number of seconds, got {args.start_time}")
        start_ns = round(args.start_time * 1e9)

        def frames() -> Iterator:
            for index, stamp_ns, image in source.frames:
                depth = None
                if depth_files is not None:
                    if index >= len(depth_files):
                        raise ValueError(f"{len(depth_files)} depth files in {args.depth_dir} but more frames")
                    depth = _load_depth_m(depth_files[index], source.height, source.width).astype("float32")
                yield CameraFrame(start_ns + stamp_ns, image, depth)

        progress = _Progress(source.total, command="video2bag")
        counts = write_camera_bag(
            args.out, frames(), camera, frame_id=args.frame_id, topic_prefix=args.topic_prefix,
            storage=args.storage, on_frame=lambda done: progress.update(done, None),
        )  # fmt: skip
    finally:
        source.close()
    topics = camera_topics(args.topic_prefix)
    progress.update(counts[topics["image"]], None, final=True)
    print(f"hand-scene video2bag: wrote {args.out}: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    return 0


def run_replay(args: argparse.Namespace) -> int:
    """Publish a bag's topics over DDS with /clock (use_sim_time for the nodes listening)."""
    from .ros.bags import parse_remaps, replay_bag

    stats = replay_bag(
        args.bag, rate=args.rate, loop=args.loop, topics=args.topics, remaps=parse_remaps(args.remap),
        wait_for_subscribers_s=args.wait_for_subscribers, ros_args=args.ros_args,
    )  # fmt: skip
    published = ", ".join(f"{topic} {count}" for topic, count in stats.published.items())
    print(
        f"hand-scene replay: {stats.passes} pass(es), {stats.bag_s:.2f} s of bag in {stats.wall_s:.2f} s; "
        f"published {published}; /clock {stats.clock_messages}"
    )
    return 0


def run_record(args: argparse.Namespace) -> int:
    """Record the ego or multiview node's outputs (or --topics) to a bag until --duration or Ctrl-C."""
    from .ros.bags import EGO_OUTPUT_TOPICS, multiview_output_topics, record_bag

    outputs = EGO_OUTPUT_TOPICS if args.system == "ego" else multiview_output_topics(args.cameras)
    counts = record_bag(
        args.out, topics=args.topics or outputs, duration_s=args.duration, storage=args.storage,
        use_sim_time=args.use_sim_time, ros_args=args.ros_args,
        on_ready=lambda: print("hand-scene record: recording (Ctrl-C to stop)", file=sys.stderr, flush=True),
    )  # fmt: skip
    recorded = ", ".join(f"{topic} {count}" for topic, count in counts.items()) or "no topics seen"
    print(f"hand-scene record: wrote {args.out}: {recorded}")
    return 0


def run_process(args: argparse.Namespace) -> int:
    """Run the ego pipeline over a bag as fast as it goes (no DDS) and write the node's outputs to a bag."""
    from .ros.bag_io import open_bag

    reader = open_bag(args.bag)  # a bad bag is reported before the pipeline's imports
    images = sum(c.msgcount for c in reader.connections if c.topic == (args.image_topic or "/camera/image_raw"))
    reader.close()
    from .backends.mediapipe_hands import MediaPipeUnavailableError
    from .pipelines.ego import EgoConfig
    from .ros.bag_process import process_bag

    config = EgoConfig(max_hands=args.max_hands, hand_model=args.hand_model,
                       mano_dir=None if args.mano_dir is None else str(args.mano_dir),
                       camera_pose_source=args.camera_pose_source)  # fmt: skip
    progress = _Progress(images or None, command="process")
    start = time.perf_counter()
    try:
        stats = process_bag(
            args.bag, args.out, config, image_topic=args.image_topic, info_topic=args.info_topic,
            depth_topic=args.depth_topic, use_depth=not args.no_depth, storage=args.storage,
            world_frame=args.world_frame, map_period_s=args.map_period,
            on_frame=lambda s: progress.update(s.frames, s.hand_samples),
            on_warning=lambda text: print(f"hand-scene process: warning: {text}", file=sys.stderr),
        )  # fmt: skip
    except MediaPipeUnavailableError as error:
        raise ValueError(str(error)) from None
    wall_s = time.perf_counter() - start
    progress.update(stats.frames, stats.hand_samples, final=True)
    unpaired = f", unpaired {stats.unpaired}" if stats.unpaired else ""
    print(
        f"hand-scene process: {stats.outcome}: {stats.frames} frames, {stats.hand_samples} hand samples, "
        f"{stats.rejected} rejected{unpaired}, {stats.frames / max(wall_s, 1e-9):.1f} FPS; wrote {args.out}"
    )
    return 130 if stats.outcome == "interrupted" else 0


def _print_report(report: dict, as_json: bool) -> int:
    """One JSON object, or one `key: value` line per entry for people."""
    if as_json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {round(value, 4) if isinstance(value, float) else value}")
    return 0


def _add_intrinsics_arguments(parser: argparse.ArgumentParser) -> None:
    """--fx/--fy/--cx/--cy, shared by the commands that take one camera's intrinsics on the command line."""
    for name, what in (
        ("fx", "focal length x"),
        ("fy", "focal length y"),
        ("cx", "principal point x"),
        ("cy", "principal point y"),
    ):
        parser.add_argument(
            f"--{name}",
            type=float,
            default=None,
            help=f"{what} in pixels (default: fx = fy = the larger image side, a 53° field of "
            "view; principal point at the image centre)",
        )


def _add_hand_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--hand-model and --mano-dir, shared by the commands that pose a hand model."""
    parser.add_argument(
        "--hand-model",
        choices=("open", "mano"),
        default="open",
        help="hand model: the package's open model (default) or MANO (needs --mano-dir)",
    )
    parser.add_argument("--mano-dir", type=Path, default=None, help="folder holding MANO_RIGHT/LEFT .pkl or .npz")


BAG_OUT_HELP = "output bag: NAME.mcap or NAME.db3 is one file (replaced), another name a new rosbag2 directory"


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with one sub-command per job."""
    parser = argparse.ArgumentParser(prog="hand-scene", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="the main job: ego node on a synthetic RGB-D bag over DDS (localhost); writes outputs/demo.*"
    )
    demo.add_argument("--out", type=Path, default=Path("outputs"), help="output folder (default: outputs)")
    demo.add_argument("--frames", type=int, default=150, help="frames to generate (default 150, 5 s at 30 Hz)")
    demo.add_argument("--seed", type=int, default=0, help="synthetic sequence seed (default 0)")
    demo.add_argument("--rate", type=float, default=1.0,
                      help="replay speed factor (default 1: the recorded 30 Hz, as a camera delivers it)")
    demo.set_defaults(handler=run_demo)

    figure = commands.add_parser("hand-model-figure", help="render the hand model in a few poses to a PNG")
    figure.add_argument("--out", type=Path, default=Path("outputs"), help="output folder (default: outputs)")
    _add_hand_model_arguments(figure)
    figure.set_defaults(handler=run_hand_model_figure)

    detect = commands.add_parser("detect", help="detect hands in one image and place them in the camera frame")
    detect.add_argument("image", type=Path, help="colour image (any format Pillow reads)")
    _add_intrinsics_arguments(detect)
    detect.add_argument(
        "--depth",
        type=Path,
        default=None,
        help="aligned depth: 16-bit PNG in millimetres or .npy in metres (resampled to the image, 0 = none)",
    )
    detect.add_argument("--max-hands", type=int, default=2, help="most hands to report (default 2)")
    detect.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    detect.set_defaults(handler=run_detect)

    run = commands.add_parser("run", help="run the ego pipeline over a video or image folder and write its outputs")
    run.add_argument("input", type=Path, help="video file (any format OpenCV reads) or folder of *.png/*.jpg frames")
    run.add_argument("--out", type=Path, required=True, help="output folder (created; files in it are replaced)")
    run.add_argument(
        "--depth-dir",
        type=Path,
        default=None,
        help="aligned depth per frame: 16-bit PNG millimetres or .npy metres, matched by file stem or by sorted order",
    )
    run.add_argument(
        "--intrinsics",
        type=Path,
        default=None,
        help="camera calibration YAML in the ROS camera_info format (camera_calibration's output)",
    )
    _add_intrinsics_arguments(run)
    run.add_argument(
        "--fps",
        type=float,
        default=None,
        help="frame rate for the stamps (default: the video's own; 30 for image folders)",
    )
    run.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    run.add_argument("--max-hands", type=int, default=2, help="most hands to track (default 2)")
    run.add_argument("--camera-pose-source", choices=("odometry", "static"), default="odometry",
                     help="odometry: visual odometry tracks the camera (default); static: a fixed camera, no odometry")
    run.add_argument("--overlay", type=Path, default=None, metavar="OUT.mp4",
                     help="also write the hands (meshes, skeletons) drawn over each frame as an MP4 video")
    _add_hand_model_arguments(run)
    run.set_defaults(handler=run_run)

    evaluate = commands.add_parser("eval", help="measure a pipeline on synthetic sequences or real ground truth")
    evaluate.add_argument("system", choices=("ego", "multiview", "real"),
                          help="which pipeline: ego / multiview on generated sequences, or real: the ego pipeline on "
                               "real frames (see `convert-gt`)")
    evaluate.add_argument("path", type=Path, nargs="?", default=None,
                          help="real: a folder with frames/ and ground_truth.npz, or a video / image folder without "
                               "labels (then only the checks that need none)")
    evaluate.add_argument("--depth", action="store_true", help="real: use the folder's aligned depth/ images")
    evaluate.add_argument("--max-hands", type=int, default=2, help="real: most hands per frame (default 2)")
    evaluate.add_argument("--fps", type=float, default=None, help="real, unlabelled video: frame rate for stamps")
    evaluate.add_argument("--max-frames", type=int, default=None, help="real, unlabelled video: stop after N frames")
    evaluate.add_argument("--retarget-urdf-dir", type=Path, default=None,
                          help="real: dex-urdf's robots/ folder; adds robot joint commands (dex-retargeting) vs the "
                               "ground truth's to the report (key retargeting)")
    evaluate.add_argument("--retarget-robots", default="allegro,shadow",
                          help="real, with --retarget-urdf-dir: dex-retargeting robots, comma-separated "
                               "(default allegro,shadow)")
    _add_intrinsics_arguments(evaluate)
    _add_hand_model_arguments(evaluate)
    evaluate.add_argument("--oracle", action="store_true", help="ground-truth landmarks + pixel noise, no detector")
    evaluate.add_argument("--noise-px", type=float, default=2.0, help="oracle landmark noise, pixels (default 2)")
    evaluate.add_argument("--no-depth", action="store_true", help="RGB only: monocular odometry, no map")
    evaluate.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="sequence seeds (default: 0 1)")
    evaluate.add_argument("--hands", type=int, nargs="+", default=None, choices=(1, 2),
                          help="hand counts to generate (ego default: 1 2; multiview: one count, default 1)")
    evaluate.add_argument("--frames", type=int, default=None,
                          help="frames per sequence (default: ego 100, multiview 150)")
    evaluate.add_argument("--views", type=int, default=4, help="multiview: cameras in the rig, 2-8 (default 4)")
    evaluate.add_argument("--camera-info", action="store_true",
                          help="multiview: cameras publish their true intrinsics (default: all estimated)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(handler=run_eval)

    convert = commands.add_parser("convert-gt", help="convert a public hand dataset to the layout `eval real` reads")
    convert.add_argument("dataset", choices=("fphab", "ge2019", "interhand"),
                         help="fphab: one FPHAB sequence folder (color/, depth/) + --skeleton; ge2019: the real-world "
                              "test set of Ge et al. 2019 (images/, params.mat, pose_gt.mat); interhand: "
                              "InterHand2.6M-format json files beside their images")
    convert.add_argument("source", type=Path, help="the dataset folder")
    convert.add_argument("out", type=Path, help="output folder (frames/, depth/, ground_truth.npz)")
    convert.add_argument("--skeleton", type=Path, default=None, help="fphab: the sequence's skeleton.txt")
    convert.add_argument("--no-depth", action="store_true", help="fphab: colour frames only")
    convert.add_argument("--crops", action="store_true",
                         help="ge2019: keep the 256x256 crops with per-frame intrinsics (default: paste them back "
                              "into 1280x720 frames with the video's intrinsics)")
    convert.set_defaults(handler=run_convert_gt)

    bench = commands.add_parser("bench", help="speed of a pipeline against its reference, in one run")
    bench.add_argument("system", choices=("ego", "multiview", "synth", "ros-ego", "ros-soak"),
                       help="which pipeline (synth: the benchmark generator; ros-ego: the ego node through DDS; "
                            "ros-soak: its memory over a long RGB-D run, e.g. --duration 600)")
    bench.add_argument("--duration", type=float, default=10.0,
                       help="ros-ego: seconds timed per phase; ros-soak: seconds of the run (default 10)")
    bench.add_argument("--frames", type=int, default=90, help="frames to time (default 90)")
    bench.add_argument("--seed", type=int, default=0, help="synthetic sequence seed (default 0)")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(handler=run_bench)

    video2bag = commands.add_parser("video2bag", help="turn a video or image folder into a rosbag2 camera bag")
    video2bag.add_argument("input", type=Path, help="video file (any format OpenCV reads) or folder of *.png/*.jpg")
    video2bag.add_argument("--out", type=Path, required=True, help=BAG_OUT_HELP)
    video2bag.add_argument("--depth-dir", type=Path, default=None,
                           help="aligned depth per frame (as for `run`), stored as 32FC1 metres")
    video2bag.add_argument("--intrinsics", type=Path, default=None, help="camera calibration YAML (camera_info format)")
    _add_intrinsics_arguments(video2bag)
    video2bag.add_argument("--fps", type=float, default=None,
                           help="frame rate for the stamps (default: the video's own; 30 for image folders)")
    video2bag.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    video2bag.add_argument("--start-time", type=float, default=1.0,
                           help="stamp of the first frame, seconds (default 1; 0 means 'no time' in ROS)")
    video2bag.add_argument("--frame-id", default="camera_optical_frame", help="header frame (default: %(default)s)")
    video2bag.add_argument("--storage", choices=("mcap", "sqlite3"), default=None,
                           help="storage of a directory bag (default mcap; .mcap/.db3 names decide it)")
    video2bag.add_argument("--topic-prefix", default="/camera",
                           help="topics PREFIX/image_raw, PREFIX/camera_info, PREFIX/depth/image_raw (default /camera)")
    video2bag.set_defaults(handler=run_video2bag)

    replay = commands.add_parser("replay", help="publish a bag's topics over DDS with /clock")
    replay.add_argument("bag", type=Path, help="rosbag2 directory or .mcap/.db3 file")
    replay.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1)")
    replay.add_argument("--loop", action="store_true",
                        help="play again and again until Ctrl-C (the clock restarts at the bag's start each pass)")
    replay.add_argument("--topics", nargs="+", default=None, help="only these topics (default: all)")
    replay.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO", help="publish a topic under another name")
    replay.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="S",
                        help="first wait up to S seconds until every topic has a subscriber (default: no wait)")
    replay.add_argument("--ros-args", nargs=argparse.REMAINDER, default=[], help="ROS arguments for the node (last)")
    replay.set_defaults(handler=run_replay)

    record = commands.add_parser("record", help="record the ego or multiview node's outputs to a bag until Ctrl-C")
    record.add_argument("--out", type=Path, required=True, help=BAG_OUT_HELP)
    record.add_argument("--topics", nargs="+", default=None,
                        help="topics to record (default: the --system node's outputs, /tf, /tf_static, /diagnostics)")
    record.add_argument("--system", choices=("ego", "multiview"), default="ego",
                        help="whose outputs to record by default (default ego)")
    record.add_argument("--cameras", nargs="+", default=["cam0", "cam1"], metavar="NAME",
                        help="multiview: the node's camera names, for <name>/camera_info_estimated (default cam0 cam1)")
    record.add_argument("--duration", type=float, default=None, help="stop after S seconds (default: Ctrl-C)")
    record.add_argument("--storage", choices=("mcap", "sqlite3"), default=None,
                        help="storage of a directory bag (default mcap; .mcap/.db3 names decide it)")
    record.add_argument("--use-sim-time", action="store_true", help="log times from /clock instead of the wall")
    record.add_argument("--ros-args", nargs=argparse.REMAINDER, default=[], help="ROS arguments for the node (last)")
    record.set_defaults(handler=run_record)

    process = commands.add_parser("process", help="run the ego pipeline over a bag (no DDS) into an output bag")
    process.add_argument("bag", type=Path, help="input rosbag2 directory or .mcap/.db3 file")
    process.add_argument("--out", type=Path, required=True, help=BAG_OUT_HELP)
    process.add_argument("--image-topic", default=None, help="colour image topic (default /camera/image_raw)")
    process.add_argument("--info-topic", default=None, help="CameraInfo topic (default /camera/camera_info)")
    process.add_argument("--depth-topic", default=None,
                         help="registered depth topic (default /camera/depth/image_raw, when the bag has it)")
    process.add_argument("--no-depth", action="store_true", help="RGB only: ignore depth (no metric map)")
    process.add_argument("--world-frame", default="map",
                         help="world frame of the outputs; with --camera-pose-source tf the TF frame the camera pose "
                              "is looked up in (default: map)")
    process.add_argument("--camera-pose-source", choices=("odometry", "tf", "static"), default="odometry",
                         help="odometry (default); tf: the image frame's pose in --world-frame from the bag's /tf and "
                              "/tf_static; static: a fixed camera, no odometry")
    process.add_argument("--map-period", type=float, default=1.0,
                         help="write the scene map every S seconds of bag time, and at the end (default 1)")
    process.add_argument("--storage", choices=("mcap", "sqlite3"), default=None,
                         help="storage of a directory bag (default mcap; .mcap/.db3 names decide it)")
    process.add_argument("--max-hands", type=int, default=2, help="most hands to track (default 2)")
    _add_hand_model_arguments(process)
    process.set_defaults(handler=run_process)

    launch = commands.add_parser(
        "launch",
        help="run a node's launch plan in this process (like ros2 launch)",
        usage="hand-scene launch {ego,multiview} [NAME:=VALUE ...] [--params FILE] [--print-plan] "
        "[--allow-network-discovery] [--ros-args ...]",
    )
    launch.add_argument("system", choices=("ego", "multiview"),
                        help="which launch file's plan (launch/<system>.launch.py)")
    launch.add_argument("arguments", nargs="*", metavar="NAME:=VALUE", help="launch arguments (see launch/README.md)")
    launch.add_argument("--params", type=Path, default=None, help="parameter YAML (default: config/<system>.yaml)")
    launch.add_argument("--print-plan", action="store_true", help="print the nodes, parameters and remappings; exit")
    launch.add_argument(
        "--allow-network-discovery",
        action="store_true",
        help="accept ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET/SYSTEM_DEFAULT (default: refuse; unset means LOCALHOST)",
    )
    launch.add_argument("--ros-args", nargs=argparse.REMAINDER, default=[], help="ROS arguments for the node (last)")
    launch.set_defaults(handler=run_launch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen sub-command; user errors exit 2 with a message, not a traceback."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if args.command == "launch":  # ros2-launch-style NAME:=VALUE items may follow options too (argparse stops at them)
        args.arguments += [item for item in extras if ":=" in item]
        extras = [item for item in extras if ":=" not in item]
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    # The per-frame maths is many tiny matrices: BLAS and torch thread pools only add overhead there, and
    # the pipeline already runs MediaPipe and odometry side by side on the cores. Must precede numpy's import.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        return args.handler(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"hand-scene {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

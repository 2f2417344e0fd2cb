"""Frame sources for the offline commands: a video or a folder of images (with stamps at a frame rate), and
depth images matched to them by name; single images and depth files."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


DEPTH_SUFFIXES = (".png", ".npy")


DEFAULT_IMAGE_FPS = 30.0


@dataclass
class FrameSource:
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


def sorted_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files of ``folder`` with one of ``suffixes`` (any case), in natural name order."""
    from ..datasets.ground_truth import natural_key

    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes), key=natural_key)


def frame_stamp_ns(index: int, fps: float) -> int:
    """Stamp of frame ``index`` at ``fps``, exact to the nanosecond (never the wall clock, ARCHITECTURE.md,
    Conventions)."""
    return round(index * 1e9 / fps)


def open_image_folder(folder: Path, fps: float | None, max_frames: int | None) -> FrameSource:
    """Sorted *.png/*.jpg of a folder, all of the first one's size; stamps from ``fps`` (default 30)."""
    files = sorted_files(folder, IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join('*' + s for s in IMAGE_SUFFIXES)}) in {folder}")
    fps = DEFAULT_IMAGE_FPS if fps is None else fps
    first = load_rgb(files[0])
    height, width = first.shape[:2]
    chosen = files[:max_frames] if max_frames is not None else files

    def frames() -> Iterator[tuple[int, int, Any]]:
        for index, path in enumerate(chosen):
            image = first if index == 0 else load_rgb(path)
            if image.shape[:2] != (height, width):
                raise ValueError(f"{path} is {image.shape[1]}x{image.shape[0]} but {files[0].name} is {width}x{height}")
            yield index, frame_stamp_ns(index, fps), image

    return FrameSource(width, height, fps, len(files), len(chosen), files, frames())


def open_video(path: Path, fps: float | None, max_frames: int | None) -> FrameSource:
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
            yield index, frame_stamp_ns(index, fps), cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            ok, image = capture.read()
            image, index = (image if ok else None), index + 1

    height, width = first.shape[:2]
    return FrameSource(width, height, float(fps), length, total, None, frames(), capture.release)


def open_frames(path: Path, fps: float | None, max_frames: int | None) -> FrameSource:
    """A video file or an image folder, checked before any output is written."""
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"--fps must be a positive number, got {fps}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--max-frames must be >= 1, got {max_frames}")
    if path.is_dir():
        return open_image_folder(path, fps, max_frames)
    if not path.is_file():
        raise FileNotFoundError(f"no such video file or image folder: {path}")
    return open_video(path, fps, max_frames)


def matched_depth_files(folder: Path, source: FrameSource) -> list[Path] | None:
    """One depth file per frame to run: by file stem when every image has a same-named depth file, else by sorted
    order when the counts agree; None for a video of unknown length (matched by order as it plays)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"no such depth folder: {folder}")
    depth = sorted_files(folder, DEPTH_SUFFIXES)
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


def load_rgb(path: Path):
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


def load_depth_m(path: Path, height: int, width: int):
    """Depth in metres at the colour size (0 = no depth): a .npy of metres or a 16-bit PNG of millimetres."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    from ..core.depth import aligned_depth_metres

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

"""Writing RGB frames as an MP4 video (``hand-scene run --overlay``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def check_video_path(path: Path) -> None:
    """Checked before a run starts, so a bad name exits with nothing written."""
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"--overlay names the video to write and must end in .mp4, got {path}")
    if not path.parent.is_dir():
        raise ValueError(f"--overlay {path}: no folder {path.parent}")


class Mp4Writer:
    """RGB frames to an MPEG-4 Part 2 ('mp4v') file through OpenCV's writer: the OpenCV wheel the project already
    has (through mediapipe) encodes it with no further dependency. A context manager: the file is closed (and
    playable up to the last frame written) also when a run stops early."""

    def __init__(self, path: Path, fps: float, width: int, height: int) -> None:
        import cv2

        check_video_path(path)
        self._cv2 = cv2
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not self._writer.isOpened():
            raise ValueError(f"cannot write the video {path} (OpenCV could not open it for mp4v)")

    def write(self, rgb: Any) -> None:
        """Append one (H, W, 3) uint8 RGB frame of the size given at construction."""
        self._writer.write(self._cv2.cvtColor(rgb, self._cv2.COLOR_RGB2BGR))

    def close(self) -> None:
        self._writer.release()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

"""Files an offline ego run leaves behind (``hand-scene run``): hands, camera trajectory, contacts, map, a picture.

:class:`EgoRecorder` keeps what each frame produced (small arrays, no images) so the outputs can be written at
any moment: at the end, after Ctrl-C, or after an error part-way through. Every writer replaces its file
atomically, so a folder never holds a half-written file. Units are metres and nanoseconds; "world" is the
pipeline's world frame (the first camera pose, optical axes: x right, y down, z forward).

- ``hands.npz``: one row per hand sample: ``stamp_ns``, ``frame``, ``track_id``, ``side`` ("left"/"right"),
  ``confidence``, ``side_confidence``, ``joints_world`` / ``joints_cam`` (N, 21, 3), ``wrist_pose_world``
  (N, 4, 4), ``model_pose`` (N, 16, 3, world global rotation), ``model_shape`` (N, S), ``model_translation``
  (N, 3, world), ``reprojection_error_px`` (NaN when unknown) and ``model_name``.
- ``hands.csv``: the same samples for spreadsheets: wrist and the 21 world joints flattened x0..z20.
- ``camera_trajectory.csv``: per frame, T_world_camera as translation + quaternion (x, y, z, w) and odometry state.
- ``contacts.csv``: per contact, the map point, the scene normal there and the hand's signed distance.
- ``map.ply``: binary little-endian point cloud, float32 x y z and uchar red green blue.
- ``overview.png``: top and front views of the map with the camera path and each hand track's wrist path.
- ``summary.json``: counts, rates and mean per-stage timings.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.spatial.transform import Rotation

from ..core.contacts import Contact
from ..core.files import atomic_write
from ..core.hand_model.side import HandSide
from ..core.ply import write_vertex_ply
from .ego import EgoResult

HANDS_NPZ = "hands.npz"
HANDS_CSV = "hands.csv"
TRAJECTORY_CSV = "camera_trajectory.csv"
CONTACTS_CSV = "contacts.csv"
MAP_PLY = "map.ply"
OVERVIEW_PNG = "overview.png"
SUMMARY_JSON = "summary.json"

# Overview colours (RGB): the camera in yellow, hands in the colours people usually give them in hand datasets.
BACKGROUND_RGB = (24, 24, 28)
CAMERA_RGB = (255, 214, 0)
SIDE_RGB = {HandSide.LEFT: (40, 150, 255), HandSide.RIGHT: (255, 70, 60)}
_TEXT_RGB = (230, 230, 230)
_PANEL_PX = 560
_MARGIN_PX = 16
_LEGEND_PX = 64
# Map extent shown: robust percentiles, so a few stray far points do not shrink everything else to a dot.
_MAP_PERCENTILES = (0.5, 99.5)
_NUMBER = "%.6f"


class EgoRecorder:
    """Accumulates per-frame :class:`EgoResult` contents in memory, ready to be written at any point."""

    def __init__(self, model_name: str, num_shape_params: int) -> None:
        """``model_name`` and ``num_shape_params`` describe the hand model, so even a run with no hands writes
        arrays of the right shape."""
        self.model_name = model_name
        self.num_shape_params = int(num_shape_params)
        self._hands: dict[str, list] = {key: [] for key in _HAND_KEYS}
        self._frames: dict[str, list] = {"stamp_ns": [], "frame": [], "pose": [], "ok": [], "metric": [], "status": []}
        self._contacts: list[tuple[int, int, Contact]] = []
        self._timings: dict[str, list[float]] = {}
        self.session_resets: list[str] = []

    @property
    def frames(self) -> int:
        """Frames recorded so far."""
        return len(self._frames["frame"])

    @property
    def hand_samples(self) -> int:
        """Hand samples recorded so far (one per hand per frame)."""
        return len(self._hands["frame"])

    def add(self, frame_index: int, result: EgoResult) -> None:
        """Keep one frame's hands, camera pose, contacts and timings."""
        for hand in result.hands:
            world = hand.world
            sample = {
                "stamp_ns": result.stamp_ns,
                "frame": frame_index,
                "track_id": hand.track_id,
                "side": hand.side.value,
                "confidence": world.confidence,
                "side_confidence": hand.side_confidence,
                "reprojection_error_px": math.nan if hand.reprojection_error_px is None else hand.reprojection_error_px,
                "joints_world": world.joints,
                "joints_cam": hand.camera.joints,
                "wrist_pose_world": world.wrist_pose,
                "model_pose": world.model_pose,
                "model_shape": world.model_shape,
                "model_translation": world.model_translation,
            }
            for key, value in sample.items():
                self._hands[key].append(value)
        odometry = result.odometry
        record = {"stamp_ns": result.stamp_ns, "frame": frame_index, "pose": result.T_world_camera,
                  "ok": odometry.ok, "metric": odometry.metric, "status": odometry.status}  # fmt: skip
        for key, value in record.items():
            self._frames[key].append(value)
        self._contacts += [(result.stamp_ns, frame_index, contact) for contact in result.contacts]
        for stage, milliseconds in result.timings_ms.items():
            self._timings.setdefault(stage, []).append(milliseconds)
        if result.session_reset:
            self.session_resets.append(f"frame {frame_index}: {result.session_reset}")

    def hand_arrays(self) -> dict[str, np.ndarray]:
        """The hand samples as stacked arrays (the contents of ``hands.npz``)."""
        arrays = {}
        for key, (dtype, shape) in _HAND_KEYS.items():
            values = self._hands[key]
            empty_shape = (0, *(shape if shape is not None else (self.num_shape_params,)))
            arrays[key] = np.array(values, dtype) if values else np.zeros(empty_shape, dtype)
        arrays["model_name"] = np.array(self.model_name)
        return arrays

    def camera_poses(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """Per frame: stamp_ns (F,), frame (F,), T_world_camera (F, 4, 4), odometry ok (F,), metric (F,), status."""
        f = self._frames
        poses = np.array(f["pose"], np.float64).reshape(-1, 4, 4)
        return (np.array(f["stamp_ns"], np.int64), np.array(f["frame"], np.int64), poses,
                np.array(f["ok"], bool), np.array(f["metric"], bool), list(f["status"]))  # fmt: skip

    def summary(self) -> dict[str, object]:
        """Counts, the pipeline's own rate and mean per-stage timings (ms) for ``summary.json``."""
        arrays = self.hand_arrays()
        tracks = {int(t): str(s) for t, s in zip(arrays["track_id"], arrays["side"], strict=True)}
        timings = {stage: round(float(np.mean(values)), 3) for stage, values in self._timings.items()}
        total = timings.get("total", 0.0)
        ok = np.array(self._frames["ok"], bool)
        return {
            "frames": self.frames,
            "frames_with_hands": len(set(self._hands["frame"])),
            "hand_samples": self.hand_samples,
            "hands_by_side": {side.value: int(np.sum(arrays["side"] == side.value)) for side in HandSide},
            "tracks": [{"track_id": t, "side": s} for t, s in sorted(tracks.items())],
            "contacts": len(self._contacts),
            "odometry_ok_fraction": round(float(ok.mean()), 4) if len(ok) else None,
            "pipeline_fps": round(1e3 / total, 2) if total > 0 else None,
            "mean_timings_ms": timings,
            "session_resets": self.session_resets,
            "hand_model": self.model_name,
        }

    def write(
        self, out_dir: str | Path, map_points: np.ndarray, map_colors: np.ndarray, extra: dict | None = None
    ) -> dict[str, Path]:
        """Write every output file into ``out_dir`` (created if needed); ``extra`` joins ``summary.json``.

        Returns the written paths by file name. The map is passed in (not taken from a pipeline) so a caller
        can write a map it merged, filtered or read back."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        arrays = self.hand_arrays()
        stamps, frames, poses, ok, metric, status = self.camera_poses()
        write_hands_npz(out / HANDS_NPZ, arrays)
        write_hands_csv(out / HANDS_CSV, arrays)
        write_trajectory_csv(out / TRAJECTORY_CSV, stamps, frames, poses, ok, metric, status)
        write_contacts_csv(out / CONTACTS_CSV, self._contacts)
        write_ply(out / MAP_PLY, map_points, map_colors)
        tracks = hand_tracks(arrays)
        image = render_overview(map_points, map_colors, poses, tracks, title=f"{self.frames} frames")
        write_png(out / OVERVIEW_PNG, image)
        summary = {**self.summary(), "map_points": len(map_points), **(extra or {})}
        write_json(out / SUMMARY_JSON, summary)
        names = (HANDS_NPZ, HANDS_CSV, TRAJECTORY_CSV, CONTACTS_CSV, MAP_PLY, OVERVIEW_PNG, SUMMARY_JSON)
        return {name: out / name for name in names}


# Per-sample hand fields: stored dtype and per-sample shape (None: the hand model's shape-vector length).
_HAND_KEYS: dict[str, tuple[type | str, tuple[int, ...] | None]] = {
    "stamp_ns": (np.int64, ()),
    "frame": (np.int64, ()),
    "track_id": (np.int64, ()),
    "side": ("<U5", ()),
    "confidence": (np.float64, ()),
    "side_confidence": (np.float64, ()),
    "reprojection_error_px": (np.float64, ()),
    "joints_world": (np.float64, (21, 3)),
    "joints_cam": (np.float64, (21, 3)),
    "wrist_pose_world": (np.float64, (4, 4)),
    "model_pose": (np.float64, (16, 3)),
    "model_shape": (np.float64, None),
    "model_translation": (np.float64, (3,)),
}


def write_hands_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Hand samples as an uncompressed NPZ that loads with ``allow_pickle=False`` (no object arrays)."""
    with atomic_write(path) as handle:
        np.savez(handle, **arrays)


def _write_csv(path: str | Path, header: Sequence[str], columns: Sequence[tuple[np.ndarray, str]]) -> None:
    """CSV with a header row from column blocks, each (N,) or (N, k) values with a printf format; formatting is
    vectorised per block, so a long run writes quickly."""
    rows = len(columns[0][0])
    table = np.zeros((0, len(header)), str)
    if rows:
        table = np.hstack([np.char.mod(fmt, np.asarray(values).reshape(rows, -1)) for values, fmt in columns])
    if table.shape[1] != len(header):
        raise ValueError(f"{len(header)} column names for {table.shape[1]} columns")
    with atomic_write(path, "w") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(table.tolist())


def write_hands_csv(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """One row per hand sample: stamp, frame, track, side, confidence, world wrist xyz, 21 world joints x0..z20."""
    joints = arrays["joints_world"].reshape(-1, 63)
    header = ["stamp_ns", "frame", "track_id", "side", "confidence", "wrist_x", "wrist_y", "wrist_z"]
    header += [f"{axis}{j}" for j in range(21) for axis in "xyz"]
    _write_csv(path, header, [
        (arrays["stamp_ns"], "%d"), (arrays["frame"], "%d"), (arrays["track_id"], "%d"), (arrays["side"], "%s"),
        (arrays["confidence"], "%.4f"), (joints[:, :3], _NUMBER), (joints, _NUMBER),
    ])  # fmt: skip


def write_trajectory_csv(
    path: str | Path,
    stamps_ns: np.ndarray,
    frames: np.ndarray,
    poses: np.ndarray,
    ok: np.ndarray,
    metric: np.ndarray,
    status: Sequence[str],
) -> None:
    """One row per frame: T_world_camera as tx ty tz and a unit quaternion qx qy qz qw, odometry ok/metric/status.

    Commas in the status text become semicolons, so plain numeric readers (``np.genfromtxt``) parse every row."""
    poses = np.asarray(poses, np.float64).reshape(-1, 4, 4)
    quats = Rotation.from_matrix(poses[:, :3, :3]).as_quat() if len(poses) else np.zeros((0, 4))
    header = ["stamp_ns", "frame", "tx", "ty", "tz", "qx", "qy", "qz", "qw", "odometry_ok", "metric", "status"]
    status_text = np.char.replace(np.array(status, str), ",", ";")
    _write_csv(path, header, [
        (stamps_ns, "%d"), (frames, "%d"), (poses[:, :3, 3], _NUMBER), (quats, "%.8f"),
        (np.asarray(ok, int), "%d"), (np.asarray(metric, int), "%d"), (status_text, "%s"),
    ])  # fmt: skip


def write_contacts_csv(path: str | Path, contacts: Sequence[tuple[int, int, Contact]]) -> None:
    """One row per (stamp_ns, frame, contact): hand, region, vertex, world point, scene normal, signed distance."""
    header = ["stamp_ns", "frame", "track_id", "side", "region", "vertex_index",
              "px", "py", "pz", "nx", "ny", "nz", "distance_m"]  # fmt: skip
    rows = list(zip(*contacts, strict=True)) if contacts else [[], [], []]
    found: list[Contact] = list(rows[2])
    _write_csv(path, header, [
        (np.array(rows[0], np.int64), "%d"), (np.array(rows[1], np.int64), "%d"),
        (np.array([c.track_id for c in found], np.int64), "%d"), (np.array([c.side.value for c in found], str), "%s"),
        (np.array([c.region for c in found], str), "%s"), (np.array([c.vertex_index for c in found], np.int64), "%d"),
        (np.array([c.point for c in found], np.float64).reshape(-1, 3), _NUMBER),
        (np.array([c.normal for c in found], np.float64).reshape(-1, 3), _NUMBER),
        (np.array([c.distance for c in found], np.float64), _NUMBER),
    ])  # fmt: skip


def write_ply(path: str | Path, points: np.ndarray, colors: np.ndarray) -> None:
    """Binary little-endian PLY of coloured points (float32 x y z, uchar red green blue)."""
    points = np.asarray(points, np.float32).reshape(-1, 3)
    colors = np.asarray(colors).reshape(-1, 3)
    if len(colors) != len(points):
        raise ValueError(f"{len(points)} points but {len(colors)} colours")
    colors = colors.astype(np.uint8)
    columns = [*zip("xyz", points.T, strict=True), *zip(("red", "green", "blue"), colors.T, strict=True)]
    write_vertex_ply(path, columns, "hand_scene_perception ego map (world frame, metres)")


def write_png(path: str | Path, image: Image.Image) -> None:
    """Save a PIL image as PNG, atomically."""
    with atomic_write(path) as handle:
        image.save(handle, format="PNG")


def write_json(path: str | Path, data: dict) -> None:
    """Pretty-printed JSON, atomically (NaN is written as null so strict parsers accept the file)."""
    text = json.dumps(_finite(data), indent=2, sort_keys=False)
    with atomic_write(path, "w") as handle:
        handle.write(text + "\n")


def _finite(value: object) -> object:
    """The value with every non-finite float replaced by None, recursively."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def hand_tracks(arrays: dict[str, np.ndarray]) -> list[tuple[int, HandSide, np.ndarray]]:
    """(track_id, side, wrist path (M, 3) in world) per track, samples in frame order; a track's side is the one
    it was last reported with (the tracker's vote settles over time)."""
    tracks = []
    for track_id in np.unique(arrays["track_id"]):
        rows = np.flatnonzero(arrays["track_id"] == track_id)
        rows = rows[np.argsort(arrays["frame"][rows], kind="stable")]
        side = HandSide.parse(str(arrays["side"][rows[-1]]))
        tracks.append((int(track_id), side, arrays["joints_world"][rows, 0]))
    return tracks


# The two views: image-right axis, image-down axis (signs flip an axis) and the axis pointing at the viewer,
# whose smallest value is drawn on top. World axes are the first camera's optical axes (y down, z forward).
_VIEWS = (
    ("top view: x right, z forward", (0, 1.0), (2, -1.0), (1, 1.0)),
    ("front view: x right, y down", (0, 1.0), (1, 1.0), (2, 1.0)),
)


def render_overview(
    map_points: np.ndarray,
    map_colors: np.ndarray,
    camera_poses: np.ndarray,
    tracks: Sequence[tuple[int, HandSide, np.ndarray]],
    title: str = "",
) -> Image.Image:
    """Top and front views side by side: map points in their colours (nearest on top), the camera path in
    yellow with its last viewing direction, each hand track's wrist path in its side's colour, a scale bar per
    view and a legend. Pure numpy splatting and PIL lines, fast for maps of millions of points."""
    points = np.asarray(map_points, np.float64).reshape(-1, 3)
    colors = np.asarray(map_colors, np.uint8).reshape(-1, 3)
    poses = np.asarray(camera_poses, np.float64).reshape(-1, 4, 4)
    width = 2 * _PANEL_PX + 3 * _MARGIN_PX
    height = _PANEL_PX + 2 * _MARGIN_PX + _LEGEND_PX
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = BACKGROUND_RGB
    content = [poses[:, :3, 3]] + [path for _, _, path in tracks]
    if len(points):
        low, high = np.percentile(points, _MAP_PERCENTILES, axis=0)
        content.append(np.stack([low, high]))
    extent = np.vstack([c for c in content if len(c)] or [np.zeros((1, 3))])
    origins = [(_MARGIN_PX + k * (_PANEL_PX + _MARGIN_PX), _MARGIN_PX) for k in range(len(_VIEWS))]
    panels = []
    for (_, u_axis, v_axis, depth_axis), (left, top) in zip(_VIEWS, origins, strict=True):
        panel = _Panel.fitted(extent, u_axis, v_axis, left, top)
        panels.append(panel)
        if len(points):
            _splat(canvas, panel.pixels(points), points[:, depth_axis[0]] * depth_axis[1], colors, (left, top))
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for (name, *_), (left, top), panel in zip(_VIEWS, origins, panels, strict=True):
        draw.rectangle([left, top, left + _PANEL_PX - 1, top + _PANEL_PX - 1], outline=(90, 90, 98))
        draw.text((left + 6, top + 4), name, fill=_TEXT_RGB, font=font)
        _draw_scale_bar(draw, panel.metres_per_px, left, top + _PANEL_PX, font)
        _draw_path(draw, panel.pixels(poses[:, :3, 3]), CAMERA_RGB)
        if len(poses):
            tip = poses[-1, :3, 3] + poses[-1, :3, 2] * 0.08 * float(np.ptp(extent, axis=0).max() or 1.0)
            start, end = panel.pixels(np.stack([poses[-1, :3, 3], tip]))
            draw.line([tuple(start), tuple(end)], fill=CAMERA_RGB, width=1)
        for _, side, path in tracks:
            _draw_path(draw, panel.pixels(path), SIDE_RGB[side])
    _draw_legend(draw, font, height - _LEGEND_PX + 8, len(points), len(tracks), title)
    return image


@dataclass(frozen=True)
class _Panel:
    """One view's world → pixel mapping: the same metres-per-pixel on both axes, content centred."""

    u_axis: tuple[int, float]
    v_axis: tuple[int, float]
    centre: np.ndarray
    offset: np.ndarray
    metres_per_px: float

    @classmethod
    def fitted(
        cls, extent: np.ndarray, u_axis: tuple[int, float], v_axis: tuple[int, float], left: int, top: int
    ) -> _Panel:
        """The panel at (left, top) that shows every point of ``extent`` (N, 3) with a 6 % border."""
        uv = _Panel(u_axis, v_axis, np.zeros(2), np.zeros(2), 1.0).pixels(extent)
        span = max(float(np.ptp(uv[:, 0])), float(np.ptp(uv[:, 1])), 0.2)
        centre = (uv.min(axis=0) + uv.max(axis=0)) / 2
        offset = np.array([left + _PANEL_PX / 2, top + _PANEL_PX / 2])
        return cls(u_axis, v_axis, centre, offset, span / (_PANEL_PX * 0.88))

    def pixels(self, world: np.ndarray) -> np.ndarray:
        """(N, 2) float pixel positions of world points (N, 3)."""
        world = np.asarray(world, np.float64).reshape(-1, 3)
        uv = np.stack([world[:, self.u_axis[0]] * self.u_axis[1], world[:, self.v_axis[0]] * self.v_axis[1]], 1)
        return (uv - self.centre) / self.metres_per_px + self.offset


def _splat(
    canvas: np.ndarray, pixels: np.ndarray, depth: np.ndarray, colors: np.ndarray, origin: tuple[int, int]
) -> None:
    """Draw each point as a 2x2 block inside its panel, the smallest ``depth`` winning where points overlap."""
    left, top = origin
    base = np.floor(pixels).astype(np.int64)
    order = np.argsort(-depth, kind="stable")  # farthest first, so the nearest is written last ...
    for du in (0, 1):
        for dv in (0, 1):
            col, row = base[order, 0] + du, base[order, 1] + dv
            inside = (col >= left) & (col < left + _PANEL_PX) & (row >= top) & (row < top + _PANEL_PX)
            flat = row[inside] * canvas.shape[1] + col[inside]
            # ... and of repeated pixels only the last (nearest) write is kept, explicitly rather than relying on
            # numpy's unspecified order for repeated fancy-index assignment.
            _, last = np.unique(flat[::-1], return_index=True)
            keep = len(flat) - 1 - last
            canvas.reshape(-1, 3)[flat[keep]] = colors[order][inside][keep]


def _draw_path(draw: ImageDraw.ImageDraw, pixels: np.ndarray, color: tuple[int, int, int]) -> None:
    """A polyline with a hollow circle at its start and a filled one at its end."""
    if not len(pixels):
        return
    draw.line([tuple(p) for p in pixels.tolist()], fill=color, width=2, joint="curve")
    (x0, y0), (x1, y1) = pixels[0], pixels[-1]
    draw.ellipse([x0 - 4, y0 - 4, x0 + 4, y0 + 4], outline=color, width=2)
    draw.ellipse([x1 - 3, y1 - 3, x1 + 3, y1 + 3], fill=color)


def _draw_scale_bar(
    draw: ImageDraw.ImageDraw, metres_per_px: float, left: int, bottom: int, font: ImageFont.ImageFont
) -> None:
    """A bar of a round length (1, 2 or 5 × 10^k m) about a fifth of the panel wide, in its lower left corner."""
    target = metres_per_px * _PANEL_PX / 5
    exponent = math.floor(math.log10(target))
    length = max(step * 10.0**exponent for step in (1, 2, 5) if step * 10.0**exponent <= target)
    pixels = length / metres_per_px
    y = bottom - 14
    draw.line([(left + 10, y), (left + 10 + pixels, y)], fill=_TEXT_RGB, width=3)
    label = f"{length * 100:g} cm" if length < 1 else f"{length:g} m"
    draw.text((left + 16 + pixels, y - 6), label, fill=_TEXT_RGB, font=font)


def _draw_legend(
    draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont, y: int, num_points: int, num_tracks: int, title: str
) -> None:
    """One legend row: swatches for camera and hands, then map size, track count and the caller's title."""
    x = _MARGIN_PX
    entries = [("camera path (o start, arrow: last view)", CAMERA_RGB)]
    entries += [(f"{side.value} hand wrist", SIDE_RGB[side]) for side in HandSide]
    for label, color in entries:
        draw.line([(x, y + 6), (x + 24, y + 6)], fill=color, width=3)
        draw.text((x + 30, y), label, fill=_TEXT_RGB, font=font)
        x += 40 + int(draw.textlength(label, font=font))
    info = f"map: {num_points} points   hand tracks: {num_tracks}   {title}".rstrip()
    draw.text((_MARGIN_PX, y + 24), info, fill=_TEXT_RGB, font=font)

"""Public hand datasets with 3D ground truth → the layout of :mod:`.ground_truth` (``hand-scene convert-gt``).

Each converter reads a dataset's own files (no pickles) and writes ``frames/``, optional ``depth/`` and
``ground_truth.npz``. Facts about each layout (units, joint orders, camera parameters) are from the datasets'
own documentation; the data are research-only and are never shipped with this package.

- ``fphab``: First-Person Hand Action Benchmark (Garcia-Hernando et al., CVPR 2018), one sequence folder
  ``Video_files/<subject>/<action>/<n>`` (``color/color_XXXX.jpeg`` 1920x1080, ``depth/depth_XXXX.png`` 640x480
  uint16 mm) and its ``skeleton.txt`` (per line: frame index, 21 joints x 3 in mm, in the depth camera's frame,
  order wrist, 5 MCPs, then PIP/DIP/tip per finger). Colour camera = extrinsics applied to the depth frame. The
  depth is reprojected into the colour camera (z-buffered, holes stay 0). One right hand, 30 fps.
- ``ge2019``: the real-world test set of Ge et al., "3D Hand Shape and Pose Estimation from a Single RGB Image"
  (CVPR 2019): ``images/*.jpg`` 256x256 crops of a 1280x720 video, ``params.mat`` (``cam_param`` fx fy u0 v0 of
  the full frame, ``bbox`` x y w h of each square crop) and ``pose_gt.mat`` (N, 21, 3) cm in the camera frame, in
  the product's joint order. Each crop is pasted back at its box into a black 1280x720 frame (constant
  intrinsics, as the video was), or kept as a crop with its own K (``--crops``). One right hand.
- ``interhand``: InterHand2.6M-format annotation files (``*_joint_3d.json`` world mm, ``*_camera.json``
  campos/camrot/focal/princpt, ``*_data.json`` COCO images), e.g. small public test excerpts: single images.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .ground_truth import DEPTH_DIR, FRAMES_DIR, IMAGE_SUFFIXES, natural_key, save_ground_truth

MM = 1e-3
CM = 1e-2

# FPHAB (dataset README): colour intrinsics, depth intrinsics, and the depth→colour extrinsics (R, t in mm).
FPHAB_COLOR_K = np.array([[1395.749023, 0.0, 935.732544], [0.0, 1395.749268, 540.681030], [0.0, 0.0, 1.0]])
FPHAB_DEPTH_K = np.array([[475.065948, 0.0, 315.944855], [0.0, 475.065857, 245.287079], [0.0, 0.0, 1.0]])
FPHAB_R = np.array([
    [0.999988496304, -0.00468848412856, 0.000982563360594],
    [0.00469115935266, 0.999985218048, -0.00273845880292],
    [-0.000969709653873, 0.00274303671904, 0.99999576807],
])
FPHAB_T_MM = np.array([25.7, 1.22, 3.902])
# skeleton.txt order (wrist, TMCP, IMCP, MMCP, RMCP, PMCP, TPIP, TDIP, TTIP, IPIP, ...) → product order
FPHAB_TO_PRODUCT = np.array([0, 1, 6, 7, 8, 2, 9, 10, 11, 3, 12, 13, 14, 4, 15, 16, 17, 5, 18, 19, 20])
FPHAB_FPS = 30.0
GE2019_FRAME_SIZE = (1280, 720)
# InterHand2.6M per hand: thumb tip..base (0-3), index tip..MCP (4-7), middle, ring, pinky, wrist (20);
# right hand 0-20, left 21-41.
INTERHAND_TO_PRODUCT = np.array([20, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 19, 18, 17, 16])


def _prepare(out: Path) -> tuple[Path, Path]:
    frames = out / FRAMES_DIR
    frames.mkdir(parents=True, exist_ok=True)
    return frames, out / DEPTH_DIR


def _images(folder: Path) -> list[Path]:
    files = sorted((p for p in folder.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
    if not files:
        raise ValueError(f"no images in {folder}")
    return files


def fphab_depth_to_color(depth_mm: np.ndarray, color_size: tuple[int, int]) -> np.ndarray:
    """FPHAB's depth image (depth camera) reprojected into the colour camera: uint16 mm, 0 where unseen.

    Each depth pixel is lifted with the depth intrinsics, moved by the extrinsics and splatted into a 3x3
    block of the colour image (the colour image has ~3x the depth's pixels), nearest surface kept."""
    width, height = color_size
    v, u = np.nonzero(depth_mm > 0)
    z = depth_mm[v, u].astype(np.float64)
    points = np.stack([(u - FPHAB_DEPTH_K[0, 2]) / FPHAB_DEPTH_K[0, 0] * z,
                       (v - FPHAB_DEPTH_K[1, 2]) / FPHAB_DEPTH_K[1, 1] * z, z], axis=1)
    points = points @ FPHAB_R.T + FPHAB_T_MM
    front = points[:, 2] > 0
    points = points[front]
    cu = np.round(FPHAB_COLOR_K[0, 0] * points[:, 0] / points[:, 2] + FPHAB_COLOR_K[0, 2]).astype(np.int64)
    cv = np.round(FPHAB_COLOR_K[1, 1] * points[:, 1] / points[:, 2] + FPHAB_COLOR_K[1, 2]).astype(np.int64)
    out = np.full((height, width), np.inf)
    for du in (-1, 0, 1):
        for dv in (-1, 0, 1):
            x, y = cu + du, cv + dv
            inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            np.minimum.at(out, (y[inside], x[inside]), points[inside, 2])
    out[~np.isfinite(out)] = 0
    return np.clip(np.round(out), 0, 65535).astype(np.uint16)


def convert_fphab(sequence_dir: Path, skeleton: Path, out: Path, with_depth: bool = True) -> Path:
    """One FPHAB sequence (its ``color``/``depth`` folders) and its ``skeleton.txt``."""
    from PIL import Image

    colour = _images(sequence_dir / "color")
    table = np.loadtxt(skeleton, ndmin=2)
    if table.shape[1] != 1 + 21 * 3:
        raise ValueError(f"{skeleton}: expected 64 columns (frame index + 21 joints x 3), got {table.shape[1]}")
    by_index = {int(row[0]): row[1:].reshape(21, 3) for row in table}
    frames_dir, depth_dir = _prepare(out)
    count = len(colour)
    joints = np.zeros((count, 1, 21, 3))
    valid = np.zeros((count, 1), bool)
    for k, path in enumerate(colour):
        index = int(path.stem.split("_")[-1])
        shutil.copyfile(path, frames_dir / f"{k:06d}{path.suffix.lower()}")
        if index in by_index and np.any(by_index[index]):
            joints[k, 0] = (by_index[index] @ FPHAB_R.T + FPHAB_T_MM)[FPHAB_TO_PRODUCT] * MM
            valid[k, 0] = True
        if with_depth:
            depth_path = sequence_dir / "depth" / f"depth_{path.stem.split('_')[-1]}.png"
            if not depth_path.is_file():
                raise ValueError(f"{depth_path} not found (use --no-depth to convert the colour frames only)")
            size = Image.open(path).size
            depth_dir.mkdir(exist_ok=True)
            aligned = fphab_depth_to_color(np.asarray(Image.open(depth_path)), size)
            Image.fromarray(aligned).save(depth_dir / f"{k:06d}.png")
    K = np.broadcast_to(FPHAB_COLOR_K, (count, 3, 3))
    return save_ground_truth(out, K, joints, valid, ["right"], FPHAB_FPS)


def convert_ge2019(dataset_dir: Path, out: Path, crops: bool = False, fps: float = 30.0) -> Path:
    """The Ge et al. 2019 real-world test set (``images/``, ``params.mat``, ``pose_gt.mat``)."""
    from PIL import Image
    from scipy.io import loadmat

    for name in ("params.mat", "pose_gt.mat"):
        if not (dataset_dir / name).is_file():
            raise ValueError(f"{dataset_dir / name} not found: ge2019 needs images/, params.mat and pose_gt.mat")
    params = loadmat(dataset_dir / "params.mat")
    pose = np.asarray(loadmat(dataset_dir / "pose_gt.mat")["pose_gt"], np.float64) * CM
    images = _images(dataset_dir / "images")
    cam = np.asarray(params["cam_param"], np.float64)
    boxes = np.asarray(params["bbox"], np.float64)
    if not (len(images) == len(pose) == len(cam) == len(boxes)):
        raise ValueError(f"{len(images)} images, {len(pose)} poses, {len(cam)} cameras, {len(boxes)} boxes")
    frames_dir, _ = _prepare(out)
    K = np.zeros((len(images), 3, 3))
    for k, (path, (fx, fy, u0, v0), (bx, by, bw, bh)) in enumerate(zip(images, cam, boxes, strict=True)):
        crop = Image.open(path).convert("RGB")
        if crops:  # the crop's own camera: the full frame's intrinsics scaled and shifted to the box
            sx, sy = crop.width / bw, crop.height / bh
            K[k] = [[fx * sx, 0, (u0 - bx) * sx], [0, fy * sy, (v0 - by) * sy], [0, 0, 1]]
            crop.save(frames_dir / f"{k:06d}.png")
            continue
        frame = Image.new("RGB", GE2019_FRAME_SIZE)
        frame.paste(crop.resize((round(bw), round(bh)), Image.Resampling.BICUBIC), (round(bx), round(by)))
        frame.save(frames_dir / f"{k:06d}.jpg", quality=95)
        K[k] = [[fx, 0, u0], [0, fy, v0], [0, 0, 1]]
    valid = np.ones((len(images), 1), bool)
    return save_ground_truth(out, K, pose[:, None], valid, ["right"], fps)


def convert_interhand(annotation_dir: Path, out: Path) -> Path:
    """InterHand2.6M-format annotations and their images (single images; both hands where annotated)."""
    def one(suffix: str) -> dict:
        matches = sorted(annotation_dir.glob(f"*{suffix}"))
        if not matches:
            raise ValueError(f"no *{suffix} in {annotation_dir}")
        return json.loads(matches[0].read_text())

    joints_3d, cameras, data = one("_joint_3d.json"), one("_camera.json"), one("_data.json")
    frames_dir, _ = _prepare(out)
    K, joints, valid = [], [], []
    for k, image in enumerate(sorted(data["images"], key=lambda item: item["id"])):
        capture, camera, frame = str(image["capture"]), str(image["camera"]), str(image["frame_idx"])
        params = cameras[capture]
        rotation = np.asarray(params["camrot"][camera], np.float64)
        position = np.asarray(params["campos"][camera], np.float64)
        annotation = joints_3d[capture][frame]
        world = np.asarray(annotation["world_coord"], np.float64)
        joint_valid = np.asarray(annotation["joint_valid"], np.float64).reshape(-1)
        cam = (world - position) @ rotation.T * MM
        hands, ok = [], []
        for side_offset in (21, 0):  # slot 0 left, slot 1 right
            order = INTERHAND_TO_PRODUCT + side_offset
            hands.append(cam[order])
            ok.append(bool(np.all(joint_valid[order] > 0)))
        source = annotation_dir / image["file_name"]
        if not source.is_file():
            source = annotation_dir / Path(image["file_name"]).name
        shutil.copyfile(source, frames_dir / f"{k:06d}{source.suffix.lower()}")
        (fx, fy), (cx, cy) = params["focal"][camera], params["princpt"][camera]
        K.append([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
        joints.append(hands)
        valid.append(ok)
    return save_ground_truth(out, np.array(K), np.array(joints), np.array(valid), ["left", "right"], 0.0)


CONVERTERS: dict[str, Callable[..., Path]] = {
    "fphab": convert_fphab,
    "ge2019": convert_ge2019,
    "interhand": convert_interhand,
}

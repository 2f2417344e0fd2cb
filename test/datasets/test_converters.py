"""Public-dataset converters on tiny fake datasets written in each dataset's own format.

Every fake dataset is built from known joints in the product's order, metres, in the colour camera's frame, then
written the way the dataset stores them (its units, joint order and camera frame); the converter must give the
known joints back, with per-frame intrinsics that put them where they are in the written images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat
from scipy.spatial.transform import Rotation

from hand_scene_perception.datasets.converters import (
    FPHAB_COLOR_K,
    FPHAB_DEPTH_K,
    convert_fphab,
    convert_ge2019,
    convert_interhand,
    fphab_depth_to_color,
)
from hand_scene_perception.datasets.ground_truth import load_real_sequence

# FPHAB's README: the depth (world) → colour camera extrinsics as the dataset's own sample code writes them (mm).
FPHAB_README_EXTRINSICS = np.array(
    [
        [0.999988496304, -0.00468848412856, 0.000982563360594, 25.7],
        [0.00469115935266, 0.999985218048, -0.00273845880292, 1.22],
        [-0.000969709653873, 0.00274303671904, 0.99999576807, 3.902],
    ]
)
# FPHAB's skeleton.txt order, written as product joint indices: wrist, the five digit bases (TMCP, IMCP, MMCP, RMCP,
# PMCP), then per digit the next three (TPIP, TDIP, TTIP, IPIP, ...).
FPHAB_ROWS = [0, 1, 5, 9, 13, 17] + [base + k for base in (1, 5, 9, 13, 17) for k in (1, 2, 3)]
# InterHand2.6M's per-hand order as product indices: each digit tip first (thumb4..thumb1, index4..1, ...), wrist last.
INTERHAND_ROWS = [base + k for base in (1, 5, 9, 13, 17) for k in (3, 2, 1, 0)] + [0]


def _hand(rng: np.random.Generator, centre=(0.0, 0.0, 0.45), spread=0.07) -> np.ndarray:
    """(21, 3) distinct joints of a hand-sized cloud (metres) in product order around ``centre``."""
    offsets = rng.uniform(-spread, spread, (21, 3))
    offsets[:, 2] *= 0.3
    return np.asarray(centre) + offsets


def _project(K: np.ndarray, points: np.ndarray) -> np.ndarray:
    uvw = points @ K.T
    return uvw[..., :2] / uvw[..., 2:]


def test_documented_orders_cover_every_joint_once():
    assert sorted(FPHAB_ROWS) == list(range(21)) and sorted(INTERHAND_ROWS) == list(range(21))


# ------------------------------------------------------------------------------------------------------ FPHAB


def _colour_to_fphab_world_mm(joints_colour_m: np.ndarray) -> np.ndarray:
    """The inverse of the README's extrinsics: colour-camera metres → skeleton.txt millimetres (depth frame)."""
    rotation, translation = FPHAB_README_EXTRINSICS[:, :3], FPHAB_README_EXTRINSICS[:, 3]
    return (joints_colour_m * 1e3 - translation) @ rotation  # R^T (p - t), row vectors


def _fphab_sequence(root: Path, frames: int, colour_size=(1920, 1080), depth=True) -> Path:
    sequence = root / "Video_files" / "Subject_1" / "pour_juice" / "1"
    (sequence / "color").mkdir(parents=True)
    (sequence / "depth").mkdir()
    for k in range(frames):
        Image.new("RGB", colour_size, (k * 20, 40, 60)).save(sequence / "color" / f"color_{k:04d}.jpeg")
        if depth:
            plane = np.full((480, 640), 500 + 100 * k, np.uint16)
            Image.fromarray(plane).save(sequence / "depth" / f"depth_{k:04d}.png")
    return sequence


def _write_skeleton(path: Path, rows: dict[int, np.ndarray]) -> None:
    lines = [" ".join([str(index), *(f"{v:.6f}" for v in joints_mm.reshape(-1))]) for index, joints_mm in rows.items()]
    path.write_text("\n".join(lines) + "\n")


def test_fphab_joints_in_metres_in_the_colour_camera_in_product_order(tmp_path):
    rng = np.random.default_rng(1)
    sequence = _fphab_sequence(tmp_path, 4, colour_size=(192, 108), depth=False)
    truth = np.stack([_hand(rng) for _ in range(4)])
    skeleton = tmp_path / "skeleton.txt"
    rows = {k: _colour_to_fphab_world_mm(truth[k])[FPHAB_ROWS] for k in (0, 1, 3)}  # frame 2 has no row
    rows[3] = np.zeros((21, 3))  # an all-zero row: the hand was not annotated
    rows[9] = _colour_to_fphab_world_mm(truth[0])[FPHAB_ROWS]  # a row without an image is ignored
    _write_skeleton(skeleton, rows)
    out = tmp_path / "out"

    path = convert_fphab(sequence, skeleton, out, with_depth=False)

    assert path == out / "ground_truth.npz"
    assert not (out / "depth").exists()
    loaded = load_real_sequence(out)
    assert [p.name for p in loaded.frames] == [f"{k:06d}.jpeg" for k in range(4)]
    for k, frame in enumerate(loaded.frames):  # copied as they are
        assert frame.read_bytes() == (sequence / "color" / f"color_{k:04d}.jpeg").read_bytes()
    np.testing.assert_array_equal(loaded.valid[:, 0], [True, True, False, False])
    np.testing.assert_allclose(loaded.joints_cam[[0, 1], 0], truth[[0, 1]], atol=1e-8)
    np.testing.assert_allclose(loaded.K, np.broadcast_to(FPHAB_COLOR_K, (4, 3, 3)))
    assert loaded.fps == 30.0 and loaded.sides == ("right",) and loaded.is_video


def test_fphab_writes_depth_aligned_to_the_colour_images(tmp_path):
    rng = np.random.default_rng(2)
    sequence = _fphab_sequence(tmp_path, 2)
    skeleton = tmp_path / "skeleton.txt"
    _write_skeleton(skeleton, {k: _colour_to_fphab_world_mm(_hand(rng))[FPHAB_ROWS] for k in range(2)})
    out = tmp_path / "out"
    convert_fphab(sequence, skeleton, out)
    loaded = load_real_sequence(out, with_depth=True)
    for k, depth_path in enumerate(loaded.depth):
        depth = np.asarray(Image.open(depth_path))
        assert depth.dtype == np.uint16 and depth.shape == (1080, 1920)  # the colour image's size
        seen = depth[depth > 0].astype(float)
        # the plane at 500 / 600 mm in the depth camera is 3.9 mm farther in the colour camera (README extrinsics)
        assert abs(np.median(seen) - (503.9 + 100 * k)) <= 1.0


def test_fphab_errors_name_the_problem(tmp_path):
    rng = np.random.default_rng(3)
    sequence = _fphab_sequence(tmp_path, 2, colour_size=(64, 36), depth=False)
    skeleton = tmp_path / "skeleton.txt"
    _write_skeleton(skeleton, {k: _colour_to_fphab_world_mm(_hand(rng))[FPHAB_ROWS] for k in range(2)})
    with pytest.raises(ValueError, match=r"depth_0000\.png not found \(use --no-depth"):
        convert_fphab(sequence, skeleton, tmp_path / "out")

    short = tmp_path / "short.txt"
    short.write_text("0 " + " ".join(["1.0"] * 62) + "\n")  # one value too few (frame index + 62)
    with pytest.raises(ValueError, match=r"expected 64 columns .* got 63"):
        convert_fphab(sequence, short, tmp_path / "out2", with_depth=False)

    empty = tmp_path / "empty"
    (empty / "color").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images in"):
        convert_fphab(empty, skeleton, tmp_path / "out3", with_depth=False)


def _depth_pixel_in_colour(u: float, v: float, z_mm: float) -> tuple[np.ndarray, float]:
    """Where a depth pixel lands in the colour image, by the README's extrinsics: (u, v) and its colour depth."""
    point = np.array(
        [
            (u - FPHAB_DEPTH_K[0, 2]) / FPHAB_DEPTH_K[0, 0] * z_mm,
            (v - FPHAB_DEPTH_K[1, 2]) / FPHAB_DEPTH_K[1, 1] * z_mm,
            z_mm,
        ]
    )
    colour = FPHAB_README_EXTRINSICS[:, :3] @ point + FPHAB_README_EXTRINSICS[:, 3]
    return _project(FPHAB_COLOR_K, colour), float(colour[2])


def test_fphab_flat_depth_plane_maps_to_a_plane_in_the_colour_image():
    depth = np.full((480, 640), 500, np.uint16)
    aligned = fphab_depth_to_color(depth, (1920, 1080))
    assert aligned.dtype == np.uint16 and aligned.shape == (1080, 1920)
    seen = aligned > 0
    values = aligned[seen].astype(float)
    # the plane tilts by the extrinsics' rotation: 503.9 mm ± 1 mm over the view
    assert values.min() >= 502 and values.max() <= 506
    # the depth camera's left edge (u = 0) lands at colour column ~85: the colour view is wider there, unseen = 0
    left_edge, _ = _depth_pixel_in_colour(0.0, 240.0, 500.0)
    assert 80 < left_edge[0] < 90
    assert not seen[:, : int(left_edge[0]) - 2].any()
    assert seen[:, int(left_edge[0]) + 3 :].all()  # no holes: each depth pixel covers ~3x3 colour pixels


def test_fphab_depth_lands_at_its_reprojected_pixel_nearest_surface_kept():
    depth = np.zeros((480, 640), np.uint16)
    depth[:, 400:] = 900  # a far wall on the right
    depth[290:311, 390:411] = 450  # a near patch, partly in front of the wall
    aligned = fphab_depth_to_color(depth, (1920, 1080)).astype(float)
    centre, z_near = _depth_pixel_in_colour(400.0, 300.0, 450.0)
    near = (aligned > 0) & (aligned < 700)
    rows, cols = np.nonzero(near)
    np.testing.assert_allclose([cols.mean(), rows.mean()], centre, atol=1.5)
    # the patch spans 21 depth pixels: 21 * 1395.7 / 475.1 * 450 / 453.9 ≈ 61 colour pixels (+2 for the splat)
    assert 58 <= cols.max() - cols.min() + 1 <= 66 and 58 <= rows.max() - rows.min() + 1 <= 66
    assert np.all(np.abs(aligned[near] - z_near) <= 1.0)
    # where the patch covers the wall, the wall is hidden (z-buffer); elsewhere it is at its own depth
    u, v = np.round(centre + [20, 0]).astype(int)
    assert abs(aligned[v, u] - z_near) <= 1.0
    wall = aligned[aligned >= 700]
    assert np.all(np.abs(wall - 904) <= 2.0)
    # left of the wall's left edge nothing was seen except the patch
    wall_edge, _ = _depth_pixel_in_colour(400.0, 100.0, 900.0)
    assert not (aligned[:200, : int(wall_edge[0]) - 2] > 0).any()


# ------------------------------------------------------------------------------------------------------ Ge 2019

GE_CAM = (1290.0, 1285.0, 630.0, 370.0)  # fx fy u0 v0 of the 1280x720 frame


def _ge_dataset(
    root: Path, boxes: list[tuple[float, float, float, float]], truth: np.ndarray, dots: dict[int, tuple[int, int, int]]
) -> Path:
    """images/ 256x256 crops (black, with a coloured dot painted at each ``dots`` joint), params.mat, pose_gt.mat."""
    fx, fy, u0, v0 = GE_CAM
    K = np.array([[fx, 0, u0], [0, fy, v0], [0, 0, 1]])
    (root / "images").mkdir(parents=True)
    for k, (bx, by, bw, bh) in enumerate(boxes):
        crop = np.zeros((256, 256, 3), np.uint8)
        for joint, colour in dots.items():
            u, v = _project(K, truth[k, joint])
            # the crop pixel whose centre sees (u, v): pixel centres at integers in both images
            cu, cv = (u - bx + 0.5) * 256 / bw - 0.5, (v - by + 0.5) * 256 / bh - 0.5
            iu, iv = round(cu), round(cv)
            crop[iv - 3 : iv + 4, iu - 3 : iu + 4] = colour
        Image.fromarray(crop).save(root / "images" / f"{k}.jpg", quality=98)
    savemat(root / "params.mat", {"cam_param": np.tile(GE_CAM, (len(boxes), 1)), "bbox": np.array(boxes)})
    savemat(root / "pose_gt.mat", {"pose_gt": truth * 100.0})  # centimetres
    return root


def _dot_centre(image: np.ndarray, channel: int) -> np.ndarray:
    """(u, v) centroid of the pixels where ``channel`` is bright and the others are dark."""
    others = [c for c in range(3) if c != channel]
    mask = (image[..., channel] > 128) & np.all(image[..., others] < 100, axis=-1)
    rows, cols = np.nonzero(mask)
    assert len(rows) > 0, "dot not found"
    return np.array([cols.mean(), rows.mean()])


def _ge_case(tmp_path):
    rng = np.random.default_rng(4)
    # ±4 cm: the hand spans ≤ 210 px, inside either box
    truth = np.stack([_hand(rng, (0.02, -0.01, 0.5), 0.04), _hand(rng, (-0.05, 0.03, 0.6), 0.04)])
    fx, fy, u0, v0 = GE_CAM
    K = np.array([[fx, 0, u0], [0, fy, v0], [0, 0, 1]])
    boxes = []
    for k, size in enumerate((230.0, 340.0)):  # one crop enlarged, one shrunk to 256
        centre = _project(K, truth[k]).mean(axis=0)
        boxes.append((round(centre[0] - size / 2), round(centre[1] - size / 2), size, size))
    dots = {8: (255, 0, 0), 0: (0, 255, 0)}  # index tip red, wrist green
    source = _ge_dataset(tmp_path / "ge", boxes, truth, dots)
    return source, truth, K, boxes, dots


def test_ge2019_full_frames_keep_the_videos_intrinsics(tmp_path):
    source, truth, K, boxes, dots = _ge_case(tmp_path)
    out = tmp_path / "out"
    convert_ge2019(source, out)
    loaded = load_real_sequence(out)
    assert [p.name for p in loaded.frames] == ["000000.jpg", "000001.jpg"]
    np.testing.assert_allclose(loaded.joints_cam[:, 0], truth, atol=1e-12)  # cm → m, order kept
    np.testing.assert_allclose(loaded.K, np.broadcast_to(K, (2, 3, 3)))
    assert loaded.valid.all() and loaded.sides == ("right",) and loaded.fps == 30.0
    for k, frame in enumerate(loaded.frames):
        image = np.asarray(Image.open(frame).convert("RGB"))
        assert image.shape == (720, 1280, 3)
        bx, by, _, _ = boxes[k]
        assert image[: int(by) - 2].max() < 30 and image[:, : int(bx) - 2].max() < 30  # black outside the box
        for joint, colour in dots.items():
            expected = _project(loaded.K[k], loaded.joints_cam[k, 0, joint])
            np.testing.assert_allclose(_dot_centre(image, colour.index(255)), expected, atol=2.0)


def test_ge2019_crops_get_their_own_intrinsics(tmp_path):
    source, truth, _, _, dots = _ge_case(tmp_path)
    out = tmp_path / "out"
    convert_ge2019(source, out, crops=True, fps=0.0)
    loaded = load_real_sequence(out)
    assert [p.name for p in loaded.frames] == ["000000.png", "000001.png"] and not loaded.is_video
    np.testing.assert_allclose(loaded.joints_cam[:, 0], truth, atol=1e-12)
    assert not np.allclose(loaded.K[0], loaded.K[1])  # per-frame: each box has its own scale and offset
    for k, frame in enumerate(loaded.frames):
        image = np.asarray(Image.open(frame).convert("RGB"))
        assert image.shape == (256, 256, 3)
        for joint, colour in dots.items():
            expected = _project(loaded.K[k], loaded.joints_cam[k, 0, joint])
            np.testing.assert_allclose(_dot_centre(image, colour.index(255)), expected, atol=1.5)


def test_ge2019_count_mismatch_is_named(tmp_path):
    source, truth, *_ = _ge_case(tmp_path)
    savemat(source / "pose_gt.mat", {"pose_gt": np.concatenate([truth, truth[:1]]) * 100.0})
    with pytest.raises(ValueError, match="2 images, 3 poses, 2 cameras, 2 boxes"):
        convert_ge2019(source, tmp_path / "out")


# ------------------------------------------------------------------------------------------------------ InterHand


def _interhand_dataset(root: Path):
    """Two images of one capture from two cameras; the second image's left hand has an invalid joint."""
    rng = np.random.default_rng(5)
    root.mkdir()
    cameras = {
        "400002": (
            Rotation.from_euler("xyz", [10, -30, 5], degrees=True).as_matrix(),
            [120.0, -40.0, 900.0],
            (1200.0, 1210.0),
            (170.0, 250.0),
        ),
        "400016": (
            Rotation.from_euler("xyz", [-20, 40, 90], degrees=True).as_matrix(),
            [-300.0, 80.0, 700.0],
            (1000.0, 990.0),
            (160.0, 240.0),
        ),
    }
    truth, images, joints_3d = {}, [], {"0": {}}
    for image_id, camera, frame_idx in ((7, "400002", 11), (3, "400016", 12)):
        rotation, position, *_ = cameras[camera]
        left, right = _hand(rng, (-0.06, 0.0, 0.5)), _hand(rng, (0.06, 0.0, 0.5))
        truth[image_id] = (camera, left, right)
        # camera metres → world millimetres (cam = R (world - campos)), then InterHand's joint order
        world = [(hand * 1e3) @ rotation + position for hand in (right, left)]  # right 0-20, left 21-41
        world = np.concatenate([hand[INTERHAND_ROWS] for hand in world])
        valid = np.ones((42, 1))
        if image_id == 3:
            valid[21 + 5] = 0  # one left-hand joint unannotated
        joints_3d["0"][str(frame_idx)] = {
            "world_coord": world.tolist(),
            "joint_valid": valid.tolist(),
            "hand_type": "interacting",
        }
        file_name = f"Capture0/ROM01/cam{camera}/image{frame_idx}.jpg"
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": 334,
                "height": 512,
                "capture": 0,
                "camera": camera,
                "frame_idx": frame_idx,
                "seq_name": "ROM01",
            }
        )
        target = root / file_name if image_id == 7 else root / Path(file_name).name  # nested, or beside the json
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (334, 512), (image_id * 30, 0, 0)).save(target)
    cams = {
        "0": {
            "campos": {c: list(p) for c, (_, p, _, _) in cameras.items()},
            "camrot": {c: r.tolist() for c, (r, _, _, _) in cameras.items()},
            "focal": {c: list(f) for c, (_, _, f, _) in cameras.items()},
            "princpt": {c: list(pp) for c, (_, _, _, pp) in cameras.items()},
        }
    }
    (root / "InterHand2.6M_test_joint_3d.json").write_text(json.dumps(joints_3d))
    (root / "InterHand2.6M_test_camera.json").write_text(json.dumps(cams))
    (root / "InterHand2.6M_test_data.json").write_text(json.dumps({"images": images, "annotations": []}))
    return truth, cameras


def test_interhand_world_millimetres_to_each_cameras_metres(tmp_path):
    truth, cameras = _interhand_dataset(tmp_path / "ih")
    out = tmp_path / "out"
    convert_interhand(tmp_path / "ih", out)
    loaded = load_real_sequence(out)
    assert loaded.sides == ("left", "right") and loaded.fps == 0.0 and not loaded.is_video
    assert [p.name for p in loaded.frames] == ["000000.jpg", "000001.jpg"]  # by image id: 3, then 7
    for k, image_id in enumerate((3, 7)):
        camera, left, right = truth[image_id]
        _, _, (fx, fy), (cx, cy) = cameras[camera]
        np.testing.assert_allclose(loaded.K[k], [[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
        np.testing.assert_allclose(loaded.joints_cam[k, 1], right, atol=1e-9)
        if image_id == 7:
            np.testing.assert_allclose(loaded.joints_cam[k, 0], left, atol=1e-9)
        first = np.asarray(Image.open(loaded.frames[k]))
        assert first[0, 0, 0] == image_id * 30  # the right image, copied
    np.testing.assert_array_equal(loaded.valid, [[False, True], [True, True]])


def test_interhand_missing_annotation_file_is_named(tmp_path):
    _interhand_dataset(tmp_path / "ih")
    (tmp_path / "ih" / "InterHand2.6M_test_camera.json").unlink()
    with pytest.raises(ValueError, match=r"no \*_camera\.json in"):
        convert_interhand(tmp_path / "ih", tmp_path / "out")

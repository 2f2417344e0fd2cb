"""Ego run outputs: every writer round-trips through plain numpy/csv readers, writes are atomic, the overview shows
the map, camera path and hand tracks where they are."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.contacts import Contact
from hand_scene_perception.core.files import atomic_write
from hand_scene_perception.core.hand_model import HandSide
from hand_scene_perception.core.hand_state import HandState
from hand_scene_perception.core.odometry import OdometryResult
from hand_scene_perception.pipelines.ego import EgoHand, EgoResult
from hand_scene_perception.pipelines.ego_outputs import (
    BACKGROUND_RGB,
    CAMERA_RGB,
    SIDE_RGB,
    EgoRecorder,
    render_overview,
    write_ply,
)

SHAPE_PARAMS = 10


def _state(rng: np.random.Generator, track_id: int, side: HandSide, offset: np.ndarray) -> HandState:
    pose = np.eye(4)
    pose[:3, 3] = offset
    return HandState(
        track_id=track_id, side=side, confidence=0.9, joints=offset + rng.normal(0, 0.05, (21, 3)), wrist_pose=pose,
        model_name="open_hand_v1", model_pose=rng.normal(0, 0.3, (16, 3)), model_shape=rng.normal(0, 1, SHAPE_PARAMS),
        model_translation=offset,
    )  # fmt: skip


def _result(rng: np.random.Generator, frame: int, with_hands: bool = True) -> EgoResult:
    """A frame with a left and a right hand, a camera moving along x and one contact."""
    stamp = frame * 33_333_333
    camera_pose = np.eye(4)
    camera_pose[:3, :3] = Rotation.from_rotvec([0.0, 0.05 * frame, 0.0]).as_matrix()
    camera_pose[:3, 3] = [0.01 * frame, 0.0, 0.0]
    hands = []
    if with_hands:
        for track_id, side in ((3, HandSide.LEFT), (7, HandSide.RIGHT)):
            world = _state(rng, track_id, side, np.array([0.1 * track_id, 0.0, 0.5 + 0.01 * frame]))
            camera = _state(rng, track_id, side, np.zeros(3))
            hands.append(EgoHand(track_id, side, 0.8, camera, world, reprojection_error_px=None if frame else 1.5))
    contact = Contact(7, HandSide.RIGHT, "index_tip", 123, np.array([0.1, 0.2, 0.3]), np.array([0.0, -1.0, 0.0]), 0.004)
    odometry = OdometryResult(camera_pose, ok=frame != 1, inliers=50, status="tracking, ok", stamp_ns=stamp)
    return EgoResult(
        stamp_ns=stamp, hands=hands, T_world_camera=camera_pose, odometry=odometry, map_points_added=0,
        contacts=[contact] if with_hands else [], timings_ms={"detect": 10.0 + frame, "total": 20.0},
        session_reset="time jumped back" if frame == 2 else None,
    )  # fmt: skip


@pytest.fixture
def recorded(tmp_path):
    rng = np.random.default_rng(0)
    recorder = EgoRecorder("open_hand_v1", SHAPE_PARAMS)
    results = [_result(rng, frame, with_hands=frame != 2) for frame in range(4)]
    for frame, result in enumerate(results):
        recorder.add(frame, result)
    points = rng.uniform(-1, 1, (500, 3)).astype(np.float32)
    colors = rng.integers(0, 256, (500, 3), dtype=np.uint8)
    written = recorder.write(tmp_path / "out", points, colors, extra={"input": "x.mp4", "nan": float("nan")})
    return recorder, results, points, colors, written


def test_npz_round_trip(recorded):
    _, results, _, _, written = recorded
    with np.load(written["hands.npz"], allow_pickle=False) as npz:
        data = dict(npz)
    samples = [(frame, hand) for frame, result in enumerate(results) for hand in result.hands]
    assert len(data["frame"]) == len(samples) == 6
    assert data["joints_world"].shape == (6, 21, 3) and data["wrist_pose_world"].shape == (6, 4, 4)
    assert data["model_pose"].shape == (6, 16, 3) and data["model_shape"].shape == (6, SHAPE_PARAMS)
    assert str(data["model_name"]) == "open_hand_v1"
    for row, (frame, hand) in enumerate(samples):
        assert data["frame"][row] == frame and data["stamp_ns"][row] == results[frame].stamp_ns
        assert data["track_id"][row] == hand.track_id and data["side"][row] == hand.side.value
        np.testing.assert_array_equal(data["joints_world"][row], hand.world.joints)
        np.testing.assert_array_equal(data["joints_cam"][row], hand.camera.joints)
        np.testing.assert_array_equal(data["model_shape"][row], hand.world.model_shape)
        np.testing.assert_array_equal(data["model_translation"][row], hand.world.model_translation)
    assert np.isnan(data["reprojection_error_px"][2]) and data["reprojection_error_px"][0] == 1.5


def test_csv_round_trip(recorded):
    _, results, _, _, written = recorded
    hands = np.genfromtxt(written["hands.csv"], delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert len(hands) == 6 and len(hands.dtype.names) == 8 + 63
    joints = np.stack([hands[f"{axis}{j}"] for j in range(21) for axis in "xyz"], axis=1).reshape(-1, 21, 3)
    expected = np.stack([hand.world.joints for result in results for hand in result.hands])
    np.testing.assert_allclose(joints, expected, atol=1e-6)
    np.testing.assert_allclose(np.stack([hands["wrist_x"], hands["wrist_y"], hands["wrist_z"]], 1), expected[:, 0],
                               atol=1e-6)  # fmt: skip
    assert hands["side"].tolist() == ["left", "right"] * 3

    with open(written["camera_trajectory.csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["frame"]) for r in rows] == [0, 1, 2, 3]
    assert [r["odometry_ok"] for r in rows] == ["1", "0", "1", "1"] and rows[0]["status"] == "tracking; ok"
    for row, result in zip(rows, results, strict=True):
        assert int(row["stamp_ns"]) == result.stamp_ns
        np.testing.assert_allclose([float(row[k]) for k in ("tx", "ty", "tz")], result.T_world_camera[:3, 3], atol=1e-6)
        quat = [float(row[k]) for k in ("qx", "qy", "qz", "qw")]
        np.testing.assert_allclose(Rotation.from_quat(quat).as_matrix(), result.T_world_camera[:3, :3], atol=1e-7)

    numeric = np.genfromtxt(written["camera_trajectory.csv"], delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert numeric["frame"].tolist() == [0, 1, 2, 3]  # the status text does not break numeric readers
    contacts = np.genfromtxt(written["contacts.csv"], delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert len(contacts) == 3 and set(contacts["region"]) == {"index_tip"}
    np.testing.assert_allclose([contacts[0][k] for k in ("px", "py", "pz", "nx", "ny", "nz", "distance_m")],
                               [0.1, 0.2, 0.3, 0.0, -1.0, 0.0, 0.004])  # fmt: skip


def _read_ply(path):
    """Minimal binary PLY reader: header lines, then the packed vertex records."""
    raw = path.read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    header = raw[:end].decode("ascii").splitlines()
    count = int(next(line for line in header if line.startswith("element vertex")).split()[-1])
    dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    assert len(raw) - end == count * dtype.itemsize
    return header, np.frombuffer(raw[end:], dtype)


def test_ply_round_trip_and_empty_map(recorded, tmp_path):
    *_, points, colors, written = recorded
    header, vertices = _read_ply(written["map.ply"])
    assert header[1] == "format binary_little_endian 1.0"
    assert [line.split()[-1] for line in header if line.startswith("property")] == ["x", "y", "z", "red", "green",
                                                                                       "blue"]  # fmt: skip
    np.testing.assert_array_equal(np.stack([vertices["x"], vertices["y"], vertices["z"]], 1), points)
    np.testing.assert_array_equal(np.stack([vertices["red"], vertices["green"], vertices["blue"]], 1), colors)
    write_ply(tmp_path / "empty.ply", np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    assert len(_read_ply(tmp_path / "empty.ply")[1]) == 0
    with pytest.raises(ValueError, match="colours"):
        write_ply(tmp_path / "bad.ply", points, colors[:10])
    assert not (tmp_path / "bad.ply").exists()


def test_summary(recorded):
    *_, written = recorded
    summary = json.loads(written["summary.json"].read_text())
    assert summary["frames"] == 4 and summary["hand_samples"] == 6 and summary["frames_with_hands"] == 3
    assert summary["hands_by_side"] == {"left": 3, "right": 3} and summary["contacts"] == 3
    assert summary["tracks"] == [{"track_id": 3, "side": "left"}, {"track_id": 7, "side": "right"}]
    assert summary["mean_timings_ms"] == {"detect": 11.5, "total": 20.0} and summary["pipeline_fps"] == 50.0
    assert summary["odometry_ok_fraction"] == 0.75 and summary["map_points"] == 500
    assert summary["input"] == "x.mp4" and summary["nan"] is None  # strict JSON
    assert summary["session_resets"] == ["frame 2: time jumped back"]


def test_empty_recorder_writes_well_formed_files(tmp_path):
    written = EgoRecorder("open_hand_v1", SHAPE_PARAMS).write(tmp_path, np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    with np.load(written["hands.npz"], allow_pickle=False) as npz:
        assert npz["joints_world"].shape == (0, 21, 3) and npz["model_shape"].shape == (0, SHAPE_PARAMS)
    assert written["hands.csv"].read_text().count("\n") == 1  # header only
    assert written["camera_trajectory.csv"].read_text().startswith("stamp_ns,frame,tx,")
    assert Image.open(written["overview.png"]).size[0] > 0


def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / "hands.csv"
    target.write_text("old contents\n")
    for error in (RuntimeError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(error)), atomic_write(target, "w") as handle:
            handle.write("half of the new ")
            raise error
        assert target.read_text() == "old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hands.csv"]  # no temporary files left behind
    with atomic_write(target, "w") as handle:
        handle.write("new\n")
    assert target.read_text() == "new\n" and sorted(p.name for p in tmp_path.iterdir()) == ["hands.csv"]


def _mask(image: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    return np.all(image == np.array(color, np.uint8), axis=-1)


def test_overview_draws_map_camera_and_hands_where_they_are():
    """A red floor patch right of the camera path, the left hand further right: the top view (left half) and
    the front view (right half) must both show them side by side in that order, the rest background."""
    grid = np.stack(np.meshgrid(np.linspace(0.3, 0.6, 60), np.linspace(0.8, 1.2, 60)), -1).reshape(-1, 2)
    points = np.column_stack([grid[:, 0], np.full(len(grid), 0.3), grid[:, 1]])
    colors = np.tile(np.array([[200, 30, 30]], np.uint8), (len(points), 1))
    poses = np.tile(np.eye(4), (5, 1, 1))
    poses[:, 0, 3] = np.linspace(-0.4, -0.2, 5)
    wrist = np.column_stack([np.linspace(0.8, 0.9, 5), np.zeros(5), np.full(5, 1.0)])
    image = np.asarray(render_overview(points, colors, poses, [(1, HandSide.LEFT, wrist)], title="test"))
    assert image[2, 2].tolist() == list(BACKGROUND_RGB)
    half = image.shape[1] // 2
    for panel in (image[:, :half], image[:, half:]):
        columns = {}
        for name, color in (("map", (200, 30, 30)), ("camera", CAMERA_RGB), ("hand", SIDE_RGB[HandSide.LEFT])):
            _, cols = np.nonzero(_mask(panel[: panel.shape[0] - 70], color))  # above the legend
            assert len(cols) > 20, name
            columns[name] = cols.mean()
        assert columns["camera"] < columns["map"] < columns["hand"]
        assert np.mean(_mask(panel, BACKGROUND_RGB)) > 0.5
    # the legend row carries the camera and hand swatches below the panels
    legend = image[-70:]
    assert _mask(legend, CAMERA_RGB).any() and _mask(legend, SIDE_RGB[HandSide.RIGHT]).any()

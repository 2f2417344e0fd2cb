"""The real-data ground-truth layout: load_real_sequence, save_ground_truth (atomic) and RealSequence's checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hand_scene_perception.core.hand_model import HandSide
from hand_scene_perception.datasets import ground_truth as gt_module
from hand_scene_perception.datasets.ground_truth import (
    GROUND_TRUTH_FILE,
    RealSequence,
    load_real_sequence,
    natural_key,
    save_ground_truth,
)

K = np.array([[500.0, 0.0, 32.0], [0.0, 510.0, 24.0], [0.0, 0.0, 1.0]])


def _joints(n: int, hands: int, seed: int = 0) -> np.ndarray:
    """(n, hands, 21, 3) plausible joints 0.3-0.5 m in front of the camera."""
    rng = np.random.default_rng(seed)
    centre = np.array([0.0, 0.0, 0.4])
    return centre + rng.uniform(-0.08, 0.08, (n, hands, 21, 3))


def _write_frames(folder: Path, names: list[str]) -> None:
    (folder / "frames").mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(folder / "frames" / name)


def _sequence(n: int = 3, hands: int = 1, **changes) -> dict:
    """Keyword arguments of a consistent RealSequence, with ``changes`` applied."""
    kwargs = {
        "frames": [Path(f"{k:03d}.png") for k in range(n)],
        "K": np.broadcast_to(K, (n, 3, 3)).copy(),
        "joints_cam": _joints(n, hands),
        "valid": np.ones((n, hands), bool),
        "sides": (HandSide.RIGHT,) * hands,
        "fps": 30.0,
    }
    kwargs.update(changes)
    return kwargs


def test_round_trip_through_the_layout(tmp_path):
    names = ["frame_10.png", "frame_2.jpg", "frame_1.JPEG", "notes.txt", "frame_3.bmp"]
    _write_frames(tmp_path, names[:3])
    (tmp_path / "frames" / "notes.txt").write_text("not an image")
    (tmp_path / "frames" / "frame_3.bmp").write_bytes(b"BM")  # not one of the layout's suffixes
    joints = _joints(3, 2)
    valid = np.array([[True, False], [True, True], [False, True]])
    joints[0, 1] = np.nan  # invalid slots may hold anything
    Ks = np.stack([K, K * [[2], [2], [1]], K])
    path = save_ground_truth(tmp_path, Ks, joints, valid, ["left", "right"], 25.0)

    assert path == tmp_path / GROUND_TRUTH_FILE and path.is_file()
    assert not list(tmp_path.glob("*partial*"))
    sequence = load_real_sequence(tmp_path)
    # natural order by name, only the image suffixes (any case)
    assert [p.name for p in sequence.frames] == ["frame_1.JPEG", "frame_2.jpg", "frame_10.png"]
    np.testing.assert_allclose(sequence.K, Ks)
    np.testing.assert_array_equal(sequence.valid, valid)
    np.testing.assert_allclose(sequence.joints_cam[valid], joints[valid])
    assert np.isnan(sequence.joints_cam[0, 1]).all()
    assert sequence.sides == (HandSide.LEFT, HandSide.RIGHT)
    assert sequence.fps == 25.0 and sequence.is_video
    assert sequence.depth is None
    assert sequence.K.dtype == np.float64 and sequence.valid.dtype == bool


def test_natural_key_orders_numbers_numerically():
    paths = [Path(name) for name in ("f_10.png", "f_2.png", "f_1.png", "f_100.png", "a.png")]
    assert [p.name for p in sorted(paths, key=natural_key)] == ["a.png", "f_1.png", "f_2.png", "f_10.png", "f_100.png"]


def test_single_images_without_fps_are_not_a_video(tmp_path):
    _write_frames(tmp_path, ["a.png", "b.png"])
    np.savez(
        tmp_path / GROUND_TRUTH_FILE,
        K=np.broadcast_to(K, (2, 3, 3)),
        joints_cam=_joints(2, 1),
        valid=np.ones((2, 1), bool),
        sides=np.array(["Right"]),
    )  # no fps key; side in any case
    sequence = load_real_sequence(tmp_path)
    assert sequence.fps == 0.0 and not sequence.is_video
    assert sequence.sides == (HandSide.RIGHT,)


def test_depth_is_matched_to_frames_by_stem(tmp_path):
    _write_frames(tmp_path, ["b.jpg", "a.png"])
    (tmp_path / "depth").mkdir()
    for stem in ("a", "b", "c"):  # an extra depth image without a frame is ignored
        Image.fromarray(np.full((48, 64), 500, np.uint16)).save(tmp_path / "depth" / f"{stem}.png")
    save_ground_truth(tmp_path, np.broadcast_to(K, (2, 3, 3)), _joints(2, 1), np.ones((2, 1), bool), ["right"], 30)
    assert load_real_sequence(tmp_path).depth is None  # only read when asked for
    sequence = load_real_sequence(tmp_path, with_depth=True)
    assert [p.name for p in sequence.frames] == ["a.png", "b.jpg"]
    assert [p.name for p in sequence.depth] == ["a.png", "b.png"]
    assert all(p.parent.name == "depth" for p in sequence.depth)


def test_missing_depth_images_are_named(tmp_path):
    _write_frames(tmp_path, ["a.png", "b.png", "c.png"])
    (tmp_path / "depth").mkdir()
    Image.fromarray(np.zeros((48, 64), np.uint16)).save(tmp_path / "depth" / "a.png")
    save_ground_truth(tmp_path, np.broadcast_to(K, (3, 3, 3)), _joints(3, 1), np.ones((3, 1), bool), ["right"], 30)
    with pytest.raises(ValueError, match=r"2 frames have no depth image .*first: b\.png"):
        load_real_sequence(tmp_path, with_depth=True)
    load_real_sequence(tmp_path)  # fine without depth


def test_missing_file_and_missing_keys(tmp_path):
    _write_frames(tmp_path, ["a.png"])
    with pytest.raises(ValueError, match=r"ground_truth\.npz not found.*convert-gt"):
        load_real_sequence(tmp_path)
    np.savez(tmp_path / GROUND_TRUTH_FILE, K=K[None], joints_cam=_joints(1, 1))
    with pytest.raises(ValueError, match=r"lacks \['sides', 'valid'\]"):
        load_real_sequence(tmp_path)


def test_the_file_is_read_without_pickles(tmp_path):
    _write_frames(tmp_path, ["a.png"])
    np.savez(
        tmp_path / GROUND_TRUTH_FILE,
        K=K[None],
        joints_cam=_joints(1, 1),
        valid=np.ones((1, 1), bool),
        sides=np.array([HandSide.RIGHT], dtype=object),
    )  # an object array needs a pickle
    with pytest.raises(ValueError, match="pickle"):
        load_real_sequence(tmp_path)


def test_frame_count_must_match_the_arrays(tmp_path):
    _write_frames(tmp_path, ["a.png", "b.png"])
    save_ground_truth(tmp_path, np.broadcast_to(K, (3, 3, 3)), _joints(3, 1), np.ones((3, 1), bool), ["right"], 30)
    with pytest.raises(ValueError, match=r"K has shape \(3, 3, 3\), expected \(2, 3, 3\) for 2 frames and 1 hands"):
        load_real_sequence(tmp_path)


def test_bad_side_is_rejected(tmp_path):
    _write_frames(tmp_path, ["a.png"])
    save_ground_truth(tmp_path, K[None], _joints(1, 1), np.ones((1, 1), bool), ["both"], 0)
    with pytest.raises(ValueError, match="hand side must be 'left' or 'right'"):
        load_real_sequence(tmp_path)


def test_save_is_atomic(tmp_path, monkeypatch):
    _write_frames(tmp_path, ["a.png"])
    good = _joints(1, 1)
    save_ground_truth(tmp_path, K[None], good, np.ones((1, 1), bool), ["right"], 30)
    real_savez = np.savez_compressed

    def broken_savez(file, **arrays):
        real_savez(file, **arrays)
        with open(file, "r+b") as handle:  # half-written: truncated, then the writer dies
            handle.truncate(20)
        raise OSError("disk full")

    monkeypatch.setattr(gt_module.np, "savez_compressed", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_ground_truth(tmp_path, K[None], good + 1.0, np.ones((1, 1), bool), ["right"], 30)
    monkeypatch.undo()
    sequence = load_real_sequence(tmp_path)  # the good file is untouched
    np.testing.assert_allclose(sequence.joints_cam, good)
    # a later successful save replaces it (and the leftover partial file)
    save_ground_truth(tmp_path, K[None], good + 0.01, np.ones((1, 1), bool), ["right"], 30)
    np.testing.assert_allclose(load_real_sequence(tmp_path).joints_cam, good + 0.01)
    assert not list(tmp_path.glob("*partial*"))


def test_consistent_sequence_is_accepted():
    sequence = RealSequence(**_sequence(n=2, hands=2, depth=[Path("a.png"), Path("b.png")]))
    assert sequence.is_video and len(sequence.depth) == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"K": np.broadcast_to(K, (2, 3, 3))}, r"K has shape \(2, 3, 3\), expected \(3, 3, 3\)"),
        ({"K": K}, r"K has shape \(3, 3\), expected \(3, 3, 3\)"),
        ({"joints_cam": _joints(3, 1)[:, :, :20]}, r"joints_cam has shape \(3, 1, 20, 3\), expected \(3, 1, 21, 3\)"),
        ({"joints_cam": _joints(3, 2)}, r"joints_cam has shape \(3, 2, 21, 3\), expected \(3, 1, 21, 3\)"),
        ({"valid": np.ones(3, bool)}, r"valid has shape \(3,\), expected \(3, 1\)"),
        (
            {
                "frames": [],
                "K": np.zeros((0, 3, 3)),
                "joints_cam": np.zeros((0, 1, 21, 3)),
                "valid": np.zeros((0, 1), bool),
            },
            "no frames or no hands",
        ),
        (
            {"sides": (), "joints_cam": np.zeros((3, 0, 21, 3)), "valid": np.zeros((3, 0), bool)},
            "no frames or no hands",
        ),
        ({"fps": -1.0}, r"fps must be >= 0 \(0: single images\), got -1\.0"),
        ({"fps": float("nan")}, "fps must be >= 0"),
        ({"fps": float("inf")}, "fps must be >= 0"),
        ({"depth": [Path("a.png")]}, "1 depth images for 3 frames"),
    ],
)
def test_inconsistent_arrays_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        RealSequence(**_sequence(**changes))


def _with_joint(value, frame=1, valid=True) -> dict:
    joints = _joints(3, 1)
    joints[frame, 0, 7] = value
    flags = np.ones((3, 1), bool)
    flags[frame, 0] = valid
    return _sequence(joints_cam=joints, valid=flags)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([np.nan, 0.0, 0.4], "non-finite values in frames marked valid"),
        ([0.0, np.inf, 0.4], "non-finite values in frames marked valid"),
        ([0.0, 0.0, 0.0], "at or behind the camera"),
        ([0.0, 0.0, -0.3], "at or behind the camera"),
    ],
)
def test_bad_joints_in_valid_frames_are_rejected(value, message):
    with pytest.raises(ValueError, match=message):
        RealSequence(**_with_joint(value))
    RealSequence(**_with_joint(value, valid=False))  # the same values in an invalid slot are fine


@pytest.mark.parametrize(
    ("entry", "value"),
    [((0, 0), 0.0), ((1, 1), -500.0), ((2, 0), np.nan), ((0, 2), np.inf), ((2, 1), np.nan)],
)
def test_bad_intrinsics_are_rejected(entry, value):
    Ks = np.broadcast_to(K, (3, 3, 3)).copy()
    Ks[(1, *entry)] = value
    with pytest.raises(ValueError, match="K must be finite with positive focal lengths"):
        RealSequence(**_sequence(K=Ks))

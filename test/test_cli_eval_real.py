"""`hand-scene eval real` and `hand-scene convert-gt` end to end in a subprocess: report structure on a real image
(MediaPipe), the unlabelled consistency checks, conversion of a (fake) Ge et al. 2019 set, and bad input."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ros_subprocess_env
from PIL import Image
from scipy.io import savemat

from hand_scene_perception.datasets.ground_truth import load_real_sequence, save_ground_truth

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO / ".." / "shared" / "data" / "real_hands" / "mediapipe_samples" / "hand_landmarker_test_image.jpg"
INTRINSICS = ("--fx", "500", "--fy", "500", "--cx", "320", "--cy", "213")
K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 213.0], [0.0, 0.0, 1.0]])
ERROR_KEYS = ("c_mpjpe_mm", "rr_mpjpe_mm", "pa_mpjpe_mm", "root_median_mm", "auc_rr_0_50", "auc_pa_0_50")


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hand_scene_perception.cli", *args],
        cwd=REPO, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> tuple[Path, dict]:
    """The sample image three times as a 30 FPS layout, its rough ground truth from `hand-scene detect`."""
    folder = tmp_path_factory.mktemp("labelled")
    done = _cli("detect", str(IMAGE), *INTRINSICS, "--json", env=ros_subprocess_env())
    assert done.returncode == 0, done.stderr
    (hand,) = json.loads(done.stdout)["hands"]
    (folder / "frames").mkdir()
    for k in range(3):
        shutil.copyfile(IMAGE, folder / "frames" / f"{k:03d}.jpg")
    joints = np.broadcast_to(np.asarray(hand["joints_cam_m"]), (3, 1, 21, 3))
    save_ground_truth(folder, np.broadcast_to(K, (3, 3, 3)), joints, np.ones((3, 1), bool), [hand["side"]], 30.0)
    return folder, hand


def test_eval_real_on_a_labelled_layout_reports_every_estimate(labelled, subprocess_env):
    folder, _ = labelled
    done = _cli("eval", "real", str(folder), "--json", env=subprocess_env)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert report["input"] == str(folder)
    assert report["frames"] == 3 and report["gt_hands"] == 3 and report["video"] is True and report["depth"] is False
    for name in ("pipeline", "per_image", "raw_detector"):
        row = report[name]
        assert row["detection_rate"] == 1.0 and row["unmatched_detections"] == 0, name
        for key in (*ERROR_KEYS, "acc_err_mm_per_frame2"):
            assert math.isfinite(row[key]) and row[key] >= 0, (name, key)
        assert 0 <= row["auc_rr_0_50"] <= 1 and 0 <= row["auc_pa_0_50"] <= 1
        assert set(report["same_frames"][name]) >= set(ERROR_KEYS)
        assert math.isfinite(report["bone_direction_deg_gt"][name])
    assert report["same_frames"]["hands"] == 3
    # the ground truth is `detect`'s own estimate: the per-image path gives it back
    assert report["per_image"]["c_mpjpe_mm"] < 1.0
    checks = report["consistency"]
    assert set(checks) == {"run_vs_detect_mm", "run_vs_detect_hands", "bone_direction_deg", "hands_per_frame"}
    assert checks["hands_per_frame"] == {"pipeline": 1.0, "per_image": 1.0, "raw_detector": 1.0}
    assert "3/3 frames" in done.stderr  # progress on stderr, the report alone on stdout


def test_eval_real_on_an_image_folder_without_labels(tmp_path, subprocess_env):
    shutil.copyfile(IMAGE, tmp_path / "frame_0.jpg")
    done = _cli("eval", "real", str(tmp_path), *INTRINSICS, "--json", env=subprocess_env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {
        "input",
        "intrinsics",
        "run_vs_detect_mm",
        "run_vs_detect_hands",
        "bone_direction_deg",
        "hands_per_frame",
    }
    assert report["intrinsics"]["fx"] == 500.0 and report["intrinsics"]["assumed"] is False
    assert report["hands_per_frame"] == {"pipeline": 1.0, "per_image": 1.0, "raw_detector": 1.0}
    assert report["run_vs_detect_hands"] >= 1 and math.isfinite(report["run_vs_detect_mm"])
    assert math.isfinite(report["bone_direction_deg"])


def test_eval_real_on_a_folder_without_labels_or_images_exits_2(tmp_path, subprocess_env):
    # a folder without ground_truth.npz is read as unlabelled images (it is no video): here there are none
    (tmp_path / "frames").mkdir()
    (tmp_path / "notes.txt").write_text("no images here")
    done = _cli("eval", "real", str(tmp_path), "--json", env=subprocess_env)
    assert done.returncode == 2, done.stderr
    assert f"hand-scene eval: error: no images (*.png, *.jpg, *.jpeg) in {tmp_path}" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def _fake_ge2019(folder: Path, frames: int = 2) -> np.ndarray:
    """images/ 256x256 crops, params.mat (cam_param, bbox), pose_gt.mat (N, 21, 3) cm; returns the joints (m)."""
    rng = np.random.default_rng(0)
    truth = np.array([0.0, 0.0, 0.5]) + rng.uniform(-0.04, 0.04, (frames, 21, 3))
    (folder / "images").mkdir(parents=True)
    for k in range(frames):
        Image.new("RGB", (256, 256), (0, 0, 200)).save(folder / "images" / f"{k}.jpg")
    savemat(
        folder / "params.mat",
        {
            "cam_param": np.tile([1290.0, 1290.0, 640.0, 360.0], (frames, 1)),
            "bbox": np.tile([500.0, 220.0, 280.0, 280.0], (frames, 1)),
        },
    )
    savemat(folder / "pose_gt.mat", {"pose_gt": truth * 100.0})
    return truth


@pytest.mark.parametrize("crops", [False, True])
def test_convert_gt_ge2019(tmp_path, subprocess_env, crops):
    truth = _fake_ge2019(tmp_path / "ge")
    out = tmp_path / "out"
    done = _cli(
        "convert-gt", "ge2019", str(tmp_path / "ge"), str(out), *(["--crops"] if crops else []), env=subprocess_env
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {out / 'ground_truth.npz'}" in done.stdout
    sequence = load_real_sequence(out)
    np.testing.assert_allclose(sequence.joints_cam[:, 0], truth, atol=1e-12)
    size = (256, 256) if crops else (1280, 720)
    assert all(Image.open(frame).size == size for frame in sequence.frames)
    if crops:
        np.testing.assert_allclose(
            sequence.K[0], [[1290 * 256 / 280, 0, 140 * 256 / 280], [0, 1290 * 256 / 280, 140 * 256 / 280], [0, 0, 1]]
        )
    else:
        np.testing.assert_allclose(sequence.K[0], [[1290, 0, 640], [0, 1290, 360], [0, 0, 1]])


def test_convert_gt_fphab_needs_the_skeleton(tmp_path, subprocess_env):
    done = _cli("convert-gt", "fphab", str(tmp_path), str(tmp_path / "out"), env=subprocess_env)
    assert done.returncode == 2
    assert "fphab needs --skeleton" in done.stderr and "Traceback" not in done.stderr


def test_convert_gt_ge2019_without_images_exits_2(tmp_path, subprocess_env):
    _fake_ge2019(tmp_path / "ge")
    shutil.rmtree(tmp_path / "ge" / "images")
    done = _cli("convert-gt", "ge2019", str(tmp_path / "ge"), str(tmp_path / "out"), env=subprocess_env)
    assert done.returncode == 2
    assert "no images in" in done.stderr and "Traceback" not in done.stderr


def test_convert_gt_ge2019_without_params_exits_2(tmp_path, subprocess_env):
    _fake_ge2019(tmp_path / "ge")
    (tmp_path / "ge" / "params.mat").unlink()
    done = _cli("convert-gt", "ge2019", str(tmp_path / "ge"), str(tmp_path / "out"), env=subprocess_env)
    assert done.returncode == 2
    assert "params.mat" in done.stderr and "Traceback" not in done.stderr

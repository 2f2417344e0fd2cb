"""`hand-scene detect` end to end in a subprocess: JSON shape, depth input, summary output and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO / ".." / "shared" / "data" / "real_hands" / "mediapipe_samples" / "hand_landmarker_test_image.jpg"


def _detect(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hand_scene_perception.cli", "detect", *args],
        cwd=REPO, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_json_with_intrinsics_and_smaller_npy_depth(tmp_path, subprocess_env):
    depth = tmp_path / "depth.npy"
    np.save(depth, np.full((214, 320), 0.6, np.float32))  # half resolution, metres
    done = _detect(
        str(IMAGE), "--fx", "500", "--fy", "500", "--cx", "320", "--cy", "213", "--depth", str(depth), "--json",
        env=subprocess_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["image"]["width"] == 640 and report["image"]["height"] == 427
    assert report["intrinsics"] == {"fx": 500.0, "fy": 500.0, "cx": 320.0, "cy": 213.0, "assumed": False}
    (hand,) = report["hands"]
    assert hand["side"] in ("left", "right") and 0.0 < hand["score"] <= 1.0
    assert np.asarray(hand["landmarks_px"]).shape == (21, 2)
    joints = np.asarray(hand["joints_cam_m"])
    assert joints.shape == (21, 3)
    # a flat depth of 0.6 m puts the nearest palm joint behind it by its skin depth (1-2 cm, more when oblique)
    assert 0.6 < np.min(joints[[0, 1, 5, 9, 13, 17], 2]) < 0.66
    assert hand["wrist_m"] == joints[0].tolist()
    assert np.asarray(hand["wrist_pose"]).shape == (4, 4) and np.asarray(hand["model_pose"]).shape == (16, 3)


def test_summary_with_default_intrinsics_and_png_depth(tmp_path, subprocess_env):
    depth = tmp_path / "depth.png"
    Image.fromarray(np.full((427, 640), 450, np.uint16)).save(depth)  # millimetres
    done = _detect(str(IMAGE), "--depth", str(depth), env=subprocess_env)
    assert done.returncode == 0, done.stderr
    assert "1 hand(s)" in done.stdout and "fx=640.0" in done.stdout and "(assumed)" in done.stdout
    assert "hand 1: right" in done.stdout
    assert "53° field of view" in done.stderr


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda tmp: [str(tmp / "missing.jpg")], "no such image file"),
        (lambda tmp: [str(REPO / "README.md")], "cannot read"),
        (lambda tmp: [str(IMAGE), "--depth", str(tmp / "missing.png")], "no such depth file"),
        (lambda tmp: [str(IMAGE), "--depth", str(IMAGE)], "single-channel"),
        (lambda tmp: [str(IMAGE), "--fx", "-3"], "focal lengths must be positive"),
    ],
)
def test_bad_input_exits_2_without_traceback(tmp_path, subprocess_env, make_args, message):
    done = _detect(*make_args(tmp_path), "--json", env=subprocess_env)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""

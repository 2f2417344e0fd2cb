"""`hand-scene run` end to end with the real detector: an image folder with depth and a calibration YAML, a video,
Ctrl-C and errors part-way (outputs still written) and bad input (exit 2, nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from hand_scene_perception import cli
from hand_scene_perception.cli.common import run_camera
from hand_scene_perception.pipelines.ego import pipeline as ego
from hand_scene_perception.synth.sequence import default_camera, generate_sequence, save_sequence

REPO = Path(__file__).resolve().parents[1]
FRAMES = 8
OUTPUTS = {"hands.npz", "hands.csv", "camera_trajectory.csv", "contacts.csv", "map.ply", "overview.png", "summary.json"}


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    """8 frames at 320x240 (seed 1: its hand is detected in every frame at this size) saved as rgb/ and depth/,
    the same frames as an MJPG AVI, and the camera as a camera_info YAML."""
    root = tmp_path_factory.mktemp("sequence")
    camera = default_camera(320, 240)
    frames = list(generate_sequence(1, FRAMES, num_hands=1, camera=camera))
    save_sequence(frames, root)
    writer = cv2.VideoWriter(str(root / "video.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 240))
    assert writer.isOpened(), "OpenCV here cannot write MJPG AVI"
    for frame in frames:
        writer.write(cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    info = camera.to_camera_info_fields()
    calibration = {
        "image_width": 320, "image_height": 240, "camera_name": "synthetic",
        "camera_matrix": {"rows": 3, "cols": 3, "data": info["k"]},
        "distortion_model": "plumb_bob", "distortion_coefficients": {"rows": 1, "cols": 5, "data": [0.0] * 5},
        "rectification_matrix": {"rows": 3, "cols": 3, "data": info["r"]},
        "projection_matrix": {"rows": 3, "cols": 4, "data": info["p"]},
    }  # fmt: skip
    (root / "camera.yaml").write_text(yaml.safe_dump(calibration))
    return root, frames


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hand_scene_perception.cli", "run", *args],
        cwd=REPO, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_image_folder_with_depth_and_calibration(sequence, tmp_path, subprocess_env):
    root, frames = sequence
    out = tmp_path / "out"
    done = _run(str(root / "rgb"), "--depth-dir", str(root / "depth"), "--intrinsics", str(root / "camera.yaml"),
                "--out", str(out), env=subprocess_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{FRAMES}/{FRAMES} frames" in done.stderr  # progress on a non-terminal stderr: plain lines
    assert "field of view" not in done.stderr  # intrinsics came from the file
    assert {p.name for p in out.iterdir()} == OUTPUTS
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == FRAMES and summary["outcome"] == "complete"
    assert summary["hand_samples"] >= FRAMES - 2 and summary["map_points"] > 1000
    assert summary["intrinsics"]["fx"] == pytest.approx(frames[0].camera.fx)
    assert {"detect", "fit", "odometry", "map", "total"} <= set(summary["mean_timings_ms"])
    with np.load(out / "hands.npz", allow_pickle=False) as npz:
        joints_cam, frame_index, sides = npz["joints_cam"], npz["frame"], npz["side"]
        stamps = npz["stamp_ns"]
    truth = frames[0].hands[0]
    assert set(sides) == {truth.side.value}
    assert stamps.tolist() == [round(i * 1e9 / 30) for i in frame_index]  # 30 FPS by default, exact ns
    errors = [np.linalg.norm(joints_cam[k] - frames[i].hands[0].joints_cam, axis=1).mean() for k, i in
              enumerate(frame_index)]  # fmt: skip
    assert np.median(errors) < 0.03  # metric placement with depth: well under 3 cm per joint
    trajectory = np.genfromtxt(out / "camera_trajectory.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert len(trajectory) == FRAMES and trajectory["odometry_ok"].all()


def test_video_with_default_intrinsics_and_max_frames(sequence, tmp_path, subprocess_env):
    root, _ = sequence
    out = tmp_path / "out"
    done = _run(str(root / "video.avi"), "--max-frames", "6", "--out", str(out), env=subprocess_env)
    assert done.returncode == 0, done.stderr
    assert "53° field of view" in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 6 and summary["input_fps"] == 30.0 and summary["hand_samples"] >= 4
    assert summary["intrinsics"]["assumed"] and summary["depth_dir"] is None
    trajectory = np.genfromtxt(out / "camera_trajectory.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert trajectory["stamp_ns"].tolist() == [round(i * 1e9 / 30) for i in range(6)]


@pytest.mark.parametrize(("error", "code", "outcome"), [(KeyboardInterrupt, 130, "interrupted"),
                                                          (ValueError, 2, "stopped by an error")])  # fmt: skip
def test_interruption_still_writes_what_was_processed(sequence, tmp_path, monkeypatch, capsys, error, code, outcome):
    root, _ = sequence
    original = ego.EgoPipeline.process
    calls = []

    def process(self, frame):
        calls.append(frame.stamp_ns)
        if len(calls) == 4:
            raise error("stop here")
        return original(self, frame)

    monkeypatch.setattr(ego.EgoPipeline, "process", process)
    out = tmp_path / "out"
    assert cli.main(["run", str(root / "rgb"), "--depth-dir", str(root / "depth"), "--out", str(out)]) == code
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 3 and summary["outcome"].startswith(outcome)
    assert {p.name for p in out.iterdir()} == OUTPUTS  # no temporary files left
    assert len(np.genfromtxt(out / "camera_trajectory.csv", delimiter=",", skip_header=1, usecols=1)) == 3


def _bad_inputs(root: Path, tmp: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "empty").mkdir()
    (tmp / "broken.avi").write_text("not a video")
    (tmp / "few_depth").mkdir()
    for name in sorted((root / "depth").iterdir())[:5]:
        (tmp / "few_depth" / f"d{name.name}").write_bytes(name.read_bytes())  # other names, too few
    (tmp / "no_k.yaml").write_text("image_width: 320\nimage_height: 240\n")
    rgb = str(root / "rgb")
    return {
        "missing": ([str(tmp / "missing.mp4")], "no such video file or image folder"),
        "empty": ([str(tmp / "empty")], "no images"),
        "unreadable video": ([str(tmp / "broken.avi")], "cannot read"),
        "depth count": ([rgb, "--depth-dir", str(tmp / "few_depth")], "5 depth files"),
        "video depth count": ([str(root / "video.avi"), "--depth-dir", str(tmp / "few_depth")], "for 8 frames"),
        "missing depth dir": ([rgb, "--depth-dir", str(tmp / "nope")], "no such depth folder"),
        "both intrinsics": ([rgb, "--intrinsics", str(root / "camera.yaml"), "--fx", "300"], "not both"),
        "yaml field": ([rgb, "--intrinsics", str(tmp / "no_k.yaml")], "camera_matrix.data"),
        "fps": ([rgb, "--fps", "0"], "--fps must be"),
        "overlay name": ([rgb, "--overlay", str(tmp / "overlay.avi")], "must end in .mp4"),
        "overlay folder": ([rgb, "--overlay", str(tmp / "nope" / "overlay.mp4")], "no folder"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "unreadable video", "depth count", "video depth count",
                                  "missing depth dir", "both intrinsics", "yaml field", "fps", "overlay name",
                                  "overlay folder"])  # fmt: skip
def test_bad_input_exits_2_and_writes_nothing(sequence, tmp_path, capsys, case):
    root, _ = sequence
    args, message = _bad_inputs(root, tmp_path)[case]
    out = tmp_path / "out"
    assert cli.main(["run", *args, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert captured.out == "" and not out.exists()


def test_overlay_video_shows_the_hand_on_every_frame(sequence, tmp_path):
    root, frames = sequence
    out, video = tmp_path / "out", tmp_path / "overlay.mp4"
    assert cli.main(["run", str(root / "rgb"), "--depth-dir", str(root / "depth"), "--out", str(out),
                     "--max-frames", "4", "--overlay", str(video)]) == 0  # fmt: skip
    capture = cv2.VideoCapture(str(video))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
    decoded = []
    while (read := capture.read())[0]:
        decoded.append(cv2.cvtColor(read[1], cv2.COLOR_BGR2RGB))
    capture.release()
    assert len(decoded) == 4 and decoded[0].shape == (240, 320, 3)
    for drawn, frame in zip(decoded, frames, strict=False):
        # Beyond the codec's small errors, only where the hand is drawn.
        changed = np.abs(drawn.astype(int) - frame.rgb.astype(int)).max(axis=2) > 60
        hand = np.isin(frame.segmentation, [1, 2])
        assert changed.mean() > 0.005 and changed[hand].mean() > 5 * changed[~hand].mean()
    assert json.loads((out / "summary.json").read_text())["overlay"] == str(video)


def test_intrinsics_file_is_rescaled_to_smaller_frames(sequence, tmp_path):
    root, _ = sequence
    small = tmp_path / "small"
    small.mkdir()
    for path in sorted((root / "rgb").iterdir())[:2]:
        image = cv2.imread(str(path))
        cv2.imwrite(str(small / path.name), cv2.resize(image, (160, 120), interpolation=cv2.INTER_AREA))
    args = cli.build_parser().parse_args(["run", str(small), "--intrinsics", str(root / "camera.yaml"), "--out", "x"])
    camera, description = run_camera(args, 120, 160)
    assert (camera.width, camera.height) == (160, 120)
    assert camera.fx == pytest.approx(default_camera(320, 240).fx / 2) and description["assumed"] is False


def test_a_static_camera_runs_no_odometry(sequence, tmp_path, monkeypatch):
    root, _ = sequence
    monkeypatch.setattr(ego.RgbdOdometry, "track", lambda *args: pytest.fail("odometry ran"))
    out = tmp_path / "out"
    assert cli.main(["run", str(root / "rgb"), "--depth-dir", str(root / "depth"), "--out", str(out),
                     "--max-frames", "3", "--camera-pose-source", "static"]) == 0  # fmt: skip
    trajectory = np.genfromtxt(out / "camera_trajectory.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    assert len(trajectory) == 3 and set(trajectory["status"]) == {"camera pose from static"}
    assert np.all([trajectory[name] == 0 for name in ("tx", "ty", "tz", "qx", "qy", "qz")])
    assert json.loads((out / "summary.json").read_text())["map_points"] > 1000  # the fixed camera still maps
    with pytest.raises(SystemExit):  # no TF offline: run offers odometry and static only
        cli.build_parser().parse_args(["run", str(root / "rgb"), "--out", str(out), "--camera-pose-source", "tf"])

"""`hand-scene fit gaussian` end to end with the real detector: a tracked hand's avatar, report and preview written;
a rerun with --resume continues the saved fit; bad arguments exit 2 before any work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from hand_scene_perception.core.hand_model import HandSide, create_hand_model
from hand_scene_perception.gaussian.avatar_file import load_avatar
from hand_scene_perception.ros.bags.transport import CameraFrame, write_camera_bag
from hand_scene_perception.synth.sequence import default_camera, generate_sequence

REPO = Path(__file__).resolve().parents[1]
FRAMES = 10


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """10 synthetic frames at 320x240 with one hand (seed 1: detected in every frame at this size), as an AVI."""
    path = tmp_path_factory.mktemp("fit") / "video.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 240))
    assert writer.isOpened(), "OpenCV here cannot write MJPG AVI"
    for frame in generate_sequence(1, FRAMES, num_hands=1, camera=default_camera(320, 240)):
        writer.write(cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _fit(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hand_scene_perception.cli", "fit", "gaussian", *args],
        cwd=REPO, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_fit_writes_an_avatar_per_tracked_hand_and_resumes(video, tmp_path, subprocess_env):
    out = tmp_path / "avatars"
    common = ("--out", str(out), "--crop-size", "32", "--held-out-every", "4", "--refine-steps", "1")
    done = _fit(str(video), "--steps", "3", *common, env=subprocess_env)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "fit_report.json").read_text())
    assert report["frames"] == FRAMES and len(report["hands"]) == 1
    side, entry = next(iter(report["hands"].items()))
    assert entry["steps"] == 3 and entry["resumed_at_step"] == 0
    assert entry["training_views"] + entry["held_out_views"] == entry["views"] >= FRAMES - 2
    assert entry["held_out_views"] >= 2 and 5.0 < entry["held_out_masked_psnr_db"] < 60.0
    assert f"{side} hand: " in done.stdout and "held-out PSNR" in done.stdout
    assert "3/3 steps" in done.stderr  # progress on a non-terminal stderr: plain lines
    avatar, loaded_side = load_avatar(out / f"{side}.avatar.pt", create_hand_model("open"))
    assert loaded_side is HandSide(side) and avatar.num_gaussians > 0
    preview = cv2.imread(entry["preview"])
    assert preview.shape == (32, 96, 3)  # input | render | novel view
    # --resume continues the saved fit (here already complete: nothing more to do, the avatar is written again);
    # with other settings it would not be the same fit, and is refused
    again = _fit(str(video), "--steps", "3", "--resume", *common, env=subprocess_env)
    assert again.returncode == 0, again.stderr
    entry = json.loads((out / "fit_report.json").read_text())["hands"][side]
    assert entry["resumed_at_step"] == 3 and entry["steps"] == 3
    other = _fit(str(video), "--steps", "5", "--resume", *common, env=subprocess_env)
    assert other.returncode == 2 and "other settings: steps 3 (now 5)" in other.stderr


def test_a_camera_bag_is_fitted_with_its_own_camera_info(tmp_path, subprocess_env):
    camera = default_camera(320, 240)
    frames = [CameraFrame(round(f.stamp * 1e9), f.rgb) for f in generate_sequence(1, FRAMES, num_hands=1,
                                                                                        camera=camera)]  # fmt: skip
    bag = tmp_path / "camera.mcap"
    write_camera_bag(bag, frames, camera)
    out = tmp_path / "avatars"
    done = _fit(str(bag), "--out", str(out), "--steps", "2", "--crop-size", "32", "--held-out-every", "0",
                env=subprocess_env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "fit_report.json").read_text())
    assert report["frames"] == FRAMES and report["intrinsics"] == "the bag's CameraInfo"
    assert len(report["hands"]) == 1 and next(iter(report["hands"].values()))["views"] >= FRAMES - 2
    wrong = _fit(str(bag), "--out", str(out), "--image-topic", "/nope", env=subprocess_env)
    assert wrong.returncode == 2 and "no sensor_msgs/msg/Image topic /nope" in wrong.stderr


def test_bad_arguments_exit_2_before_tracking(video, tmp_path, subprocess_env):
    done = _fit(str(video), "--out", str(tmp_path / "o"), "--steps", "0", env=subprocess_env)
    assert done.returncode == 2 and "--steps must be at least 1" in done.stderr
    assert not (tmp_path / "o").exists()
    held = _fit(str(video), "--out", str(tmp_path / "o"), "--held-out-every", "1", env=subprocess_env)
    assert held.returncode == 2 and "--held-out-every must be 0 (none) or at least 2" in held.stderr
    missing = _fit(str(tmp_path / "none.mp4"), "--out", str(tmp_path / "o"), env=subprocess_env)
    assert missing.returncode == 2 and "no video, image folder or bag" in missing.stderr
    assert not (tmp_path / "o").exists()


def test_ctrl_c_while_tracking_or_fitting_exits_130_and_keeps_the_fit(video, tmp_path, monkeypatch, capsys):
    from hand_scene_perception import cli
    from hand_scene_perception.gaussian import per_video
    from hand_scene_perception.pipelines.ego import pipeline as ego

    original_process = ego.EgoPipeline.process
    calls = []

    def interrupted_process(self, frame):
        calls.append(frame.stamp_ns)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original_process(self, frame)

    out = tmp_path / "avatars"
    with monkeypatch.context() as patch:
        patch.setattr(ego.EgoPipeline, "process", interrupted_process)
        assert cli.main(["fit", "gaussian", str(video), "--out", str(out), "--steps", "2", "--crop-size", "32"]) == 130
    assert "interrupted while tracking the hands: no avatar written" in capsys.readouterr().out
    # during the fit: the checkpoint keeps the steps taken, the report says the side was not finished
    original_fit = per_video.fit_avatar

    def interrupted_fit(model, views, config, state=None, on_step=None):
        def stop(current):
            on_step(current)
            if current.step == 2:
                raise KeyboardInterrupt

        return original_fit(model, views, config, state, stop)

    monkeypatch.setattr(per_video, "fit_avatar", interrupted_fit)
    arguments = ["fit", "gaussian", str(video), "--out", str(out), "--steps", "4", "--crop-size", "32"]
    assert cli.main(arguments) == 130
    printed = capsys.readouterr().out
    assert "interrupted at step 2" in printed and "rerun with --resume" in printed
    report = json.loads((out / "fit_report.json").read_text())
    assert list(report["hands"].values()) == [{}]  # started, no avatar yet
    checkpoint = next(out.glob("*.fit.pt"))
    monkeypatch.setattr(per_video, "fit_avatar", original_fit)
    assert cli.main([*arguments, "--resume"]) == 0
    report = json.loads((out / "fit_report.json").read_text())
    (entry,) = report["hands"].values()
    assert entry["resumed_at_step"] == 2 and entry["steps"] == 4 and checkpoint.exists()

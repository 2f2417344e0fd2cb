"""`hand-scene eval multiview` and `bench multiview`: keys, argument checks, the real detector path."""

from __future__ import annotations

import json

import pytest

from hand_scene_perception.cli import main
from hand_scene_perception.eval.multiview import benchmark_multiview, evaluate_multiview

EVAL_KEYS = ("rot_err_deg", "trans_dir_err_deg", "focal_err_pct", "pa_mpjpe_mm", "rr_mpjpe_mm", "frames_to_converge",
             "fps")


def test_cli_eval_multiview_prints_the_issue_keys(capsys):
    assert main(["eval", "multiview", "--oracle", "--views", "3", "--frames", "60", "--seeds", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in EVAL_KEYS:
        assert key in report
    assert report["views"] == 3 and report["mode"] == "oracle" and report["noise_px"] == 2.0
    assert report["rot_err_deg"] < 3.0 and report["fps"] > 0
    assert report["detection_rate"] == 1.0  # the oracle reports every visible hand
    (run,) = report["runs"]
    assert run["frames"] == 60 and run["calibrated_cameras"] == 3


def test_cli_eval_multiview_refuses_bad_arguments(capsys):
    assert main(["eval", "multiview", "--oracle", "--hands", "1", "2", "--json"]) == 2
    assert "one --hands count" in capsys.readouterr().err
    assert main(["eval", "multiview", "--oracle", "--views", "9", "--frames", "5", "--json"]) == 2
    assert "num_views" in capsys.readouterr().err


def test_detector_mode_runs_mediapipe_on_rendered_views():
    """The embedded detector on rendered frames: few frames, so only that it runs and finds the hand."""
    report = evaluate_multiview(seeds=(0,), num_frames=12, num_views=2, oracle=False)
    (run,) = report["runs"]
    assert report["mode"] == "detector" and run["frames"] == 12
    assert run["fps"] > 0
    assert run["detection_rate"] > 0.5


def test_bench_multiview_reports_ratio_to_detectors():
    report = benchmark_multiview(num_frames=3, num_views=2, warmup=2, rounds=1)
    assert report["views"] == 2 and report["frames"] == 3
    assert report["fps"] > 0 and report["fps_detectors"] > 0
    assert report["ratio_to_detectors"] == pytest.approx(report["fps_detectors"] / report["fps"])
    assert {"detect", "place", "calibrate", "fuse", "total"} <= set(report["stage_ms_median"])
    with pytest.raises(ValueError, match="num_frames"):
        benchmark_multiview(num_frames=0)

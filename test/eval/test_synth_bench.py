"""Tests of the generator benchmark (`hand-scene bench synth`): keys, sane figures, argument checks."""

from __future__ import annotations

import json

import pytest

from hand_scene_perception.cli import main
from hand_scene_perception.eval.synth import benchmark_synth


def test_benchmark_reports_fps_for_one_and_two_hands():
    report = benchmark_synth(num_frames=2, repeats=1, width=160, height=120)
    assert (report["frames"], report["width"], report["height"]) == (2, 160, 120)
    for key in ("fps_one_hand", "fps_two_hands", "cpu_fps_one_hand", "cpu_fps_two_hands"):
        assert 0 < report[key] < 1e6


def test_benchmark_refuses_empty_runs():
    with pytest.raises(ValueError, match="num_frames"):
        benchmark_synth(num_frames=0)


def test_cli_bench_synth_prints_json(capsys):
    assert main(["bench", "synth", "--frames", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["width"] == 640 and report["height"] == 480
    assert report["fps_one_hand"] > 0 and report["fps_two_hands"] > 0

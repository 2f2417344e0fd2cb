"""The maths libraries' thread pools in the package's processes (core/threads.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from hand_scene_perception.core.threads import use_single_threaded_math


@pytest.fixture
def torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_a_loaded_torch_gets_one_thread_unless_the_user_chose(monkeypatch, torch_threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    use_single_threaded_math()
    assert torch.get_num_threads() == 1
    assert os.environ["OMP_NUM_THREADS"] == os.environ["OPENBLAS_NUM_THREADS"] == "1"

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    torch.set_num_threads(2)
    use_single_threaded_math()
    assert torch.get_num_threads() == 2 and os.environ["OMP_NUM_THREADS"] == "2"


def test_the_node_entry_point_runs_torch_on_one_thread():
    # What `ros2 run hand_scene_perception ego_reconstruction` does before spinning: the node module (and with it
    # torch) is imported first, so only a direct setting reaches torch. spin_node must make it.
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    script = ("import torch, hand_scene_perception.ros.ego.node as n, hand_scene_perception.ros.node_base as b\n"
              "torch.set_num_threads(2)\n"
              "def init(args=None):\n"
              "    print('torch threads', torch.get_num_threads())\n"
              "    raise SystemExit(0)\n"
              "b.rclpy.init = init\n"
              "n.main([])\n")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == "torch threads 1"

"""A launch plan's node in its own process: a clean SIGINT stop with status 0, and every way it can fail (exits
early, does not stop in time) raising NodeProcessError with the node's own log."""

from __future__ import annotations

import time

import pytest

from hand_scene_perception.ros.node_process import NodeProcess, NodeProcessError

# RGB only: nothing is needed beyond the node itself.
ARGUMENTS = {"camera_namespace": "/node_process_test", "use_depth": "false"}


def _wait_running(node: NodeProcess, timeout_s: float = 90.0) -> None:
    """Until the launch runner says the node spins (its models are loaded)."""
    deadline = time.monotonic() + timeout_s
    while "running" not in node.log_path.read_text():
        node.check_running()
        assert time.monotonic() < deadline, node.log_tail()
        time.sleep(0.1)


def test_sigint_stops_the_node_cleanly(tmp_path):
    with NodeProcess("ego", ARGUMENTS, ["-p", "max_hands:=1"], log_path=tmp_path / "node.log") as node:
        _wait_running(node)
        assert node.stop() == 0
    log = node.log_path.read_text()
    assert "hand-scene launch: stopped" in log and "Traceback" not in log


def test_a_node_that_exits_early_raises_with_its_log(tmp_path):
    node = NodeProcess("ego", {**ARGUMENTS, "backend": "nonsense"}, log_path=tmp_path / "node.log")
    with pytest.raises(NodeProcessError) as raised, node:
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            node.check_running()
            time.sleep(0.05)
    text = str(raised.value)
    assert "exited early with status 2" in text and "nonsense" in text and "launch ego" in text
    assert node.returncode == 2


def test_a_node_that_does_not_stop_in_time_is_killed_and_reported(tmp_path):
    node = NodeProcess("ego", ARGUMENTS, log_path=tmp_path / "node.log")
    with node:
        _wait_running(node)
        with pytest.raises(NodeProcessError, match=r"did not stop within 0\.01 s of SIGINT; killed it"):
            node.stop(timeout_s=0.01)  # (releasing the detector alone takes longer)
    assert node.returncode is not None and node.returncode != 0

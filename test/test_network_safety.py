"""The suite itself refuses to run when DDS discovery could leave the machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_pytest_with(discovery: str | None) -> subprocess.CompletedProcess:
    """Run a trivial pytest session in a subprocess with the given discovery range."""
    env = dict(os.environ)
    env.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
    if discovery is not None:
        env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = discovery
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--co", "test/test_network_safety.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_refuses_without_discovery_range():
    result = run_pytest_with(None)
    assert result.returncode != 0
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE must be LOCALHOST" in result.stdout + result.stderr


def test_refuses_subnet_discovery():
    result = run_pytest_with("SUBNET")
    assert result.returncode != 0
    assert "'SUBNET'" in result.stdout + result.stderr


def test_accepts_localhost():
    result = run_pytest_with("LOCALHOST")
    assert result.returncode == 0, result.stdout + result.stderr


def test_this_process_is_localhost_only():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] in ("LOCALHOST", "OFF")

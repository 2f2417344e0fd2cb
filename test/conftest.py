"""Test-suite guards shared by every test.

Network safety (ARCHITECTURE.md, Environment): any process that starts rclpy must keep DDS discovery on
this machine. The suite refuses to run without ROS_AUTOMATIC_DISCOVERY_RANGE set to
LOCALHOST (or OFF), and every subprocess a test starts inherits the environment built by
:func:`ros_subprocess_env`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

SAFE_DISCOVERY_RANGES = ("LOCALHOST", "OFF")
# Real images for detector tests live beside the repository (never copied into it: README, Real data).
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    """Stop the whole run at once when DDS discovery could leave the machine."""
    discovery = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "")
    if discovery.upper() not in SAFE_DISCOVERY_RANGES:
        raise pytest.UsageError(
            "ROS_AUTOMATIC_DISCOVERY_RANGE must be LOCALHOST (or OFF) before any test starts rclpy; "
            f"it is {discovery!r}. Run the tests with `make test`, or export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST."
        )
    if not (SHARED_DATA / "real_hands").is_dir():
        raise pytest.UsageError(
            f"test data not found at {SHARED_DATA}/real_hands: the tests expect the project's shared/ folder "
            "beside the repository checkout (../shared)."
        )
    # One DDS domain per test session keeps parallel runs on this machine from seeing each other.
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))


def ros_subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess that may start rclpy: localhost discovery, this session's domain."""
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.update(extra)
    return env


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """Fixture form of :func:`ros_subprocess_env` for tests that spawn processes."""
    return ros_subprocess_env()


@pytest.fixture
def context():
    """A fresh rclpy context per node test (a test's nodes never see another test's, as long as each test destroys
    its nodes: Jazzy's context shutdown leaves them alive, Kilted's destroys them)."""
    import rclpy

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)

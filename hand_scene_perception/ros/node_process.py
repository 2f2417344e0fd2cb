"""A launch plan's node in its own OS process, started and stopped the way a robot's launch does it.

Why: a node that shares a Python process with a bag player, a recorder and listeners shares their interpreter lock
too, so what is measured there is not what a robot gets (the demo delivered 44 % of its frames that way). Here the
node runs as ``hand-scene launch SYSTEM NAME:=VALUE ... --ros-args ...`` (the shipped launch plan,
ros/launch/runner.py) in a child process with DDS discovery kept on this machine. Its output goes to a log file, and
whatever goes wrong with it (it exits early, does not stop on SIGINT, stops with a non-zero status) raises
:class:`NodeProcessError` with the end of that log, so the user sees the node's own error.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from .launch.runner import ensure_local_discovery, use_shipped_dds_profile

# Ctrl-C or SIGTERM to exit: the node finishes the frame under way, stops its worker and releases the detector.
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 25


class NodeProcessError(RuntimeError):
    """The node process failed; the text says how and ends with the last lines of its log."""


class NodeProcess:
    """``hand-scene launch <system>`` as a child process (see the module notes); a context manager that stops it.

    ``arguments`` are launch arguments (``camera_namespace``: ``/camera``, ...); ``ros_arguments`` follow
    ``--ros-args`` and win over the plan's, as on a robot.
    """

    def __init__(
        self, system: str, arguments: Mapping[str, str], ros_arguments: Sequence[str] = (), *, log_path: Path
    ) -> None:
        self.command = [sys.executable, "-m", "hand_scene_perception.cli", "launch", system,
                        *(f"{name}:={value}" for name, value in arguments.items())]  # fmt: skip
        if ros_arguments:
            self.command += ["--ros-args", *ros_arguments]
        self.log_path = Path(log_path)
        self.returncode: int | None = None
        self._process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        """Start the node (returns at once; it subscribes once its models are loaded)."""
        env = dict(os.environ)
        ensure_local_discovery(env)
        use_shipped_dds_profile(env)
        env["PYTHONUNBUFFERED"] = "1"  # the log is current when a failure quotes it
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self._process = subprocess.Popen(self.command, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT)  # fmt: skip

    def check_running(self) -> None:
        """Raise NodeProcessError when the node has exited (it must run until :meth:`stop`)."""
        if self._process is not None and self._process.poll() is not None:
            self.returncode = self._process.returncode
            raise self.failure(f"the node process exited early with status {self.returncode}")

    def failure(self, text: str) -> NodeProcessError:
        """An error saying ``text``, the command and the end of the node's log."""
        return NodeProcessError(f"{text}\n  command: {' '.join(self.command)}\n  log {self.log_path} ends with:\n"
                                f"{self.log_tail()}")  # fmt: skip

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the node's log, indented."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            return f"    (log unreadable: {error})"
        return "\n".join("    " + line for line in text.splitlines()[-lines:])

    def stop(self, timeout_s: float = STOP_TIMEOUT_S, signum: signal.Signals = signal.SIGINT) -> int:
        """``signum`` (SIGINT: Ctrl-C; SIGTERM: what systemd and `ros2 launch` escalate to), then wait; returns the
        exit status. NodeProcessError when it exited before, needed a kill after ``timeout_s`` or stopped with a
        non-zero status."""
        process = self._process
        if process is None:
            raise NodeProcessError("the node process was never started")
        try:
            self.check_running()
            process.send_signal(signum)
            name = signal.Signals(signum).name
            try:
                self.returncode = process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                self.returncode = process.wait()
                raise self.failure(f"the node did not stop within {timeout_s:g} s of {name}; killed it") from None
            if self.returncode != 0:
                raise self.failure(f"the node stopped with status {self.returncode} after {name}")
            return self.returncode
        finally:
            self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> NodeProcess:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        """Leaving the block through an error: stop the node without hiding that error (kill it if it hangs)."""
        process = self._process
        if process is None or self.returncode is not None:
            self._close_log()
            return
        if kind is None:
            self.stop()
            return
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self.returncode = process.returncode
        finally:
            self._close_log()

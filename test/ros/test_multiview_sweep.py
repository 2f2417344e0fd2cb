"""The multiview node's bad-input sweep over real rclpy and DDS on localhost: one camera of three sends every named
malformed case (test/ros/malformed_messages.py), then floods at 10x the others' rate, valid and then with 1000
random malformed messages, while the two others stay valid. The node stays up, says what is wrong (diagnostics
ERROR naming the camera), and fused hands keep flowing for the valid cameras: counted before, during and after.

The rig is posed, not rendered (oracle detectors read the ground truth by stamp), so the sweep is bounded by the
node's own processing, a few tens of seconds on two cores.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from ego_fixtures import NodeHarness
from malformed_messages import NAMED, random_malformed, spoiled
from multiview_fixtures import ORACLE_MATCH_NS, make_rig
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

from hand_scene_msgs.msg import HandArray
from hand_scene_perception.ros.conversions import time_ns
from hand_scene_perception.ros.multiview.node import MultiviewFusionNode

BAD_CAMERA = 1
FLOOD_FACTOR = 10  # the bad camera's messages per frame of the others
RANDOM_CASES = 1000
VALID_FRAMES = 10  # before and after the sweep
FLOOD_FRAMES = 10  # valid messages, 10x the rate
RANDOM_FRAMES = RANDOM_CASES // FLOOD_FACTOR
SET_TIMEOUT_S = 0.6
# Frames whose fused hands may be lost while the bad camera misbehaves: a stamp that goes back restarts the
# synchronisation (the sets under way are dropped); everything else must leave the valid cameras' set alone.
LOST_SHARE = 0.2


@pytest.fixture(scope="module")
def rig():
    count = 2 * VALID_FRAMES + len(NAMED) + FLOOD_FRAMES + RANDOM_FRAMES
    return make_rig(num_views=3, count=count, seed=5, render=False)


@pytest.fixture
def harness(context, rig, tmp_path):
    values = {"cameras": rig.names, "diagnostics_period_s": 0.2, "view_timeout_s": 0.1,
              "calibration_file": str(rig.save_truth_calibration(tmp_path / "truth.yaml"))}  # fmt: skip
    node = MultiviewFusionNode(context=context, detectors=rig.detectors(),
                               parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])  # fmt: skip
    listen = {"hands": (HandArray, 50), "/diagnostics": (DiagnosticArray, 200)}
    inputs = {f"{name}/{stream}": kind for name in rig.names
              for stream, kind in (("image", Image), ("camera_info", CameraInfo))}  # fmt: skip
    harness = NodeHarness(context, node, listen=listen, inputs=inputs)
    for name in rig.names:
        harness.wait_connected(topic=f"{name}/image")
    yield harness
    harness.close()


class Sweep:
    """Publishes frames of the rig, the bad camera's messages spoiled or multiplied, and counts fused hands."""

    def __init__(self, harness: NodeHarness, rig) -> None:
        self.harness, self.rig = harness, rig
        self.frames = iter(rig.frames)
        self.previous_ns = 0  # the bad camera's last stamp
        self.sent_bad = 0

    def _send(self, view: int, image: Image, info: CameraInfo) -> None:
        name = self.rig.names[view]
        self.harness.publishers[f"{name}/camera_info"].publish(info)
        self.harness.publishers[f"{name}/image"].publish(image)

    def _bad(self, image: Image, info: CameraInfo) -> None:
        """One message pair of the bad camera, once the node took the one before (the inputs keep one message:
        a burst would reach it as its last message only)."""
        name = self.rig.names[BAD_CAMERA]
        taken = self.harness.node.received_counts()[name]
        self._send(BAD_CAMERA, image, info)
        deadline = time.monotonic() + SET_TIMEOUT_S
        while self.harness.node.received_counts()[name] == taken and time.monotonic() < deadline:
            time.sleep(0.001)
        self.previous_ns = time_ns(image.header.stamp)
        self.sent_bad += 1

    def frame(self, bad=None) -> int:
        """One frame: the bad camera's messages from ``bad(frame, stamp)`` (default its valid pair) first, then
        the valid cameras'; the hands fused for it (0 when no HandArray near its stamp came within the timeout)."""
        frame = next(self.frames)
        stamp = self.rig.stamp(frame)
        for image, info in bad(frame, stamp) if bad is not None else [self.rig.messages(frame, BAD_CAMERA)]:
            self._bad(image, info)
        for view in range(len(self.rig.names)):
            if view != BAD_CAMERA:
                self._send(view, *self.rig.messages(frame, view))
        hands = self.harness.messages  # a set is stamped with its newest image: the bad camera's may be a bit ahead
        fused = lambda: [m for m in hands("hands") if abs(time_ns(m.header.stamp) - stamp) < ORACLE_MATCH_NS]  # noqa: E731
        self.harness.wait_for(lambda: fused(), SET_TIMEOUT_S)
        assert self.harness.node._worker.is_alive(), "the node's worker died"
        return sum(len(m.hands) for m in fused())

    def flood(self, frame, stamp: int, spoil) -> list[tuple[Image, CameraInfo]]:
        """FLOOD_FACTOR messages of the bad camera around the frame's stamp, each ``spoil``-ed (within the oracle's
        reach: a detector sees an image whatever its stamp, the oracle looks the frame up by it)."""
        step = ORACLE_MATCH_NS // FLOOD_FACTOR
        messages = []
        for k in range(FLOOD_FACTOR):
            image, info = self.rig.messages(frame, BAD_CAMERA, stamp + (k - FLOOD_FACTOR // 2) * step)
            messages.append(spoil(image, info))
        return messages


def test_one_bad_camera_never_stops_the_fused_hands_of_the_others(harness, rig):
    start = time.monotonic()
    sweep = Sweep(harness, rig)
    before = [sweep.frame() for _ in range(VALID_FRAMES)]
    assert before == [1] * VALID_FRAMES

    named = {}
    for name, spoil in NAMED.items():
        named[name] = sweep.frame(lambda frame, stamp, spoil=spoil: [
            spoiled(*rig.messages(frame, BAD_CAMERA), spoil, sweep.previous_ns)])  # fmt: skip
    flooded = [sweep.frame(lambda frame, stamp: sweep.flood(frame, stamp, lambda image, info: (image, info)))
               for _ in range(FLOOD_FRAMES)]  # fmt: skip
    rng = np.random.default_rng(13)
    random_hands = [
        sweep.frame(lambda frame, stamp: sweep.flood(
            frame, stamp, lambda image, info: random_malformed(rng, image, info, sweep.previous_ns)))
        for _ in range(RANDOM_FRAMES)
    ]  # fmt: skip
    after = [sweep.frame() for _ in range(VALID_FRAMES)]
    elapsed = time.monotonic() - start

    lost = sorted(name for name, hands in named.items() if hands == 0)
    print(f"sweep: {len(named)} named cases ({len(lost)} sets lost: {lost}), {sweep.sent_bad} bad-camera messages "
          f"({RANDOM_CASES} random), hands before {sum(before)}/{VALID_FRAMES}, flood {sum(flooded)}/{FLOOD_FRAMES}, "
          f"random {sum(random_hands)}/{RANDOM_FRAMES}, after {sum(after)}/{VALID_FRAMES}; received "
          f"{harness.node.received_counts()}; {elapsed:.1f} s")  # fmt: skip
    assert len(named) >= 34 and sweep.sent_bad >= RANDOM_CASES + len(named)
    assert len(lost) <= LOST_SHARE * len(named), lost
    assert flooded == [1] * FLOOD_FRAMES
    assert sum(random_hands) >= (1 - LOST_SHARE) * RANDOM_FRAMES
    assert after == [1] * VALID_FRAMES, "the hands flow again as before"
    statuses = [s for array in harness.messages("/diagnostics") for s in array.status]
    assert any(s.level == DiagnosticStatus.ERROR and "'cam1'" in s.message for s in statuses)

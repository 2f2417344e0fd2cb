"""Diagnostics messages, the rate meter and the scene-map publish benchmark."""

from __future__ import annotations

import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.serialization import serialize_message

from hand_scene_perception.eval.ros_ego import benchmark_point_cloud
from hand_scene_perception.ros.conversions import time_ns
from hand_scene_perception.ros.diagnostics import RateMeter, diagnostic_array, diagnostic_status, overload_condition

S = 1_000_000_000


def test_rate_meter_measures_the_window_and_falls_to_zero_when_the_stream_stops():
    meter = RateMeter(window_s=1.0)
    assert meter.rate_hz() == 0.0
    for k in range(61):  # 30 Hz for 2 s
        meter.tick(k * S // 30)
    assert meter.rate_hz() == pytest.approx(30.0, rel=1e-6)
    assert meter.count == 61
    assert meter.rate_hz(now_ns=2 * S + S // 2) == pytest.approx(30.0, rel=1e-6)  # still within the window
    assert meter.rate_hz(now_ns=4 * S) == 0.0


def test_rate_meter_restarts_when_the_clock_goes_back():
    meter = RateMeter(window_s=2.0)
    for k in range(10):
        meter.tick(10 * S + k * S // 10)
    meter.tick(S)
    meter.tick(S + S // 5)
    assert meter.rate_hz() == pytest.approx(5.0) and meter.count == 12
    meter.reset()
    assert meter.rate_hz() == 0.0 and meter.count == 12
    with pytest.raises(ValueError, match="window_s"):
        RateMeter(0)


def test_status_and_array():
    status = diagnostic_status("ego: input", "camera", DiagnosticStatus.WARN, "dropping frames",
                               {"rate_hz": 29.97, "dropped": 3, "backend": "embedded"})  # fmt: skip
    assert status.level == DiagnosticStatus.WARN and status.hardware_id == "camera"
    assert [(kv.key, kv.value) for kv in status.values] == [("rate_hz", "29.970"), ("dropped", "3"),
                                                           ("backend", "embedded")]  # fmt: skip
    assert diagnostic_status("x", "", 2, "", {}).level == DiagnosticStatus.ERROR
    array = diagnostic_array([status], 5 * S)
    assert time_ns(array.header.stamp) == 5 * S and array.status[0].name == "ego: input"
    serialize_message(array)
    with pytest.raises(ValueError, match="level"):
        diagnostic_status("x", "", 7, "", {})


def test_point_cloud_benchmark_reports_every_key():
    result = benchmark_point_cloud(num_points=1000, repeats=3)
    assert result["num_points"] == 1000 and result["serialized_bytes"] >= 16 * 1000
    assert result["map_publish_ms"] >= result["encode_ms"] > 0 and result["serialize_ms"] > 0


def test_overload_is_reported_only_when_clearly_fewer_frames_are_processed_than_arrive():
    assert overload_condition(30.0, 29.0) is None  # keeping up (within 10 %)
    assert overload_condition(0.0, 0.0) is None  # nothing arriving is not overload
    text = overload_condition(60.0, 14.5)
    assert text is not None and "14.5 Hz of 60.0 Hz" in text and "newest" in text

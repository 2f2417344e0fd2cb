"""/diagnostics helpers (diagnostic_updater is not installable here) and the scene-map publish benchmark.

The node owns the state (what to report, when); these functions only measure rates and build messages.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from .conversions import NS_PER_S, header_msg

OK, WARN, ERROR, STALE = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR, DiagnosticStatus.STALE
_LEVELS = (OK, WARN, ERROR, STALE)
LEVEL_NAMES = dict(zip(_LEVELS, ("OK", "WARN", "ERROR", "STALE"), strict=True))


# Processing fewer than this share of the arriving frames (both rates measured) is reported as overload.
OVERLOAD_SHARE = 0.9


def overload_condition(input_hz: float, processed_hz: float) -> str | None:
    """The WARN text when a node processes clearly fewer frames than arrive, else None. The nodes keep the newest
    frame and drop the older ones, so latency stays bounded; the status says the rate is the cost."""
    if not input_hz > 0 or processed_hz >= OVERLOAD_SHARE * input_hz:
        return None
    return (f"overloaded: processing {processed_hz:.1f} Hz of {input_hz:.1f} Hz input "
            f"(the newest frame is kept, older ones are dropped)")


class RateMeter:
    """Events per second over the last ``window_s`` seconds of a caller-given clock (node or sim time)."""

    def __init__(self, window_s: float) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_ns = int(window_s * NS_PER_S)
        self._stamps: deque[int] = deque()
        self.count = 0

    def tick(self, now_ns: int) -> None:
        """Record one event at ``now_ns``; a clock that went backwards starts the window afresh."""
        now = int(now_ns)
        if self._stamps and now < self._stamps[-1]:
            self._stamps.clear()
        self._stamps.append(now)
        self.count += 1
        self._trim(now)

    def rate_hz(self, now_ns: int | None = None) -> float:
        """Mean rate of the events in the window (ending at ``now_ns`` when given); 0 with fewer than 2.

        Passing the current time lets a stream that stopped fall to 0 once its events leave the window.
        """
        if now_ns is not None:
            self._trim(int(now_ns))
        if len(self._stamps) < 2:
            return 0.0
        span = self._stamps[-1] - self._stamps[0]
        return (len(self._stamps) - 1) * NS_PER_S / span if span > 0 else 0.0

    def reset(self) -> None:
        """Forget the window (the total ``count`` is kept)."""
        self._stamps.clear()

    def _trim(self, now: int) -> None:
        while self._stamps and self._stamps[0] < now - self.window_ns:
            self._stamps.popleft()


def _value_text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def node_status(msg: DiagnosticArray, node_name: str) -> tuple[str, str, dict[str, str]] | None:
    """(level name, message, values) of the status ``node_name`` (fully qualified: its hardware_id) put in
    ``msg``, or None when it holds none: how a listener reads a node's own report."""
    for status in msg.status:
        if status.hardware_id == node_name:
            level = LEVEL_NAMES.get(status.level, str(status.level))
            return level, status.message, {item.key: item.value for item in status.values}
    return None


def diagnostic_status(
    name: str, hardware_id: str, level: int | bytes, message: str, values: Mapping[str, object]
) -> DiagnosticStatus:
    """diagnostic_msgs/DiagnosticStatus; ``values`` become key/value strings (floats with 3 decimals)."""
    level_byte = level if isinstance(level, bytes) else bytes([int(level)])
    if level_byte not in _LEVELS:
        raise ValueError(f"level must be OK, WARN, ERROR or STALE (0-3), got {level!r}")
    return DiagnosticStatus(
        level=level_byte,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=str(key), value=_value_text(value)) for key, value in values.items()],
    )


def diagnostic_array(statuses: Iterable[DiagnosticStatus], stamp_ns: int) -> DiagnosticArray:
    """diagnostic_msgs/DiagnosticArray for /diagnostics."""
    return DiagnosticArray(header=header_msg("", stamp_ns), status=list(statuses))

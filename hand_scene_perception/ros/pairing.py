"""Pairing of messages from several streams by header stamp (what message_filters'
ApproximateTime does, which is not installable here; DESIGN.md §4).

The first stream is the reference (the camera image): a set is one reference item plus, from every
other stream, the item whose stamp is closest to it within the tolerance. Queues are short and the
newest complete set wins, so latency never builds up: whatever can no longer be used is dropped
and counted per stream. A reference stamp earlier than one already seen means the clock went
backwards (a looped bag, a restarted simulator): every queue is cleared and the jump is counted. Another
stream whose stamps step back by more than the tolerance restarts its own queue (stale items from
before a jump that were still in flight).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class StampPairer:
    """Match items of ``streams`` by stamp; generic over the number of streams (one per camera input).

    ``dropped[stream]`` counts items received but never returned (overflow, duplicates, too late,
    superseded); ``time_jumps`` counts resets caused by the reference clock going backwards, and
    ``on_time_jump(previous_ns, new_ns)`` is called for each when given. :meth:`reset` keeps the counts.
    """

    def __init__(
        self,
        streams: Sequence[str],
        tolerance_ns: int,
        max_pending: int = 4,
        on_time_jump: Callable[[int, int], None] | None = None,
    ) -> None:
        self.streams = tuple(streams)
        if not self.streams or len(set(self.streams)) != len(self.streams):
            raise ValueError(f"streams must be distinct names, at least one, got {list(streams)}")
        if tolerance_ns < 0 or max_pending < 1:
            raise ValueError(f"need tolerance_ns >= 0 and max_pending >= 1, got {tolerance_ns}, {max_pending}")
        self.tolerance_ns = int(tolerance_ns)
        self.max_pending = int(max_pending)
        self.on_time_jump = on_time_jump
        self.dropped: dict[str, int] = dict.fromkeys(self.streams, 0)
        self.matched = 0
        self.time_jumps = 0
        self._pending: dict[str, list[tuple[int, object]]] = {name: [] for name in self.streams}
        self._newest: dict[str, int | None] = dict.fromkeys(self.streams)
        self._last_matched: int | None = None

    def reset(self) -> None:
        """Drop every pending item (counted) and forget the stamp history; the counts are kept."""
        for name, queue in self._pending.items():
            self.dropped[name] += len(queue)
            queue.clear()
        self._newest = dict.fromkeys(self.streams)
        self._last_matched = None

    def pending(self, stream: str) -> int:
        """Number of items of ``stream`` waiting for a match."""
        return len(self._pending[stream])

    def push(self, stream: str, stamp_ns: int, item: object) -> dict[str, object] | None:
        """Add one item; return {stream: item} for the newest set this completes, else None."""
        if stream not in self._pending:
            raise KeyError(f"unknown stream {stream!r}; known: {list(self.streams)}")
        stamp = int(stamp_ns)
        newest = self._newest[stream]
        if stream == self.streams[0]:
            if newest is not None and stamp < newest:
                self.time_jumps += 1
                self.reset()
                if self.on_time_jump is not None:
                    self.on_time_jump(newest, stamp)
            if self._last_matched is not None and stamp <= self._last_matched:
                self.dropped[stream] += 1  # a duplicate of a stamp already returned
                return None
        else:
            if newest is not None and stamp < newest - self.tolerance_ns:
                # this stream's clock went back (items from before a jump still in flight): start it afresh
                self.dropped[stream] += len(self._pending[stream])
                self._pending[stream].clear()
            if self._last_matched is not None and stamp < self._last_matched - self.tolerance_ns:
                self._newest[stream] = stamp
                self.dropped[stream] += 1  # too late: every reference it could match is gone
                return None
        self._newest[stream] = stamp
        queue = self._pending[stream]
        for index, (queued, _) in enumerate(queue):
            if queued == stamp:  # duplicate stamp: the newest item replaces the older one
                queue[index] = (stamp, item)
                self.dropped[stream] += 1
                break
        else:
            queue.append((stamp, item))
            queue.sort(key=lambda entry: entry[0])
            if len(queue) > self.max_pending:
                del queue[0]
                self.dropped[stream] += 1
        return self._match()

    def _match(self) -> dict[str, object] | None:
        """The newest complete set, removing it and everything older from the queues."""
        reference_name = self.streams[0]
        references = self._pending[reference_name]
        for ref_index in range(len(references) - 1, -1, -1):
            ref_stamp, ref_item = references[ref_index]
            chosen: dict[str, int] = {}
            for name in self.streams[1:]:
                best = self._closest(self._pending[name], ref_stamp)
                if best is None:
                    break
                chosen[name] = best
            else:
                result = {reference_name: ref_item}
                self._consume(reference_name, ref_index)
                for name, index in chosen.items():
                    result[name] = self._pending[name][index][1]
                    self._consume(name, index)
                self._last_matched = ref_stamp
                self.matched += 1
                return result
        return None

    def _closest(self, queue: list[tuple[int, object]], stamp: int) -> int | None:
        """Index of the queued item nearest to ``stamp`` within the tolerance (earlier wins a tie)."""
        best, best_gap = None, self.tolerance_ns + 1
        for index, (queued, _) in enumerate(queue):
            gap = abs(queued - stamp)
            if gap < best_gap:
                best, best_gap = index, gap
        return best

    def _consume(self, stream: str, index: int) -> None:
        """Remove the used item at ``index`` and count the older ones, which can no longer match."""
        queue = self._pending[stream]
        self.dropped[stream] += index
        del queue[: index + 1]

"""Synchronisation of message streams by header stamp (what message_filters' ApproximateTime does, which is not
installable here; see README "Environment").

:class:`StampPairer`, for the ego node's image and its depth: the first stream is the reference (the camera image): a
set is one reference item plus, from every other stream, the item whose stamp is closest to it within the tolerance.
Queues are short and the newest complete set wins, so latency never builds up: whatever can no longer be used is
dropped and counted per stream. A reference stamp earlier than one already seen means the clock went backwards (a
looped bag, a restarted simulator): every queue is cleared and the jump is counted. Another stream whose stamps step
back by more than the tolerance restarts its own queue (stale items from before a jump that were still in flight).

:class:`ViewSynchronizer`, for the multiview node's N cameras, which may stall. StampPairer needs every stream for
every set; a rig of independent cameras must keep going when one camera freezes, drops out or falls far behind,
so here a stream takes part only while it is *live*: its newest stamp is within ``timeout_ns`` of what the other
streams have shown since, counted from their second-newest stamps (after a pause of every camera, the first image
to arrive does not make the others look stalled). Stamps, not arrival times, decide, so a replayed bag behaves like
the live rig.

A set is the newest group with one item per live stream, all within ``tolerance_ns`` of the anchor: an item of the
live stream that is furthest behind (every set needs one of its items). Streams that are not live are None in the
set. Each stream's stamps must increase: a repeated or slightly older stamp is dropped (a frozen driver re-sending
its last frame), a step back by more than the tolerance means that stream's clock went back: its queue and stamp
history restart and ``on_time_jump(previous_ns, new_ns)`` is called. Only that stream restarts, so one camera
with a broken clock leaves the others' sets alone (it lags, so it is left out until its stamps are in line again),
and a looped bag or a restarted simulator restarts each camera in turn as its stamps go back. A stream never seen
is waited for until the others have advanced ``timeout_ns`` past the first stamp (by the same rule).
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



class ViewSynchronizer:
    """Group items of ``streams`` by stamp (module notes). Counts per stream: ``dropped`` (received, never in a
    set), ``left_out`` (sets formed without it); ``matched`` sets and ``time_jumps`` (streams whose stamps went
    back) in all. :meth:`reset` keeps the counts."""

    def __init__(
        self,
        streams: Sequence[str],
        tolerance_ns: int,
        timeout_ns: int,
        max_pending: int = 16,
        on_time_jump: Callable[[int, int], None] | None = None,
    ) -> None:
        self.streams = tuple(streams)
        if not self.streams or len(set(self.streams)) != len(self.streams):
            raise ValueError(f"streams must be distinct names, at least one, got {list(streams)}")
        if tolerance_ns < 0 or timeout_ns <= tolerance_ns or max_pending < 1:
            raise ValueError(
                f"need 0 <= tolerance_ns < timeout_ns and max_pending >= 1, got {tolerance_ns}, {timeout_ns}, "
                f"{max_pending}"
            )
        self.tolerance_ns = int(tolerance_ns)
        self.timeout_ns = int(timeout_ns)
        self.max_pending = int(max_pending)
        self.on_time_jump = on_time_jump
        self.dropped: dict[str, int] = dict.fromkeys(self.streams, 0)
        self.left_out: dict[str, int] = dict.fromkeys(self.streams, 0)
        self.matched = 0
        self.time_jumps = 0
        self._queues: dict[str, list[tuple[int, object]]] = {name: [] for name in self.streams}
        self._newest: dict[str, int | None] = dict.fromkeys(self.streams)
        self._previous: dict[str, int | None] = dict.fromkeys(self.streams)  # each stream's second-newest stamp
        self._first: int | None = None
        self._last_set: int | None = None

    def reset(self) -> None:
        """Drop every pending item (counted) and forget the stamp history; the counts are kept."""
        for name, queue in self._queues.items():
            self.dropped[name] += len(queue)
            queue.clear()
        self._newest = dict.fromkeys(self.streams)
        self._previous = dict.fromkeys(self.streams)
        self._first = self._last_set = None

    def _restart(self, stream: str) -> None:
        """Forget one stream's queue (counted) and stamp history; the last set's stamp too, since sets may go back
        in time now (every other queue only holds items newer than that set)."""
        self.dropped[stream] += len(self._queues[stream])
        self._queues[stream].clear()
        self._newest[stream] = self._previous[stream] = None
        self._last_set = None

    def live(self) -> list[str]:
        """The streams that take part in the next set (module notes)."""
        shown = [stamp for stamp in self._previous.values() if stamp is not None]
        if not shown:
            return list(self.streams)
        limit = max(shown) - self.timeout_ns
        return [
            name
            for name in self.streams
            if (self._newest[name] is None and self._first >= limit)
            or (self._newest[name] is not None and self._newest[name] >= limit)
        ]

    def push(self, stream: str, stamp_ns: int, item: object) -> dict[str, object | None] | None:
        """Add one item; return {stream: item or None} for the newest set it completes, else None."""
        if stream not in self._queues:
            raise KeyError(f"unknown stream {stream!r}; known: {list(self.streams)}")
        stamp = int(stamp_ns)
        newest = self._newest[stream]
        if newest is not None and stamp < newest - self.tolerance_ns:
            self.time_jumps += 1
            self._restart(stream)
            if self.on_time_jump is not None:
                self.on_time_jump(newest, stamp)
        elif newest is not None and stamp <= newest:
            self.dropped[stream] += 1  # a repeated or reordered stamp: each stream's stamps must increase
            return None
        self._previous[stream], self._newest[stream] = self._newest[stream], stamp
        if self._first is None:
            self._first = stamp
        if self._last_set is not None and stamp < self._last_set - self.tolerance_ns:
            self.dropped[stream] += 1  # too late: every set it could join is gone
            return None
        queue = self._queues[stream]
        queue.append((stamp, item))
        if len(queue) > self.max_pending:
            del queue[0]
            self.dropped[stream] += 1
        self._prune()
        return self._match()

    def _prune(self) -> None:
        """Drop items too old to join any set a live stream could still complete."""
        oldest_useful = max(s for s in self._newest.values() if s is not None) - self.timeout_ns - self.tolerance_ns
        for name, queue in self._queues.items():
            stale = 0
            while stale < len(queue) and queue[stale][0] < oldest_useful:
                stale += 1
            if stale:
                del queue[:stale]
                self.dropped[name] += stale

    def _match(self) -> dict[str, object | None] | None:
        """The newest complete set of the live streams, removing it and everything older from their queues."""
        live = self.live()
        if any(self._newest[name] is None for name in live):
            return None  # waiting for a stream's first item
        anchor = min(live, key=lambda name: self._newest[name])
        for anchor_index in range(len(self._queues[anchor]) - 1, -1, -1):
            stamp = self._queues[anchor][anchor_index][0]
            chosen = {anchor: anchor_index}
            for name in live:
                if name != anchor:
                    index = self._closest(self._queues[name], stamp)
                    if index is None:
                        break
                    chosen[name] = index
            else:
                return self._take(chosen, stamp)
        return None

    def _closest(self, queue: list[tuple[int, object]], stamp: int) -> int | None:
        """Index of the queued item nearest to ``stamp`` within the tolerance (earlier wins a tie)."""
        gaps = [abs(queued - stamp) for queued, _ in queue]
        if not gaps or min(gaps) > self.tolerance_ns:
            return None
        return gaps.index(min(gaps))

    def _take(self, chosen: dict[str, int], stamp: int) -> dict[str, object | None]:
        result: dict[str, object | None] = dict.fromkeys(self.streams)
        for name in self.streams:
            index = chosen.get(name)
            if index is None:
                self.left_out[name] += 1
                continue
            queue = self._queues[name]
            result[name] = queue[index][1]
            self.dropped[name] += index  # older items can no longer join a set
            del queue[: index + 1]
        self._last_set = stamp
        self.matched += 1
        return result

"""A TF buffer without ROS: timed transforms between named frames, interpolated, chained through the tree.

The ego node looks up its camera's pose in TF at each image stamp (``camera_pose_source: tf``). Where ``tf2_ros``
is importable (ROS 2 from apt) the node uses it; the PyPI wheels this package also runs on have no ``tf2_ros``,
so this module is what answers there (fed by /tf and /tf_static subscriptions, ros/tf_lookup.py), and what
``hand-scene process`` fills from a bag's /tf and /tf_static. It follows tf2's rules:

- every frame has at most one parent; ``T_parent_child`` maps points from the child into the parent;
- static transforms hold at every time and never expire; dynamic ones are kept for ``cache_time_s`` behind the
  newest of their edge, and a lookup between two samples interpolates (translation linearly, rotation by slerp);
- a lookup before an edge's oldest sample or after its newest is an extrapolation and is refused (never a guess);
- a stamp more than ``cache_time_s`` behind an edge's newest sample is a time jump back (a bag replayed in a
  loop): the edge's history starts again from it, as tf2 clears its buffer when ROS time jumps back.

Frame names are compared without a leading '/' (as tf2 does). Thread-safe: subscription callbacks insert while
another thread looks up, optionally waiting for the transform to arrive.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from .transforms import inverse_matrices

# How long dynamic transforms are kept (tf2_ros's default buffer length).
DEFAULT_CACHE_TIME_S = 10.0
NS_PER_S = 1_000_000_000


class TransformUnavailable(LookupError):
    """No transform between two frames at a stamp; the text says why (what a node reports)."""


class FrameNotFound(TransformUnavailable):
    """A frame is not in the tree, or the two frames are in different trees."""


class ExtrapolationError(TransformUnavailable):
    """The stamp lies outside an edge's kept samples; ``future``: after the newest (waiting may help)."""

    def __init__(self, message: str, future: bool) -> None:
        super().__init__(message)
        self.future = future


class TransformTimeout(TransformUnavailable):
    """The transform did not become available within the lookup's timeout."""


@dataclass
class _Edge:
    """One frame's link to its parent: a static transform, or dynamic samples in time order."""

    parent: str
    static: bool
    stamps: list[int] = field(default_factory=list)
    translations: list[np.ndarray] = field(default_factory=list)
    quaternions: list[np.ndarray] = field(default_factory=list)

    def at(self, stamp_ns: int, child: str) -> np.ndarray:
        """T_parent_child at ``stamp_ns``, interpolated between the samples around it."""
        if self.static:
            return _matrix(self.translations[0], Rotation.from_quat(self.quaternions[0]))
        first, last = self.stamps[0], self.stamps[-1]
        if stamp_ns < first or stamp_ns > last:
            future = stamp_ns > last
            gap = (stamp_ns - last if future else first - stamp_ns) / NS_PER_S
            raise ExtrapolationError(
                f"{self.parent} -> {child} at {stamp_ns / NS_PER_S:.3f} s would be an extrapolation "
                f"{gap:.3f} s {'into the future' if future else 'into the past'} (samples from {first / NS_PER_S:.3f} "
                f"to {last / NS_PER_S:.3f} s)",
                future,
            )
        index = bisect.bisect_left(self.stamps, stamp_ns)
        if self.stamps[index] == stamp_ns:
            return _matrix(self.translations[index], Rotation.from_quat(self.quaternions[index]))
        t0, t1 = self.stamps[index - 1], self.stamps[index]
        alpha = (stamp_ns - t0) / (t1 - t0)
        translation = (1.0 - alpha) * self.translations[index - 1] + alpha * self.translations[index]
        # Slerp: along the geodesic from r0 to r1 (scipy's Slerp object costs 3x more to build per lookup).
        r0, r1 = Rotation.from_quat(self.quaternions[index - 1]), Rotation.from_quat(self.quaternions[index])
        return _matrix(translation, r0 * Rotation.from_rotvec(alpha * (r0.inv() * r1).as_rotvec()))

    def add(self, stamp_ns: int, translation: np.ndarray, quaternion: np.ndarray, cache_ns: int) -> None:
        """Insert a dynamic sample in time order (same stamp: replaced) and drop samples beyond the cache time."""
        if self.stamps and stamp_ns < self.stamps[-1] - cache_ns:  # a time jump back: start again
            self.stamps, self.translations, self.quaternions = [], [], []
        index = bisect.bisect_left(self.stamps, stamp_ns)
        if index < len(self.stamps) and self.stamps[index] == stamp_ns:
            self.translations[index], self.quaternions[index] = translation, quaternion
        else:
            self.stamps.insert(index, stamp_ns)
            self.translations.insert(index, translation)
            self.quaternions.insert(index, quaternion)
        expired = bisect.bisect_left(self.stamps, self.stamps[-1] - cache_ns)
        if expired:
            del self.stamps[:expired], self.translations[:expired], self.quaternions[:expired]


def _matrix(translation: np.ndarray, rotation: Rotation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = rotation.as_matrix()
    matrix[:3, 3] = translation
    return matrix


def _frame(name: str) -> str:
    frame = str(name).lstrip("/")
    if not frame:
        raise ValueError("a TF frame name must not be empty")
    return frame


class TransformBuffer:
    """Timed transforms between frames and lookups through the tree (see the module notes)."""

    def __init__(self, cache_time_s: float = DEFAULT_CACHE_TIME_S) -> None:
        if not cache_time_s > 0:
            raise ValueError(f"cache_time_s must be > 0, got {cache_time_s}")
        self.cache_ns = int(cache_time_s * NS_PER_S)
        self._edges: dict[str, _Edge] = {}  # child frame -> its link to the parent
        self._changed = threading.Condition()

    def set_transform(self, parent: str, child: str, stamp_ns: int, translation: Sequence[float],
                      quaternion_xyzw: Sequence[float], static: bool = False) -> None:  # fmt: skip
        """Add T_parent_child at ``stamp_ns`` (ignored for a static one), as TransformStamped carries it: a translation
        and a quaternion (normalised here). A frame that gets another parent, or turns from dynamic to static or
        back, starts a new history (the newest statement about it wins). ValueError for an unusable transform."""
        parent, child = _frame(parent), _frame(child)
        if parent == child:
            raise ValueError(f"a transform from {child!r} to itself is not an edge of the tree")
        translation = np.array(translation, dtype=np.float64)
        quaternion = np.array(quaternion_xyzw, dtype=np.float64)
        if translation.shape != (3,) or quaternion.shape != (4,):
            raise ValueError(f"{parent} -> {child}: a translation has 3 values and a quaternion 4")
        norm = float(np.linalg.norm(quaternion))
        if not (np.all(np.isfinite(translation)) and np.isfinite(norm) and norm > 1e-9):
            raise ValueError(f"{parent} -> {child} has non-finite values or a zero quaternion")
        quaternion /= norm
        with self._changed:
            if static:
                self._edges[child] = _Edge(parent, True, [int(stamp_ns)], [translation], [quaternion])
            else:
                edge = self._edges.get(child)
                if edge is None or edge.parent != parent or edge.static:
                    edge = self._edges[child] = _Edge(parent, False)
                edge.add(int(stamp_ns), translation, quaternion, self.cache_ns)
            self._changed.notify_all()

    def clear(self) -> None:
        """Forget every transform (static ones too)."""
        with self._changed:
            self._edges.clear()

    def frames(self) -> set[str]:
        """Every frame the tree names (children and parents)."""
        with self._changed:  # (a re-entrant lock: lookups call this while holding it)
            return set(self._edges) | {edge.parent for edge in self._edges.values()}

    def lookup(self, target: str, source: str, stamp_ns: int, timeout_s: float = 0.0) -> np.ndarray:
        """T_target_source (maps points from ``source`` into ``target``) at ``stamp_ns``.

        With ``timeout_s`` > 0, a frame not yet in the tree or a stamp newer than the newest sample is waited for
        (up to that long, wall clock) before :class:`TransformTimeout`; a stamp older than the kept samples fails
        at once (no later message can bring it back). Raises a :class:`TransformUnavailable` saying why."""
        target, source = _frame(target), _frame(source)
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                try:
                    return self._lookup(target, source, int(stamp_ns))
                except ExtrapolationError as error:
                    if not error.future:
                        raise
                    reason = error
                except FrameNotFound as error:
                    reason = error
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if timeout_s > 0:
                        raise TransformTimeout(f"no transform within {timeout_s:.3f} s: {reason}") from None
                    raise reason
                self._changed.wait(remaining)

    def _chain(self, frame: str) -> list[str]:
        """``frame`` and its ancestors up to the root of its tree."""
        chain = [frame]
        while chain[-1] in self._edges:
            parent = self._edges[chain[-1]].parent
            if parent in chain:
                raise FrameNotFound(f"the TF tree has a loop through {parent!r}")
            chain.append(parent)
        return chain

    def _lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        known = self.frames()
        for frame in (source, target):
            if frame not in known:
                names = sorted(known)
                shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "") if names else "none"
                raise FrameNotFound(f"frame {frame!r} is not in the TF tree (frames: {shown})")
        if target == source:
            return np.eye(4)
        source_chain, target_chain = self._chain(source), self._chain(target)
        common = next((frame for frame in source_chain if frame in target_chain), None)
        if common is None:
            raise FrameNotFound(f"{source!r} and {target!r} are in different TF trees (roots {source_chain[-1]!r} "
                                f"and {target_chain[-1]!r})")
        common_source = self._to_ancestor(source_chain, common, stamp_ns)
        common_target = self._to_ancestor(target_chain, common, stamp_ns)
        return inverse_matrices(common_target) @ common_source

    def _to_ancestor(self, chain: list[str], ancestor: str, stamp_ns: int) -> np.ndarray:
        """T_ancestor_chain[0] at ``stamp_ns``: the edges' transforms multiplied up the chain."""
        matrix = np.eye(4)
        for child in chain[: chain.index(ancestor)]:
            matrix = self._edges[child].at(stamp_ns, child) @ matrix
        return matrix

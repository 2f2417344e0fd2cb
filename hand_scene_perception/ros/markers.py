"""RViz markers for hands: one TRIANGLE_LIST mesh and one LINE_LIST skeleton per hand.

Marker identity in RViz is (namespace, id): meshes live in ``<namespace>/mesh`` and skeletons in
``<namespace>/skeleton``, both with the hand's stable key (its track id) as id, so a hand's markers
are replaced in place frame after frame and expire by their lifetime once the hand is gone.
A TRIANGLE_LIST needs three points per triangle (4614 for a 778-vertex hand): the points stay numpy arrays
(:class:`HandMarkers`) and go into the CDR bytes directly (ros/serialization.py), so an update costs ~0.2 ms per
hand instead of ~35 ms of Point objects and their conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Pose
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from ..core.hand_model.joint_order import MEDIAPIPE_PARENTS
from ..core.hand_model.side import HandSide
from ..core.hand_state import HandState
from .conversions import NS_PER_S, header_msg
from .serialization import serialize_with_point_arrays

# Joint index pairs (child, parent) of the 21-joint product order (ARCHITECTURE.md, Conventions): 20 bones.
SKELETON_EDGES: tuple[tuple[int, int], ...] = tuple(
    (child, parent) for child, parent in enumerate(MEDIAPIPE_PARENTS) if parent >= 0
)
# Per-side colours (RGBA): left blue, right red; the skeleton is a lighter, opaque shade.
MESH_COLORS: dict[HandSide, tuple[float, float, float, float]] = {
    HandSide.LEFT: (0.2, 0.45, 1.0, 0.85),
    HandSide.RIGHT: (1.0, 0.3, 0.25, 0.85),
}
SKELETON_COLORS: dict[HandSide, tuple[float, float, float, float]] = {
    HandSide.LEFT: (0.6, 0.8, 1.0, 1.0),
    HandSide.RIGHT: (1.0, 0.75, 0.6, 1.0),
}
SKELETON_LINE_WIDTH_M = 0.004
_SKELETON_INDICES = np.array([i for edge in SKELETON_EDGES for i in edge])
_MAX_MARKER_ID = 2**31 - 1  # Marker.id is int32


_NO_POINTS = np.zeros((0, 3))


@dataclass
class HandMarkers:
    """A visualization_msgs/MarkerArray whose markers' points are (N, 3) arrays until :meth:`serialized`."""

    markers: list[Marker] = field(default_factory=list)
    points: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.markers)

    def add(self, marker: Marker, points: np.ndarray = _NO_POINTS) -> None:
        self.markers.append(marker)
        self.points.append(np.asarray(points, dtype=np.float64))

    def extend(self, other: HandMarkers) -> None:
        self.markers += other.markers
        self.points += other.points

    def serialized(self) -> bytes:
        """The MarkerArray as CDR bytes, what a publisher or a bag writer takes."""
        fields = list(zip(self.markers, self.points, strict=True))
        return serialize_with_point_arrays(MarkerArray(markers=self.markers), fields)


def _marker(
    kind: int, namespace: str, key: int, frame_id: str, stamp_ns: int, lifetime_ns: int, rgba: tuple[float, ...]
) -> Marker:
    marker = Marker(header=header_msg(frame_id, stamp_ns), ns=namespace, id=int(key) & _MAX_MARKER_ID, type=kind)
    marker.action = Marker.ADD
    marker.pose = Pose()  # identity (w = 1): the points are already in frame_id
    marker.color = ColorRGBA(r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3])
    seconds, nanoseconds = divmod(max(int(lifetime_ns), 0), NS_PER_S)
    marker.lifetime = Duration(sec=seconds, nanosec=nanoseconds)
    return marker


def hand_marker_array(
    hands: list[tuple[int, HandState]],
    faces_by_side: dict[HandSide, np.ndarray],
    frame_id: str,
    stamp_ns: int,
    lifetime_ns: int,
    namespace: str = "hands",
) -> HandMarkers:
    """Markers for (key, hand) pairs whose 3D data is in frame_id; ``key`` (the track id) fixes the ids.

    Hands without vertices get only a skeleton. ``lifetime_ns`` = 0 means the markers never expire.
    """
    faces_of = {HandSide.parse(side): faces for side, faces in faces_by_side.items()}
    markers = HandMarkers()
    for key, state in hands:
        side = HandSide.parse(state.side)
        if state.vertices is not None:
            faces = faces_of.get(side)
            if faces is None:
                raise ValueError(f"no mesh faces given for the {side.value} hand")
            faces = np.asarray(faces)
            in_range = faces.size == 0 or (faces.min() >= 0 and faces.max() < len(state.vertices))
            if faces.ndim != 2 or faces.shape[1] != 3 or not in_range:
                raise ValueError(f"{side.value} faces must be (F, 3) indices below {len(state.vertices)}")
            mesh = _marker(
                Marker.TRIANGLE_LIST, f"{namespace}/mesh", key, frame_id, stamp_ns, lifetime_ns, MESH_COLORS[side]
            )
            mesh.scale.x = mesh.scale.y = mesh.scale.z = 1.0
            markers.add(mesh, np.asarray(state.vertices)[faces.reshape(-1)])
        skeleton = _marker(
            Marker.LINE_LIST, f"{namespace}/skeleton", key, frame_id, stamp_ns, lifetime_ns, SKELETON_COLORS[side]
        )
        skeleton.scale.x = SKELETON_LINE_WIDTH_M
        markers.add(skeleton, np.asarray(state.joints)[_SKELETON_INDICES])
    return markers


def delete_all_markers(frame_id: str, stamp_ns: int, namespace: str = "") -> HandMarkers:
    """One DELETEALL marker: clears every marker of ``namespace`` (all namespaces when empty), e.g. on reset."""
    markers = HandMarkers()
    markers.add(Marker(header=header_msg(frame_id, stamp_ns), ns=namespace, action=Marker.DELETEALL))
    return markers

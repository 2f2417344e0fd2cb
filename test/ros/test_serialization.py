"""Point arrays spliced into rclpy's own serialisation: the length serialize_message gives and the same message
back (padding bytes, unspecified in CDR, are the only bytes allowed to differ)."""

from __future__ import annotations

import numpy as np
import pytest
from geometry_msgs.msg import Point, Polygon
from rclpy.serialization import deserialize_message, serialize_message
from visualization_msgs.msg import Marker, MarkerArray

from hand_scene_perception.ros.serialization import serialize_with_point_arrays


def filled(marker: Marker, points: np.ndarray) -> Marker:
    marker.points = [Point(x=x, y=y, z=z) for x, y, z in points.tolist()]
    return marker


def assert_same_serialisation(spliced: bytes, reference_msg: object) -> None:
    reference = serialize_message(reference_msg)
    assert len(spliced) == len(reference)
    assert deserialize_message(spliced, type(reference_msg)) == reference_msg


@pytest.mark.parametrize("seed", range(12))
def test_marker_arrays_match_rclpy(seed):
    """Random point counts (empty included) and string lengths move each count across both 8-byte alignments."""
    rng = np.random.default_rng(seed)
    names = ["".join(rng.choice(list("abcdef"), size=rng.integers(0, 9))) for _ in range(4)]
    arrays = [rng.normal(size=(int(rng.choice([0, 1, 2, 5, 4614])), 3)) for _ in names]

    def markers() -> list[Marker]:
        return [Marker(ns=name, id=index, text=name[::-1]) for index, name in enumerate(names)]

    spliced_markers = markers()
    fields = list(zip(spliced_markers, arrays, strict=True))
    spliced = serialize_with_point_arrays(MarkerArray(markers=spliced_markers), fields)
    reference = MarkerArray(markers=[filled(m, a) for m, a in zip(markers(), arrays, strict=True)])
    assert_same_serialisation(spliced, reference)


def test_owners_given_out_of_order_and_other_point_fields():
    """Owners in any order; a message whose Point-like sequences are not spliced is serialised unchanged."""
    rng = np.random.default_rng(3)
    first, second = Marker(ns="a"), Marker(ns="bcd")
    arrays = rng.normal(size=(7, 3)), rng.normal(size=(3, 3))
    spliced = serialize_with_point_arrays(MarkerArray(markers=[first, second]),
                                          [(second, arrays[1]), (first, arrays[0])])  # fmt: skip
    reference = MarkerArray(markers=[filled(Marker(ns="a"), arrays[0]), filled(Marker(ns="bcd"), arrays[1])])
    assert_same_serialisation(spliced, reference)
    polygon = Polygon()
    assert_same_serialisation(serialize_with_point_arrays(polygon, []), polygon)


def test_bad_shape_is_refused():
    marker = Marker()
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        serialize_with_point_arrays(marker, [(marker, np.zeros((4, 2)))])

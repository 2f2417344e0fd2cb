"""Pure conversions between the pipelines' numpy results and ROS 2 messages.

No node state lives here, so every function is unit-testable without DDS. Large numeric
fields are filled from ``array.array`` views of numpy buffers: assigning numpy arrays or
lists to rosidl sequence fields checks every element in Python (DESIGN.md §4).
"""

from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, TransformStamped, Vector3
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header

from hand_scene_msgs.msg import Hand, HandArray, HandMeshTopology

from ..core.hand_model.side import HandSide
from ..core.hand_state import HandState

NS_PER_S = 1_000_000_000
SIDE_TO_MSG = {HandSide.LEFT: Hand.LEFT, HandSide.RIGHT: Hand.RIGHT}
MSG_TO_SIDE = {value: side for side, value in SIDE_TO_MSG.items()}


def time_msg(stamp_ns: int) -> Time:
    """builtin_interfaces/Time from integer nanoseconds (the stamp of the source image)."""
    if stamp_ns < 0:
        raise ValueError(f"stamp must be non-negative nanoseconds, got {stamp_ns}")
    seconds, nanoseconds = divmod(int(stamp_ns), NS_PER_S)
    return Time(sec=seconds, nanosec=nanoseconds)


def time_ns(stamp: Time) -> int:
    """Integer nanoseconds from builtin_interfaces/Time."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def header_msg(frame_id: str, stamp_ns: int) -> Header:
    """std_msgs/Header with the given frame and stamp."""
    return Header(frame_id=frame_id, stamp=time_msg(stamp_ns))


def pose_msg(matrix: np.ndarray) -> Pose:
    """geometry_msgs/Pose from a 4x4 rigid transform."""
    pose = Pose()
    x, y, z = (float(v) for v in matrix[:3, 3])
    pose.position.x, pose.position.y, pose.position.z = x, y, z
    qx, qy, qz, qw = Rotation.from_matrix(matrix[:3, :3]).as_quat()
    pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (
        float(qx), float(qy), float(qz), float(qw))  # fmt: skip
    return pose


def pose_matrix(pose: Pose) -> np.ndarray:
    """4x4 rigid transform from geometry_msgs/Pose (the quaternion is normalised)."""
    quaternion = [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_quat(quaternion).as_matrix()
    matrix[:3, 3] = [pose.position.x, pose.position.y, pose.position.z]
    return matrix


def transform_msg(matrix: np.ndarray, parent_frame: str, child_frame: str, stamp_ns: int) -> TransformStamped:
    """geometry_msgs/TransformStamped: pose of child_frame in parent_frame (T_parent_child)."""
    pose = pose_msg(matrix)
    transform = TransformStamped(header=header_msg(parent_frame, stamp_ns), child_frame_id=child_frame)
    transform.transform.translation = Vector3(x=pose.position.x, y=pose.position.y, z=pose.position.z)
    transform.transform.rotation = pose.orientation
    return transform


def transform_matrix(transform: TransformStamped) -> np.ndarray:
    """4x4 T_parent_child from geometry_msgs/TransformStamped (inverse of :func:`transform_msg`)."""
    translation, rotation = transform.transform.translation, transform.transform.rotation
    matrix = np.eye(4)
    matrix[:3, :3] = Rotation.from_quat([rotation.x, rotation.y, rotation.z, rotation.w]).as_matrix()
    matrix[:3, 3] = [translation.x, translation.y, translation.z]
    return matrix


def float32_sequence(values: np.ndarray | None) -> array.array:
    """Flattened float32 ``array.array`` for a rosidl float32[] field (empty for None)."""
    if values is None:
        return array.array("f")
    return array.array("f", np.ascontiguousarray(values, dtype=np.float32).tobytes())


def uint32_sequence(values: np.ndarray) -> array.array:
    """Flattened uint32 ``array.array`` for a rosidl uint32[] field."""
    return array.array("I", np.ascontiguousarray(values, dtype=np.uint32).tobytes())


def hand_msg(state: HandState, frame_id: str, stamp_ns: int, include_mesh: bool = True) -> Hand:
    """hand_scene_msgs/Hand from a HandState whose 3D data is in frame_id."""
    msg = Hand(header=header_msg(frame_id, stamp_ns))
    msg.track_id = int(state.track_id)
    msg.side = SIDE_TO_MSG[state.side]
    msg.confidence = float(state.confidence)
    msg.joints = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in state.joints]
    msg.wrist_pose = pose_msg(state.wrist_pose)
    msg.model_name = state.model_name
    msg.model_pose = float32_sequence(state.model_pose)
    msg.model_shape = float32_sequence(state.model_shape)
    tx, ty, tz = (float(v) for v in state.model_translation)
    msg.model_translation = Vector3(x=tx, y=ty, z=tz)
    msg.vertices = float32_sequence(state.vertices if include_mesh else None)
    msg.landmarks_px = float32_sequence(state.landmarks_px)
    msg.image_frame_id = state.image_frame_id
    return msg


def hand_state(msg: Hand) -> HandState:
    """HandState from hand_scene_msgs/Hand (inverse of :func:`hand_msg`, float32 precision)."""
    vertices = np.frombuffer(msg.vertices, dtype=np.float32).reshape(-1, 3) if len(msg.vertices) else None
    landmarks = np.frombuffer(msg.landmarks_px, dtype=np.float32).reshape(-1, 2) if len(msg.landmarks_px) else None
    if msg.side not in MSG_TO_SIDE:
        raise ValueError(f"Hand.side must be LEFT ({Hand.LEFT}) or RIGHT ({Hand.RIGHT}), got {msg.side}")
    return HandState(
        track_id=msg.track_id,
        side=MSG_TO_SIDE[msg.side],
        confidence=msg.confidence,
        joints=np.array([[p.x, p.y, p.z] for p in msg.joints]),
        wrist_pose=pose_matrix(msg.wrist_pose),
        model_name=msg.model_name,
        model_pose=np.frombuffer(msg.model_pose, dtype=np.float32).reshape(-1, 3),
        model_shape=np.frombuffer(msg.model_shape, dtype=np.float32),
        model_translation=np.array([msg.model_translation.x, msg.model_translation.y, msg.model_translation.z]),
        vertices=vertices,
        landmarks_px=landmarks,
        image_frame_id=msg.image_frame_id,
    )


def hand_array_msg(states: list[HandState], frame_id: str, stamp_ns: int, include_mesh: bool = True) -> HandArray:
    """hand_scene_msgs/HandArray for one input; empty when no hand was seen (still published)."""
    return HandArray(
        header=header_msg(frame_id, stamp_ns),
        hands=[hand_msg(state, frame_id, stamp_ns, include_mesh) for state in states],
    )


def mesh_topology_msg(
    model_name: str, faces_right: np.ndarray, faces_left: np.ndarray, vertex_count: int, stamp_ns: int = 0
) -> HandMeshTopology:
    """hand_scene_msgs/HandMeshTopology, published once on a transient-local topic."""
    for name, faces in (("faces_right", faces_right), ("faces_left", faces_left)):
        faces = np.asarray(faces)
        if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= vertex_count:
            raise ValueError(f"{name} must be (F, 3) indices below vertex_count={vertex_count}")
    return HandMeshTopology(
        header=header_msg("", stamp_ns),
        model_name=model_name,
        vertex_count=int(vertex_count),
        faces_right=uint32_sequence(faces_right),
        faces_left=uint32_sequence(faces_left),
    )

"""Pure conversions between the pipelines' numpy results and ROS 2 messages.

No node state lives here, so every function is unit-testable without DDS. Large numeric
fields are filled from ``array.array`` views of numpy buffers: assigning numpy arrays or
lists to rosidl sequence fields checks every element in Python (ARCHITECTURE.md, Environment).
"""

from __future__ import annotations

import array
import sys

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, TransformStamped, Vector3
from nav_msgs.msg import Odometry
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from hand_scene_msgs.msg import Contact as ContactMsg
from hand_scene_msgs.msg import ContactArray, Hand, HandArray, HandMeshTopology

from ..core.camera import PinholeCamera
from ..core.contacts import REGIONS, Contact
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


# ---------------------------------------------------------------------------------------------
# Camera inputs and outputs (sensor_msgs/Image, CameraInfo)


class InputError(ValueError):
    """An input message the node cannot use; the text says what is wrong and what is accepted."""


# Colour encodings: bytes per pixel and the slice of the channel axis that gives R, G, B.
_COLOR_ENCODINGS: dict[str, tuple[int, slice]] = {
    "rgb8": (3, slice(0, 3)),
    "bgr8": (3, slice(2, None, -1)),
    "rgba8": (4, slice(0, 3)),
    "bgra8": (4, slice(2, None, -1)),
    "mono8": (1, slice(0, 1)),
}
_DEPTH_ENCODINGS: dict[str, np.dtype] = {"16UC1": np.dtype(np.uint16), "32FC1": np.dtype(np.float32)}
COLOR_ENCODINGS: tuple[str, ...] = tuple(_COLOR_ENCODINGS)
DEPTH_ENCODINGS: tuple[str, ...] = tuple(_DEPTH_ENCODINGS)
_NATIVE_BIG_ENDIAN = sys.byteorder == "big"


# Kilted's rosidl setters copy every sequence value (``array.array('B', value)``) unless the message
# checks its fields; its checking setters, like Jazzy's, keep an ``array.array`` of the right type
# as it is. Fresh pages are costly here (measured on an 8 MB cloud: filling three new buffers took
# 16-19 ms, one takes 7 ms), so messages with large byte fields are built with checks on and take
# the buffer they were filled in. Such a message checks later assignments too (plain Python types).
_KEEP_ARRAYS: dict[str, bool] = {"check_fields": True} if "_check_fields" in Image.__slots__ else {}


def byte_array(values: np.ndarray) -> array.array:
    """``array.array('B')`` holding the bytes of ``values`` (one memcpy; rosidl uint8[] fields take it as is)."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(values).reshape(-1).view(np.uint8))
    return out


def _byte_buffer(shape: tuple[int, ...], dtype: np.dtype | type) -> tuple[array.array, np.ndarray]:
    """A zeroed ``array.array('B')`` for a message's data field and a writable numpy view of it."""
    dtype = np.dtype(dtype)
    data = array.array("B", b"\0") * (int(np.prod(shape)) * dtype.itemsize)
    return data, np.frombuffer(data, dtype=dtype).reshape(shape)


def _pixel_rows(msg: Image, bytes_per_pixel: int, what: str) -> np.ndarray:
    """(H, W * bytes_per_pixel) uint8 view of an Image's pixel bytes, row padding (step) removed."""
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise InputError(f"{what} is empty ({width}x{height} pixels)")
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        raise InputError(
            f"{what} step {step} is smaller than width {width} x {bytes_per_pixel} bytes per pixel ({msg.encoding})"
        )
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise InputError(f"{what} has {data.size} data bytes, expected step x height = {step} x {height}")
    return data.reshape(height, step)[:, :row_bytes]


def image_rgb(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB copy of a colour or mono8 sensor_msgs/Image (row padding honoured)."""
    if msg.encoding not in _COLOR_ENCODINGS:
        raise InputError(f"image encoding {msg.encoding!r} is not supported; accepted: {', '.join(COLOR_ENCODINGS)}")
    channels, rgb = _COLOR_ENCODINGS[msg.encoding]
    pixels = _pixel_rows(msg, channels, "image").reshape(int(msg.height), int(msg.width), channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    return np.array(pixels[..., rgb], order="C")  # always a copy: never alias the message buffer


def depth_image(msg: Image) -> np.ndarray:
    """Depth as stored: 16UC1 -> (H, W) uint16 millimetres, 32FC1 -> (H, W) float32 metres (native byte order)."""
    dtype = _DEPTH_ENCODINGS.get(msg.encoding)
    if dtype is None:
        raise InputError(
            f"depth encoding {msg.encoding!r} is not supported; accepted: 16UC1 (millimetres), 32FC1 (metres)"
        )
    rows = _pixel_rows(msg, dtype.itemsize, "depth image")
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<")
    return np.ascontiguousarray(rows).view(wire).reshape(int(msg.height), int(msg.width)).astype(dtype)


# An image stamped this far ahead of the node clock means the two clocks differ (use_sim_time mismatch).
FUTURE_STAMP_TOLERANCE_NS = NS_PER_S


def future_stamp_warning(stamp_ns: int, now_ns: int | None) -> str | None:
    """A warning when an image stamp is ahead of the node clock by more than FUTURE_STAMP_TOLERANCE_NS, else None."""
    if now_ns is None or stamp_ns <= now_ns + FUTURE_STAMP_TOLERANCE_NS:
        return None
    return (f"image stamp is {(stamp_ns - now_ns) / NS_PER_S:.1f} s ahead of the node clock "
            "(use_sim_time set on the node but not the source, or the reverse?)")  # fmt: skip


def check_image_size(msg: Image, camera: PinholeCamera, what: str = "image") -> None:
    """InputError unless the image has the camera's size (image/camera_info or depth/camera_info mismatch)."""
    if (int(msg.width), int(msg.height)) != (camera.width, camera.height):
        raise InputError(f"{what} is {msg.width}x{msg.height} but camera_info says {camera.width}x{camera.height}")


def pinhole_camera(msg: CameraInfo) -> PinholeCamera:
    """PinholeCamera from sensor_msgs/CameraInfo; InputError for invalid K, D or size, binning or a partial ROI."""
    if msg.binning_x > 1 or msg.binning_y > 1:
        raise InputError(f"camera_info binning {msg.binning_x}x{msg.binning_y} is not supported (use 0 or 1)")
    roi = msg.roi
    full = (roi.x_offset, roi.y_offset, roi.width, roi.height) in ((0, 0, 0, 0), (0, 0, msg.width, msg.height))
    if not full:
        raise InputError("camera_info region of interest must be empty or the full image; crop before publishing")
    try:
        return PinholeCamera.from_camera_info_fields(
            int(msg.width), int(msg.height), msg.k, msg.d, msg.distortion_model, msg.p
        )
    except ValueError as error:
        raise InputError(f"camera_info: {error}") from None


def camera_info_msg(camera: PinholeCamera, frame_id: str, stamp_ns: int) -> CameraInfo:
    """sensor_msgs/CameraInfo describing ``camera`` (inverse of :func:`pinhole_camera`)."""
    fields = camera.to_camera_info_fields()
    return CameraInfo(
        header=header_msg(frame_id, stamp_ns),
        width=int(fields["width"]),
        height=int(fields["height"]),
        distortion_model=str(fields["distortion_model"]),
        d=array.array("d", fields["d"]),
        k=fields["k"],
        r=fields["r"],
        p=fields["p"],
    )


def image_msg(rgb: np.ndarray, frame_id: str, stamp_ns: int, encoding: str = "rgb8") -> Image:
    """sensor_msgs/Image (no row padding) from (H, W, 3) uint8 RGB in any accepted colour encoding.

    mono8 takes (H, W) grey values as they are, or converts RGB with the ITU-R BT.601 luma weights.
    """
    pixels = np.asarray(rgb)
    if encoding not in _COLOR_ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(COLOR_ENCODINGS)}, got {encoding!r}")
    grey_given = encoding == "mono8" and pixels.ndim == 2
    if pixels.dtype != np.uint8 or not (grey_given or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError(f"image must be (H, W, 3) uint8 RGB (or (H, W) for mono8), got {pixels.shape} {pixels.dtype}")
    height, width = pixels.shape[:2]
    channels = _COLOR_ENCODINGS[encoding][0]
    data, out = _byte_buffer((height, width, channels), np.uint8)
    if encoding == "mono8":
        if not grey_given:
            weights = np.array([77, 150, 29], dtype=np.uint32)  # BT.601 luma in 1/256 units
            pixels = (pixels.astype(np.uint32) @ weights + 128) >> 8
        out[..., 0] = pixels
    else:
        out[..., _COLOR_ENCODINGS[encoding][1]] = pixels
        if channels == 4:
            out[..., 3] = 255
    return Image(
        **_KEEP_ARRAYS,
        header=header_msg(frame_id, stamp_ns),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * channels,
        data=data,
    )


def depth_msg(depth: np.ndarray, frame_id: str, stamp_ns: int) -> Image:
    """sensor_msgs/Image from (H, W) depth: uint16 millimetres -> 16UC1, float32 metres -> 32FC1."""
    values = np.asarray(depth)
    encodings = {np.dtype(np.uint16): "16UC1", np.dtype(np.float32): "32FC1"}
    if values.ndim != 2 or values.dtype not in encodings:
        raise ValueError(
            f"depth must be (H, W) uint16 millimetres or float32 metres, got {values.shape} {values.dtype}"
        )
    height, width = values.shape
    data, out = _byte_buffer(values.shape, values.dtype)
    out[:] = values
    return Image(
        **_KEEP_ARRAYS,
        header=header_msg(frame_id, stamp_ns),
        height=height,
        width=width,
        encoding=encodings[values.dtype],
        is_bigendian=int(_NATIVE_BIG_ENDIAN),
        step=width * values.itemsize,
        data=data,
    )


# ---------------------------------------------------------------------------------------------
# Scene map, camera odometry, contacts

POINT_STEP = 16
# x, y, z and rgb (0x00RRGGBB in a float32 slot, the convention RViz and PCL read), 16 bytes per point.
POINT_FIELDS: tuple[PointField, ...] = tuple(
    PointField(name=name, offset=offset, datatype=PointField.FLOAT32, count=1)
    for name, offset in (("x", 0), ("y", 4), ("z", 8), ("rgb", 12))
)
_XYZ_BYTES, _RGB_BYTES = np.dtype("V12"), np.dtype("V3")
_CLOUD_RECORD = np.dtype([("xyz", _XYZ_BYTES), ("rgb", np.uint32)])
_ZERO_RGB_BYTES = np.dtype([("zero", "V1"), ("rgb", _RGB_BYTES)])


def point_cloud_msg(points_xyz: np.ndarray, colors_rgb: np.ndarray, frame_id: str, stamp_ns: int) -> PointCloud2:
    """sensor_msgs/PointCloud2 (x, y, z, rgb; height 1, dense) from (N, 3) points and (N, 3) uint8 colours.

    Points with a NaN or infinite coordinate are left out so that ``is_dense`` holds. Built with
    whole-array numpy operations written straight into the message's buffer (no per-point Python).
    """
    points = np.asarray(points_xyz)
    colors = np.asarray(colors_rgb)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points_xyz must be (N, 3), got {points.shape}")
    if colors.shape != points.shape or colors.dtype != np.uint8:
        raise ValueError(f"colors_rgb must be (N, 3) uint8 matching the points, got {colors.shape} {colors.dtype}")
    with np.errstate(over="ignore"):  # beyond float32 range becomes inf and is dropped below
        xyz = np.ascontiguousarray(points, dtype=np.float32)
    # Whole-record copies: numpy copies a 12-byte void item per point far faster than 3 strided floats,
    # and 0x00RRGGBB is the big-endian reading of the bytes (0, R, G, B), so no per-channel shuffling.
    data, records = _byte_buffer((len(xyz),), _CLOUD_RECORD)
    records["xyz"] = xyz.view(_XYZ_BYTES).reshape(-1)
    zero_rgb = np.zeros(len(xyz), dtype=_ZERO_RGB_BYTES)
    zero_rgb["rgb"] = np.ascontiguousarray(colors).view(_RGB_BYTES).reshape(-1)
    records["rgb"] = zero_rgb.view(">u4").reshape(-1)
    packed = records.view(np.float32).reshape(-1, 4)
    # One float64 sum over the whole buffer is finite exactly when every coordinate is (the rgb slot,
    # with a zero top byte, is never NaN or infinite), so the per-row test runs only when needed.
    if not np.isfinite(packed.sum(dtype=np.float64)):
        packed = packed[np.isfinite(packed[:, :3]).all(axis=1)]
        data = byte_array(packed)
    count = len(packed)
    return PointCloud2(
        **_KEEP_ARRAYS,
        header=header_msg(frame_id, stamp_ns),
        height=1,
        width=count,
        fields=list(POINT_FIELDS),
        is_bigendian=_NATIVE_BIG_ENDIAN,
        point_step=POINT_STEP,
        row_step=POINT_STEP * count,
        data=data,
        is_dense=True,
    )


def point_cloud_arrays(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) float32 points and (N, 3) uint8 colours from a cloud in :func:`point_cloud_msg`'s layout."""
    layout = [(f.name, f.offset, f.datatype) for f in msg.fields]
    expected = [(f.name, f.offset, f.datatype) for f in POINT_FIELDS]
    if layout != expected or msg.point_step != POINT_STEP:
        raise InputError(f"point cloud layout {layout} (point_step {msg.point_step}) is not x,y,z,rgb float32")
    order = ">" if msg.is_bigendian else "<"
    count = int(msg.width) * int(msg.height)
    raw = np.frombuffer(msg.data, dtype=np.uint8)
    if raw.size != count * POINT_STEP:
        raise InputError(f"point cloud has {raw.size} data bytes, expected {count} x {POINT_STEP}")
    rows = raw.reshape(count, POINT_STEP)
    points = rows[:, :12].copy().view(f"{order}f4").astype(np.float32)
    rgb = rows[:, 12:16].copy().view(f"{order}u4").reshape(-1)
    colors = np.stack([(rgb >> 16) & 0xFF, (rgb >> 8) & 0xFF, rgb & 0xFF], axis=1).astype(np.uint8)
    return points, colors


def odometry_msg(
    T_world_camera: np.ndarray,
    world_frame: str,
    camera_frame: str,
    stamp_ns: int,
    previous: tuple[int, np.ndarray] | None = None,
) -> Odometry:
    """nav_msgs/Odometry: the camera pose in the world frame; twist (in the camera frame) by finite
    difference from ``previous`` = (stamp_ns, T_world_camera) when given and older, else zero."""
    msg = Odometry(header=header_msg(world_frame, stamp_ns), child_frame_id=camera_frame)
    msg.pose.pose = pose_msg(T_world_camera)
    if previous is not None and previous[0] < stamp_ns:
        dt = (stamp_ns - previous[0]) / NS_PER_S
        rotation = np.asarray(T_world_camera)[:3, :3]
        delta = np.linalg.inv(previous[1]) @ T_world_camera  # motion expressed in the previous camera frame
        linear = rotation.T @ (np.asarray(T_world_camera)[:3, 3] - np.asarray(previous[1])[:3, 3]) / dt
        angular = Rotation.from_matrix(delta[:3, :3]).as_rotvec() / dt
        twist = msg.twist.twist
        twist.linear.x, twist.linear.y, twist.linear.z = (float(v) for v in linear)
        twist.angular.x, twist.angular.y, twist.angular.z = (float(v) for v in angular)
    return msg


_REGION_TO_MSG = {name: getattr(ContactMsg, f"REGION_{name.upper()}") for name in REGIONS}


def contact_array_msg(contacts: list[Contact], frame_id: str, stamp_ns: int) -> ContactArray:
    """hand_scene_msgs/ContactArray for one input image (empty when nothing touches); points in frame_id."""
    header = header_msg(frame_id, stamp_ns)
    out = []
    for contact in contacts:
        px, py, pz = (float(v) for v in contact.point)
        nx, ny, nz = (float(v) for v in contact.normal)
        out.append(
            ContactMsg(
                header=header,
                hand_track_id=int(contact.track_id),
                hand_side=SIDE_TO_MSG[HandSide.parse(contact.side)],
                region=_REGION_TO_MSG[contact.region],
                vertex_index=int(contact.vertex_index),
                point=Point(x=px, y=py, z=pz),
                normal=Vector3(x=nx, y=ny, z=nz),
                distance=float(contact.distance),
            )
        )
    return ContactArray(header=header, contacts=out)

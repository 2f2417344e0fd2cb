"""The ego pipeline between ROS messages: camera messages in, every output message out, no rclpy Node.

The node (ros/ego/node.py) and ``hand-scene process BAG`` both drive this class, so a bag processed offline
and the live node publish the same messages. It owns what outlives one frame on the ROS side: the capped
hand paths, a capped history of hand states (for the trajectory service and ``save``), and the previous
camera pose (odometry twist). Inputs are checked here and a bad one raises :class:`InputError`, whose text
says what is wrong, before the pipeline's state changes.

With ``camera_pose_source`` tf the camera pose is looked up in TF (world frame ← the image's header.frame_id, at
the image stamp) through the ``transforms`` callable the caller gives (the node: its TF listener; a bag: the bag's
/tf); a frame without one raises :class:`PoseInputError` (skipped, never a guessed pose), and the camera's TF is
not published (the camera frame already has its parent in the tree).
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path as FilePath

import numpy as np
from geometry_msgs.msg import TransformStamped
from nav_msgs.msg import Odometry, Path
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from hand_scene_msgs.msg import ContactArray, Hand, HandArray, HandMeshTopology

from ...backends.base import HandExpert
from ...core.depth import check_depth_registered
from ...core.hand_model.side import HandSide
from ...core.hand_state import HandState
from ...core.transform_buffer import TransformUnavailable
from ...pipelines.ego import EgoConfig, EgoFrame, EgoHand, EgoPipeline, EgoResult
from ...pipelines.ego_outputs import EgoRecorder
from ...pipelines.overlay import draw_overlay
from ..conversions import (
    NS_PER_S,
    InputError,
    check_image_size,
    contact_array_msg,
    depth_image,
    future_stamp_warning,
    hand_array_msg,
    hand_msg,
    image_msg,
    image_rgb,
    mesh_topology_msg,
    odometry_msg,
    pinhole_camera,
    point_cloud_msg,
    time_ns,
    transform_msg,
)
from ..markers import HandMarkers, delete_all_markers, hand_marker_array
from ..paths import CappedPath

SIDES = (HandSide.LEFT, HandSide.RIGHT)
# Used when an image arrives without header.frame_id (a driver bug): the outputs still name a frame.
FALLBACK_CAMERA_FRAME = "camera_optical_frame"


class DepthInputError(InputError):
    """The depth image cannot be used (the colour image could): the node reports it as a warning."""


class PoseInputError(InputError):
    """No camera pose in TF at the image stamp (camera_pose_source tf): the frame is skipped with a warning."""


@dataclass
class EgoMessages:
    """Everything one input frame produced, as messages ready to publish (all stamped with the image stamp), and
    the decoded input with its camera frame (what :meth:`EgoMessageProcessor.overlay_msg` draws on)."""

    hands: HandArray
    markers: HandMarkers
    paths: dict[str, Path]
    odometry: Odometry
    contacts: ContactArray
    transforms: list[TransformStamped]
    result: EgoResult
    warnings: list[str]
    frame: EgoFrame
    camera_frame: str
    # milliseconds per stage: the pipeline's (EgoResult.timings_ms), then "decode" (messages to arrays) and
    # "messages" (results to messages, markers included); the node adds what publishing costs
    timings_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    # when the input was taken (time.perf_counter(); set by the streams): the start of the node's processing time
    taken_at: float | None = None


def _without_mesh(hand: EgoHand) -> EgoHand:
    """The hand with its vertices dropped (kept history stays small: 21 joints, not 778 vertices)."""
    return dataclasses.replace(
        hand,
        camera=dataclasses.replace(hand.camera, vertices=None),
        world=dataclasses.replace(hand.world, vertices=None),
    )


class EgoMessageProcessor:
    """One camera's ego reconstruction with ROS messages at both ends (see the module notes)."""

    def __init__(
        self,
        config: EgoConfig,
        *,
        world_frame: str = "map",
        frame_prefix: str = "",
        path_max_poses: int = 1000,
        marker_lifetime_s: float = 0.5,
        detector: HandExpert | None = None,
        transforms: Callable[[str, str, int], np.ndarray] | None = None,
    ) -> None:
        """``detector`` replaces the embedded MediaPipe expert (tests inject an oracle); None loads MediaPipe.
        ``transforms(target, source, stamp_ns)`` gives T_target_source or raises TransformUnavailable: the camera
        poses for ``config.camera_pose_source`` tf (needed then, unused otherwise)."""
        if not world_frame:
            raise ValueError("world_frame must not be empty")
        if config.camera_pose_source == "tf" and transforms is None:
            raise ValueError("camera_pose_source tf needs a TF lookup (transforms)")
        if marker_lifetime_s < 0:
            raise ValueError(f"marker_lifetime_s must be >= 0, got {marker_lifetime_s}")
        self.world_frame = world_frame
        self.frame_prefix = frame_prefix
        self._transforms = transforms if config.camera_pose_source == "tf" else None
        self.marker_lifetime_ns = int(marker_lifetime_s * NS_PER_S)
        self.pipeline = EgoPipeline(config, detector=detector)
        model = self.pipeline.model
        self.faces = {side: model.faces(side) for side in SIDES}
        self.paths = {side: CappedPath(path_max_poses) for side in SIDES}
        # Per frame (hands without meshes): the trajectory service and save() read it; capped like the paths.
        self._history: deque[EgoResult] = deque(maxlen=path_max_poses)
        self.camera_frame = FALLBACK_CAMERA_FRAME

    def close(self) -> None:
        """Stop the pipeline's threads and release the detector."""
        self.pipeline.close()

    def hand_frame(self, side: HandSide) -> str:
        """TF frame of a hand's wrist: ``<prefix>left_hand`` / ``<prefix>right_hand``."""
        return f"{self.frame_prefix}{side.value}_hand"

    # ------------------------------------------------------------------ per frame

    def decode(
        self, image: Image, info: CameraInfo, depth: Image | None
    ) -> tuple[EgoFrame, str, list[str]]:
        """Check and convert one input set; InputError (nothing changed) when it cannot be used."""
        warnings: list[str] = []
        camera = pinhole_camera(info)
        check_image_size(image, camera)
        rgb = image_rgb(image)
        depth_array = None
        if depth is not None:
            try:
                depth_array = depth_image(depth)
                check_depth_registered(depth.height, depth.width, camera.height, camera.width)
            except ValueError as error:  # InputError included
                raise DepthInputError(str(error)) from None
        frame_id = image.header.frame_id
        stamp = time_ns(image.header.stamp)
        pose = None
        if self._transforms is not None:
            if not frame_id:
                raise PoseInputError("image has no header.frame_id: its camera pose cannot be looked up in TF")
            try:
                pose = self._transforms(self.world_frame, frame_id, stamp)
            except TransformUnavailable as error:
                raise PoseInputError(f"no TF pose of {frame_id!r} in {self.world_frame!r} at "
                                     f"{stamp / NS_PER_S:.3f} s: {error}") from None
        elif not frame_id:
            frame_id = f"{self.frame_prefix}{FALLBACK_CAMERA_FRAME}"
            warnings.append(f"image has no header.frame_id; publishing the camera as {frame_id!r}")
        return EgoFrame(rgb, camera, stamp, depth_array, T_world_camera=pose), frame_id, warnings

    def process(
        self, image: Image, info: CameraInfo, depth: Image | None, now_ns: int | None = None, markers: bool = True
    ) -> EgoMessages:
        """Run one frame; ``now_ns`` (the node clock) lets it warn about image stamps from another clock.

        ``markers=False`` leaves the hand markers out (a mesh marker costs ~7 ms of Python per frame at 640x480:
        the node builds them only while hand_markers has subscribers); a session reset's DELETEALL is always kept.
        """
        frame, camera_frame, warnings = self._checked(image, info, depth, now_ns)
        try:
            result = self.pipeline.process(frame)
        except ValueError as error:
            raise InputError(str(error)) from None
        return self._messages(result, frame, camera_frame, warnings, markers)

    def process_stream(
        self,
        inputs: Iterable[tuple[Image, CameraInfo, Image | None, int | None]],
        on_error: Callable[[InputError], None],
        markers: Callable[[], bool] = lambda: True,
    ) -> Iterator[EgoMessages]:
        """:meth:`process` over a stream of (image, info, depth, now_ns), for throughput: :meth:`process_arrivals`
        over the iterator; the stream ends (and the frame under way is completed) when ``inputs`` ends."""
        iterator = iter(inputs)
        return self.process_arrivals(lambda: next(iterator, None), on_error, markers)

    def process_arrivals(
        self,
        next_input: Callable[[], tuple[Image, CameraInfo, Image | None, int | None] | None],
        on_error: Callable[[InputError], None],
        markers: Callable[[], bool] = lambda: True,
    ) -> Iterator[EgoMessages]:
        """:meth:`process` over inputs taken as they arrive: ``next_input()`` gives the waiting (image, info,
        depth, now_ns), or None while none waits (EgoPipeline.process_arrivals: the next frame goes into the
        detector as soon as it waits, while this one is fitted and mapped, so a live node keeps up with a camera
        whose frame period is shorter than one frame's full processing time). An input that cannot be used goes
        to ``on_error`` and the stream goes on; it ends when a frame is finished and no input waits.
        """
        pending: deque[tuple[EgoFrame, str, list[str], float, float]] = deque()

        def next_frame() -> EgoFrame | None:
            while (item := next_input()) is not None:
                image, info, depth, now_ns = item
                taken_at = time.perf_counter()
                try:
                    frame, camera_frame, warnings = self._checked(image, info, depth, now_ns)
                except InputError as error:
                    on_error(error)
                    continue
                pending.append((frame, camera_frame, warnings, taken_at, 1e3 * (time.perf_counter() - taken_at)))
                return frame
            return None

        while True:
            try:
                for result in self.pipeline.process_arrivals(next_frame):
                    frame, camera_frame, warnings, taken_at, decode_ms = pending.popleft()
                    start = time.perf_counter()
                    out = self._messages(result, frame, camera_frame, warnings, markers())
                    out.timings_ms.update(decode=decode_ms, messages=1e3 * (time.perf_counter() - start))
                    out.taken_at = taken_at
                    yield out
                return
            except ValueError as error:  # the newest frame failed the pipeline's checks; the stream goes on
                pending.pop()
                on_error(InputError(str(error)))

    def _checked(
        self, image: Image, info: CameraInfo, depth: Image | None, now_ns: int | None
    ) -> tuple[EgoFrame, str, list[str]]:
        """:meth:`decode`, plus a warning when the image stamp is ahead of the node clock."""
        frame, camera_frame, warnings = self.decode(image, info, depth)
        future = future_stamp_warning(frame.stamp_ns, now_ns)
        if future is not None:
            warnings.append(future)
        return frame, camera_frame, warnings

    def _messages(
        self, result: EgoResult, frame: EgoFrame, camera_frame: str, warnings: list[str], markers: bool
    ) -> EgoMessages:
        """Every output message of one pipeline result (and the paths and history it extends)."""
        self.camera_frame = camera_frame
        stamp = result.stamp_ns
        hand_markers = HandMarkers()
        if result.session_reset:
            warnings.append(result.session_reset)
            self._clear_trajectories()
            hand_markers.extend(delete_all_markers(self.world_frame, stamp))
        hands = [
            dataclasses.replace(hand, world=dataclasses.replace(hand.world, image_frame_id=camera_frame))
            for hand in result.hands
        ]
        result = dataclasses.replace(result, hands=hands)
        if markers:
            hand_markers.extend(hand_marker_array([(h.track_id, h.world) for h in hands], self.faces,
                                                  self.world_frame, stamp, self.marker_lifetime_ns))  # fmt: skip
        transforms = []
        if self._transforms is None:  # (with tf the camera already has its parent in the tree)
            transforms.append(transform_msg(result.T_world_camera, self.world_frame, camera_frame, stamp))
        for side, hand in self._best_per_side(hands).items():
            self.paths[side].append(stamp, hand.world.wrist_pose)
            transforms.append(transform_msg(hand.world.wrist_pose, self.world_frame, self.hand_frame(side), stamp))
        last = self._history[-1] if self._history else None
        previous_pose = None if last is None else (last.stamp_ns, last.T_world_camera)
        odometry = odometry_msg(result.T_world_camera, self.world_frame, camera_frame, stamp, previous_pose)
        self._history.append(dataclasses.replace(result, hands=[_without_mesh(h) for h in hands]))
        return EgoMessages(
            hands=hand_array_msg([h.world for h in hands], self.world_frame, stamp),
            markers=hand_markers,
            paths={side.value: self.paths[side].msg(self.world_frame) for side in SIDES},
            odometry=odometry,
            contacts=contact_array_msg(result.contacts, self.world_frame, stamp),
            transforms=transforms,
            result=result,
            warnings=warnings,
            frame=frame,
            camera_frame=camera_frame,
            timings_ms=dict(result.timings_ms),
        )

    def overlay_msg(self, out: EgoMessages) -> Image:
        """The frame's input image with its hands' meshes and skeletons drawn on (pipelines/overlay.py), in the
        image's own frame and stamp; built on request, since it costs ~15 ms per frame (640x480, two hands)."""
        rgb = draw_overlay(out.frame.image_rgb, out.frame.camera, [hand.camera for hand in out.result.hands],
                           self.faces)  # fmt: skip
        return image_msg(rgb, out.camera_frame, out.result.stamp_ns)

    @staticmethod
    def _best_per_side(hands: list[EgoHand]) -> dict[HandSide, EgoHand]:
        """The most confident hand of each side (a side's path and TF frame follow one hand)."""
        best: dict[HandSide, EgoHand] = {}
        for hand in hands:
            if hand.side not in best or hand.world.confidence > best[hand.side].world.confidence:
                best[hand.side] = hand
        return best

    # ------------------------------------------------------------------ state beyond one frame

    def serialized_paths(self) -> dict[str, bytes]:
        """Both hand paths now as CDR bytes, what a publisher takes (ros/paths.py CappedPath.cdr: serialising a
        long Path message holds the interpreter lock for milliseconds); built only for the frames that publish
        them (visualization_rate_hz), not every frame."""
        return {side.value: self.paths[side].cdr(self.world_frame) for side in SIDES}

    def scene_map_msg(self, stamp_ns: int) -> PointCloud2:
        """The voxel map as PointCloud2 (x, y, z, rgb) in the world frame."""
        vmap = self.pipeline.map
        return point_cloud_msg(vmap.points(), vmap.colors(), self.world_frame, stamp_ns)

    def mesh_topology_msg(self) -> HandMeshTopology:
        """Faces of the hand model (published once, transient local)."""
        model = self.pipeline.model
        return mesh_topology_msg(model.name, self.faces[HandSide.RIGHT], self.faces[HandSide.LEFT], model.num_vertices)

    def _clear_trajectories(self) -> None:
        for path in self.paths.values():
            path.clear()
        self._history.clear()

    def reset(self, map_and_world: bool = True, trajectories: bool = True) -> None:
        """Forget the map and world frame (a new session: tracks and trajectories go too) and/or the trajectories."""
        if map_and_world:
            self.pipeline.reset()
        if map_and_world or trajectories:
            self._clear_trajectories()

    def trajectory(
        self, start_ns: int, end_ns: int, track_id: int = -1, side: HandSide | None = None
    ) -> list[tuple[int, HandState]]:
        """(stamp_ns, world-frame hand state without mesh) with start_ns <= stamp <= end_ns, oldest first,
        optionally of one track (``track_id`` >= 0) and/or one side; the kept history is capped at
        ``path_max_poses`` frames."""
        return [
            (result.stamp_ns, hand.world)
            for result in self._history
            if start_ns <= result.stamp_ns <= end_ns
            for hand in result.hands
            if (track_id < 0 or hand.track_id == track_id) and (side is None or hand.side is side)
        ]

    def trajectory_msgs(
        self, start_ns: int, end_ns: int, track_id: int = -1, side: HandSide | None = None
    ) -> list[Hand]:
        """:meth:`trajectory` as Hand messages in the world frame, each stamped with its image."""
        return [hand_msg(state, self.world_frame, stamp, include_mesh=False)
                for stamp, state in self.trajectory(start_ns, end_ns, track_id, side)]  # fmt: skip

    def save(self, directory: str | FilePath) -> list[FilePath]:
        """Write the map (PLY), kept hand samples, camera trajectory, contacts, an overview and a summary into
        ``directory`` (created if needed), each file atomically (pipelines/ego_outputs.py writers)."""
        model = self.pipeline.model
        recorder = EgoRecorder(model.name, model.num_shape_params)
        for index, result in enumerate(self._history):
            recorder.add(index, result)
        vmap = self.pipeline.map
        extra = {"world_frame": self.world_frame, "camera_frame": self.camera_frame,
                 "kept_frames": len(self._history)}  # fmt: skip
        return list(recorder.write(directory, vmap.points(), vmap.colors(), extra).values())

"""The ``ego_reconstruction`` lifecycle node: camera topics in, hands, paths, scene map, odometry, contacts, TF out
(and, while subscribed, ``overlay``: the input image with the hands drawn on).

Thin by design: messages are converted in ros/conversions.py, the frame work happens in
:class:`~hand_scene_perception.ros.ego.processor.EgoMessageProcessor` and the pipeline. What lives here is the
ROS plumbing: parameters, lifecycle, QoS, pairing, threading, diagnostics and services.

Images and depth are paired by stamp; camera_info is taken as the latest received (intrinsics rarely change,
and requiring one per image doubles the ways a frame can be lost on a lossy transport; a size mismatch is still
caught per frame). Latency never builds up: subscriptions keep a few messages (ros/node_base.py INPUT_QUEUE_DEPTH),
the newest paired sets wait in a two-slot mailbox
(beyond two, the oldest is dropped and counted), and a worker thread processes and
publishes, so the executor keeps receiving while a frame is processed.

Camera pose (``camera_pose_source``): visual odometry (default); ``tf``, the pose of the image's frame in
``world_frame`` looked up in TF at the image stamp (waiting up to ``tf_timeout_s``; tf2_ros where importable, else
the package's own buffer on /tf and /tf_static, ros/tf_lookup.py), a frame without one skipped with a WARN; or
``static``, no odometry, the camera at the world origin.

Lifecycle: configure loads the hand model and detector and creates publishers and services; activate
subscribes and starts the worker; deactivate unsubscribes and stops it; cleanup frees the models.
With ``autostart`` (default true) the node configures and activates itself, so `ros2 run` and launch files
work without a lifecycle manager.
"""

from __future__ import annotations

import time
from collections import deque
from functools import partial

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry, Path
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import State, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from hand_scene_msgs.msg import ContactArray, HandArray, HandMeshTopology
from hand_scene_msgs.srv import GetHandTrajectory, Reset, SaveToPath

from ...backends.base import HandExpert
from ...core.camera import CAMERA_POSE_SOURCES
from ...core.hand_model.side import HandSide
from ...core.sync import StampPairer
from ...pipelines.ego import EgoConfig
from ..conversions import MSG_TO_SIDE, NS_PER_S, InputError, time_ns
from ..diagnostics import ERROR, WARN, RateMeter, diagnostic_array, diagnostic_status, overload_condition
from ..launch.plan import EGO_NODE_NAME
from ..node_base import (
    COMMON_CHOICES,
    COMMON_PARAMETERS,
    HAND_STAGE_PARAMETERS,
    LATCHED_QOS,
    PROCESSING_WINDOW,
    QOS_CHOICES,
    PipelineNode,
    spin_node,
)
from ..node_base import float_param as _float
from ..node_base import int_param as _int
from ..node_base import text_param as _text
from ..tf_lookup import DEFAULT_TF_TIMEOUT_S, TransformLookup, transform_lookup
from .processor import DepthInputError, EgoMessageProcessor, EgoMessages, PoseInputError

# Mesh markers are the costliest output (~40 ms of Python per hand and frame); 10 updates a second are smooth enough
# to watch in RViz, while `hands` (what planners read) carries every frame.
VISUALIZATION_RATE_HZ = 10.0

# name: (default, descriptor). Pipeline settings (the EgoConfig names) take effect at the next configure.
PARAMETERS: dict[str, tuple[object, ParameterDescriptor]] = {
    **HAND_STAGE_PARAMETERS,
    "voxel_size_m": (0.01, _float("scene map voxel edge, metres [configure]", 0.002, 0.2)),
    "max_voxels": (500_000, _int("scene map capacity, voxels; least recently seen go first [configure]",
                                 1000, 5_000_000)),
    "map_stride": (2, _int("use every n-th depth pixel for the map [configure]", 1, 16)),
    "map_fusion_rate_hz": (10.0, _float("depth frames fused into the map per second of image time (0: every "
                                        "frame) [configure]", 0.0, 1000.0)),
    "contact_threshold_m": (0.01, _float("hand-scene distance counted as contact, metres [configure]", 0.001, 0.1)),
    "hand_mask_margin_px": (20, _int("pixels around hands kept out of odometry and map [configure]", 0, 200)),
    "world_frame": ("map", _text("frame of hands, paths, map and odometry: the first camera pose, or with "
                                 "camera_pose_source tf the TF frame the camera pose is looked up in [configure]")),
    "camera_pose_source": ("odometry", _text("odometry (visual odometry), tf (world_frame -> image frame from TF at "
                                             "the image stamp) or static (no odometry, camera fixed) [configure]")),
    "tf_timeout_s": (DEFAULT_TF_TIMEOUT_S, _float("longest wait for the camera's TF at an image stamp, s "
                                                  "[configure]", 0.0, 5.0)),
    "frame_prefix": ("", _text("prefix of the hand TF frames <prefix>left_hand / right_hand [configure]")),
    "use_depth": (True, _text("pair a registered depth image with the colour image [configure]")),
    "pairing_tolerance_s": (0.005, _float("largest stamp gap at which image and depth are paired, s "
                                          "[configure]", 0.0, 0.5)),
    "qos_depth": ("AUTO", _text("depth subscription QoS [configure]")),
    "map_publish_rate_hz": (1.0, _float("scene_map publish rate, Hz (0: never) [live]", 0.0, 30.0)),
    "visualization_rate_hz": (VISUALIZATION_RATE_HZ, _float("most hand_markers, hand_paths and overlay updates per "
                                                            "second (0: every frame) [live]", 0.0, 1000.0)),
    "path_max_poses": (1000, _int("poses kept per hand path and frames kept for trajectories [configure]", 1,
                                  100_000)),
    "save_directory": ("ego_outputs", _text("directory ~/save writes to when the request names none [live]")),
    **COMMON_PARAMETERS,
}
_CHOICES = {**COMMON_CHOICES, "camera_pose_source": CAMERA_POSE_SOURCES, "qos_depth": QOS_CHOICES}


class EgoReconstructionNode(PipelineNode):
    """See the module notes; ``detector`` replaces the embedded backend (tests inject an oracle)."""

    PARAMETERS = PARAMETERS
    CHOICES = _CHOICES
    TIME_JUMP_CONSEQUENCE = "new session (map, tracks and paths reset)"

    def __init__(self, node_name: str = EGO_NODE_NAME, *, detector: HandExpert | None = None, **kwargs) -> None:
        self._detector = detector  # read by on_configure, which autostart runs inside PipelineNode.__init__
        super().__init__(node_name, **kwargs)

    def _init_state(self) -> None:
        self._pairer: StampPairer | None = None
        self._tf: TransformLookup | None = None
        self._last_map_ns = 0
        self._last_shown_ns = -1
        self._show_frame = True
        self._reset_stats()

    # ------------------------------------------------------------------ parameters

    def _ego_config(self) -> EgoConfig:
        return EgoConfig(
            **self._hand_stage(),
            voxel_size_m=self._param("voxel_size_m"),
            max_voxels=self._param("max_voxels"),
            map_stride=self._param("map_stride"),
            map_fusion_rate_hz=self._param("map_fusion_rate_hz"),
            contact_threshold_m=self._param("contact_threshold_m"),
            hand_mask_margin_px=self._param("hand_mask_margin_px"),
            camera_pose_source=self._param("camera_pose_source"),
        )

    # ------------------------------------------------------------------ lifecycle

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Load the hand model and detector, create publishers and services (and, for camera_pose_source tf, the TF
        listener, now, so that TF is in the buffer when the first image comes)."""
        lookup = None
        if self._param("camera_pose_source") == "tf":
            self._tf = transform_lookup(self)
            lookup = partial(self._tf.lookup, timeout_s=self._param("tf_timeout_s"))
        try:
            processor = EgoMessageProcessor(
                self._ego_config(),
                world_frame=self._param("world_frame"),
                frame_prefix=self._param("frame_prefix"),
                path_max_poses=self._param("path_max_poses"),
                marker_lifetime_s=self._param("marker_lifetime_s"),
                detector=self._detector,
                transforms=lookup,
            )
        except (ValueError, RuntimeError, OSError) as error:
            self.get_logger().error(f"configure failed: {error}")
            self._close_tf()
            return TransitionCallbackReturn.FAILURE
        self._processor = processor
        lifecycle = {"hands": HandArray, "hand_markers": MarkerArray, "hand_paths/left": Path,
                     "hand_paths/right": Path, "camera_odometry": Odometry, "contacts": ContactArray}  # fmt: skip
        self._outputs = {topic: self.create_lifecycle_publisher(kind, topic, 10)
                            for topic, kind in lifecycle.items()}  # fmt: skip
        self._outputs["scene_map"] = self.create_lifecycle_publisher(PointCloud2, "scene_map", 1)
        self._outputs["overlay"] = self.create_lifecycle_publisher(Image, "overlay", 10)
        self._outputs["hand_mesh_topology"] = self.create_lifecycle_publisher(HandMeshTopology,
                                                                                 "hand_mesh_topology", LATCHED_QOS)
        self._outputs["tf"] = self.create_publisher(TFMessage, "/tf", 100)
        self._outputs["diagnostics"] = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        group = MutuallyExclusiveCallbackGroup()
        self._own_services = [
            self.create_service(SaveToPath, "~/save", self._on_save, callback_group=group),
            self.create_service(Reset, "~/reset", self._on_reset, callback_group=group),
            self.create_service(GetHandTrajectory, "~/get_hand_trajectory", self._on_trajectory, callback_group=group),
        ]
        self._own_timers = [self.create_steady_timer(self._param("diagnostics_period_s"), self._publish_diagnostics)]
        self.get_logger().info(f"configured: backend {self._param('backend')}, hand model "
                               f"{processor.pipeline.model.name}, world frame {processor.world_frame}, camera pose "
                               f"from {self._param('camera_pose_source')}")  # fmt: skip
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        """Also stop listening to TF."""
        super()._release()
        self._close_tf()

    def _close_tf(self) -> None:
        if self._tf is not None:
            self._tf.close()
            self._tf = None

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Subscribe and start the worker; the mesh topology is latched for late subscribers."""
        result = super().on_activate(state)
        paired = ["image"] + (["depth"] if self._param("use_depth") else [])
        self._pairer = StampPairer(paired, int(self._param("pairing_tolerance_s") * NS_PER_S),
                                   on_time_jump=self._on_time_jump)  # fmt: skip
        kinds = {"image": Image, "camera_info": CameraInfo, "depth": Image}
        for stream in ["camera_info", *paired]:
            self._subscribe(kinds[stream], stream, self._receiver(stream), self._param(f"qos_{stream}"))
        self._outputs["hand_mesh_topology"].publish(self._processor.mesh_topology_msg())
        self._start_worker(self._work, "ego-node-worker")
        return result

    # ------------------------------------------------------------------ input

    def _receiver(self, stream: str):
        def receive(msg) -> None:
            self._received[stream] += 1
            if stream == "camera_info":
                self._camera_info = msg
                return
            if stream == "image":
                self._input_rate.tick(self.get_clock().now().nanoseconds)
            matched = self._pairer.push(stream, time_ns(msg.header.stamp), msg)
            if matched is not None:
                self._post(matched)

        return receive

    # ------------------------------------------------------------------ worker

    def _work(self) -> None:
        """Process frames as they arrive (EgoMessageProcessor.process_arrivals): a stream starts with the next
        frame and goes on while frames keep arriving during the frames before them, the next one entering the
        detector as soon as it waits (overlapping frame t's fitting and mapping); each frame's results go out as
        soon as it is done. Once a frame is done and none waits, the worker waits for the next."""
        while self._running:
            self._wait_for_mail()  # wait here, not inside the stream: the stream runs under the lock
            stream = self._processor_stream()
            while True:
                with self._lock:
                    out = next(stream, None)
                if out is None:
                    break
                self._publish(out)

    def _processor_stream(self):
        """The processor's stream over :meth:`_next_input` (empty once the processor is released)."""
        with self._lock:
            processor = self._processor
        if processor is None:
            return iter(())
        return processor.process_arrivals(self._next_input, on_error=self._on_input_error,
                                          markers=self._markers_for_this_frame)

    def _markers_for_this_frame(self) -> bool:
        """Whether this frame updates the visual outputs (hand_markers, hand_paths, overlay: at most
        visualization_rate_hz, node clock) and builds mesh markers (only then, and only while hand_markers has
        subscribers). They are for eyes (RViz, Foxglove), and the overlay's drawing costs as much as a hand's fit;
        hands, TF, odometry and contacts go out every frame regardless."""
        rate = self._param("visualization_rate_hz")
        now_ns = self.get_clock().now().nanoseconds
        since = now_ns - self._last_shown_ns
        self._show_frame = self._last_shown_ns < 0 or rate <= 0 or not 0 <= since < NS_PER_S / rate
        if self._show_frame:
            self._last_shown_ns = now_ns
        return self._show_frame and self._outputs["hand_markers"].get_subscription_count() > 0

    def _next_input(self):
        """(image, info, depth, now) of the frame waiting in the mailbox (taken out), None when none waits."""
        while (matched := self._take_mail()) is not None:
            info = self._camera_info
            if info is None:
                self._dropped_no_info += 1
                self._report(WARN, "image skipped: no camera_info received yet")
                continue
            return matched["image"], info, matched.get("depth"), self.get_clock().now().nanoseconds
        return None

    def _on_input_error(self, error: InputError) -> None:
        if isinstance(error, PoseInputError):
            self._without_pose += 1
        else:
            self._input_errors += 1
        self._report(WARN if isinstance(error, DepthInputError | PoseInputError) else ERROR, f"input skipped: {error}")

    def _publish(self, out: EgoMessages) -> None:
        outputs = self._outputs
        start = time.perf_counter()
        outputs["hands"].publish(out.hands)
        outputs["tf"].publish(TFMessage(transforms=out.transforms))
        if out.markers:
            outputs["hand_markers"].publish(out.markers.serialized())
        if self._show_frame:
            with self._lock:  # (between frames: the paths are this frame's)
                paths = {} if self._processor is None else self._processor.serialized_paths()
            for side, path in paths.items():
                outputs[f"hand_paths/{side}"].publish(path)
        outputs["camera_odometry"].publish(out.odometry)
        outputs["contacts"].publish(out.contacts)
        published = time.perf_counter()
        self._processed += 1
        self._processed_rate.tick(self.get_clock().now().nanoseconds)
        self._hands_tracked = len(out.result.hands)
        self._processing_ms.append(1e3 * (published - out.taken_at))
        for warning in out.warnings:
            self._report(WARN, warning)
        self._maybe_publish_overlay(out)
        overlaid = time.perf_counter()
        self._maybe_publish_map(out.result.stamp_ns)
        out.timings_ms.update(publish=1e3 * (published - start), overlay=1e3 * (overlaid - published),
                              map_publish=1e3 * (time.perf_counter() - overlaid))  # fmt: skip
        self._stage_ms.append(out.timings_ms)

    def _maybe_publish_overlay(self, out: EgoMessages) -> None:
        """overlay (the hands drawn over the input image) with the other visual outputs (visualization_rate_hz) and
        only while it has subscribers: drawing two hands costs ~8-17 ms a frame; after the frame's hands are out
        (never delays them)."""
        publisher = self._outputs["overlay"]
        if not self._show_frame or publisher.get_subscription_count() == 0:
            return
        with self._lock:
            if self._processor is None:
                return
            msg = self._processor.overlay_msg(out)
        publisher.publish(msg)

    def _maybe_publish_map(self, stamp_ns: int) -> None:
        """scene_map at map_publish_rate_hz (node clock), after a frame's hands are out (never delays them)."""
        rate = self._param("map_publish_rate_hz")
        now_ns = self.get_clock().now().nanoseconds
        due = now_ns - self._last_map_ns >= NS_PER_S / rate if rate > 0 else False
        if not due and now_ns >= self._last_map_ns:  # (a clock that went back publishes at once)
            return
        self._last_map_ns = now_ns
        with self._lock:
            if self._processor is None:
                return
            cloud = self._processor.scene_map_msg(stamp_ns)
        self._outputs["scene_map"].publish(cloud)

    # ------------------------------------------------------------------ diagnostics

    def _reset_stats(self) -> None:
        super()._reset_stats()
        self._received = {"image": 0, "camera_info": 0, "depth": 0}
        self._input_rate = RateMeter(window_s=5.0)
        self._processed_rate = RateMeter(window_s=5.0)
        self._stage_ms: deque[dict[str, float]] = deque(maxlen=PROCESSING_WINDOW)
        self._processed = 0
        self._dropped_no_info = 0
        self._camera_info: CameraInfo | None = None
        self._without_pose = 0
        self._hands_tracked = 0

    def stage_times_ms(self) -> dict[str, float]:
        """Mean milliseconds per stage over the last PROCESSING_WINDOW frames (EgoMessages.timings_ms: the
        pipeline's stages, decode, messages, publish, overlay, map publish)."""
        frames = list(self._stage_ms)
        names = dict.fromkeys(name for timings in frames for name in timings)
        return {name: sum(t.get(name, 0.0) for t in frames) / len(frames) for name in names}

    def received_counts(self) -> dict[str, int]:
        """Messages taken per input since the node started (what DDS delivered to this node)."""
        return dict(self._received)

    def dropped_frames(self) -> int:
        """Images not processed: replaced while the worker was busy, left unpaired (no depth within the
        tolerance), or before any camera_info."""
        unpaired = 0 if self._pairer is None else self._pairer.dropped["image"]
        return self._dropped_busy + unpaired + self._dropped_no_info

    def _publish_diagnostics(self) -> None:
        publisher = self._outputs.get("diagnostics")
        if publisher is None:
            return
        now_ns = self.get_clock().now().nanoseconds
        idle = self._inputs and self._received["image"] == 0
        input_hz, processed_hz = self._input_rate.rate_hz(now_ns), self._processed_rate.rate_hz(now_ns)
        unconnected = self.inputs_without_publisher()
        condition = overload_condition(input_hz, processed_hz)
        if idle:
            missing = f" (no publisher on {', '.join(unconnected)})" if unconnected else ""
            condition = f"no image received yet{missing}"
        level, message = self._overall_status(condition)
        timings = self.processing_times_ms()
        values = {
            "input_rate_hz": input_hz,
            "processed_rate_hz": processed_hz,
            "processing_ms": sum(timings) / len(timings) if timings else 0.0,
            "inputs_without_publisher": ", ".join(unconnected) or "none",
            "frames_received": self._received["image"],
            "frames_processed": self._processed,
            "dropped_frames": self.dropped_frames(),
            "input_errors": self._input_errors,
            "camera_pose_source": self._param("camera_pose_source"),
            "frames_without_pose": self._without_pose,
            "hands_tracked": self._hands_tracked,
            "backend": self._param("backend"),
            **{f"stage_{name}_ms": value for name, value in self.stage_times_ms().items()},
        }
        status = diagnostic_status(f"{self.get_name()}: ego reconstruction", self.get_fully_qualified_name(), level,
                                   message, values)  # fmt: skip
        publisher.publish(diagnostic_array([status], now_ns))

    # ------------------------------------------------------------------ services

    def _on_save(self, request: SaveToPath.Request, response: SaveToPath.Response) -> SaveToPath.Response:
        directory = request.directory or self._param("save_directory")
        try:
            with self._lock:
                files = self._processor.save(directory)
        except (OSError, ValueError) as error:
            response.success, response.message = False, f"save to {directory!r} failed: {error}"
            return response
        response.success, response.files = True, [str(path) for path in files]
        response.message = f"saved {len(files)} files to {directory}"
        return response

    def _on_reset(self, request: Reset.Request, response: Reset.Response) -> Reset.Response:
        everything = not (request.map or request.trajectories or request.calibration)
        with self._lock:
            self._processor.reset(map_and_world=everything or request.map,
                                  trajectories=everything or request.trajectories)  # fmt: skip
        if self._pairer is not None and (everything or request.map):
            self._pairer.reset()
        response.success = True
        response.message = "reset " + ("everything" if everything else ", ".join(
            name for name in ("map", "trajectories") if getattr(request, name)) or "nothing (no calibration here)")
        return response

    def _on_trajectory(self, request: GetHandTrajectory.Request,
                       response: GetHandTrajectory.Response) -> GetHandTrajectory.Response:
        side: HandSide | None = None
        if request.side != GetHandTrajectory.Request.SIDE_ANY:
            if request.side not in MSG_TO_SIDE:
                response.success, response.message = False, f"side must be 0, 1 or 255, got {request.side}"
                return response
            side = MSG_TO_SIDE[request.side]
        start = time_ns(request.start)
        end = time_ns(request.end) or self.get_clock().now().nanoseconds
        with self._lock:
            response.hands = self._processor.trajectory_msgs(start, end, request.track_id, side)
        response.success, response.message = True, f"{len(response.hands)} hand states"
        return response


def main(args: list[str] | None = None) -> None:
    """`ros2 run hand_scene_perception ego_reconstruction`: spin until Ctrl-C or SIGTERM."""
    spin_node(EgoReconstructionNode, args)

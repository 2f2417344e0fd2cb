"""The ``multiview_fusion`` lifecycle node: N uncalibrated cameras in, fused hands, the rig calibration, each
camera's estimated CameraInfo and TF out.

Topics are derived from the camera names (parameter ``cameras``), relative so launch remaps them:
``<name>/image`` (sensor_msgs/Image) and ``<name>/camera_info`` (optional: a camera without it gets an
estimated focal length; once it arrives it is used) in, ``<name>/camera_info_estimated`` out. One list keeps names,
topics, frames and the calibration file's entries in step; a second list of topics could drift from it.

Thin by design, like the ego node: the message ↔ pipeline step is
:class:`~hand_scene_perception.ros.multiview.processor.MultiviewMessageProcessor`, the fusion is
pipelines/multiview.py. Here: parameters, lifecycle, QoS, synchronisation of the N streams (core/sync.py: a
camera that freezes, drops out or lags beyond ``view_timeout_s`` is left out and the others go on), the two-slot
mailbox and worker thread (node_base.py: the newest set wins, latency never builds up), diagnostics and services.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.lifecycle import State, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from hand_scene_msgs.msg import HandArray, MultiCameraCalibration
from hand_scene_msgs.srv import LoadFromPath, Reset, SaveToPath

from ...backends.base import HandExpert
from ...core.rig_calibration import RigState
from ...core.sync import ViewSynchronizer
from ...pipelines.multiview import MultiviewConfig
from ..conversions import NS_PER_S, InputError, time_ns
from ..diagnostics import ERROR, OK, WARN, RateMeter, diagnostic_array, diagnostic_status
from ..launch.plan import DEFAULT_CAMERAS, MULTIVIEW_NODE_NAME
from ..node_base import (
    COMMON_CHOICES,
    COMMON_PARAMETERS,
    HAND_STAGE_PARAMETERS,
    LATCHED_QOS,
    PipelineNode,
    float_param,
    spin_node,
    text_param,
)
from .processor import (
    CalibrationFileError,
    MultiviewMessageProcessor,
    MultiviewMessages,
    RigNotStartedError,
    check_rig_names,
    default_camera_frames,
)

CALIBRATION_FILE_NAME = "rig_calibration.yaml"
# Before the rig starts, a camera whose CameraInfo topic has a publisher is waited for this many images.
START_INFO_IMAGES = 3

# name: (default, descriptor). [configure]: read at configure; [live]: takes effect at once.
PARAMETERS: dict[str, tuple[object, ParameterDescriptor]] = {
    "cameras": (list(DEFAULT_CAMERAS), text_param(
        "camera names; camera <name> subscribes <name>/image and <name>/camera_info and publishes "
        "<name>/camera_info_estimated; the first is the reference camera [configure]")),
    "camera_frames": ([], ParameterDescriptor(
        description="optical frame per camera, in the cameras' order; empty: <name>_optical_frame [configure]",
        dynamic_typing=True)),
    "reference_frame": ("", text_param("frame of the fused hands and parent of the cameras' TF; empty: the first "
                                       "camera's optical frame [configure]")),
    "sync_tolerance_s": (0.02, float_param("largest stamp gap between the images of one fused set, s "
                                           "[configure]", 0.0, 0.5)),
    "view_timeout_s": (0.5, float_param("a camera whose newest image is this much older than the others' is "
                                        "left out of the sets until it catches up, s [configure]", 0.05, 10.0)),
    **HAND_STAGE_PARAMETERS,
    "calibration_file": ("", text_param("rig calibration YAML loaded at configure (written by "
                                        "~/save_calibration); empty: self-calibrate from scratch [configure]")),
    "publish_markers": (True, text_param("publish hand_markers (built only while it has subscribers) [live]")),
    "calibration_period_s": (1.0, float_param("period at which calibration is republished besides every change, "
                                              "s [configure]", 0.1, 60.0)),
    "save_directory": ("multiview_outputs", text_param(
        f"directory ~/save_calibration writes {CALIBRATION_FILE_NAME} into when the request names none [live]")),
    "save_calibration_on_exit": (False, text_param(
        f"write {CALIBRATION_FILE_NAME} into save_directory (atomically) when the node stops: SIGINT, SIGTERM, "
        "lifecycle shutdown or cleanup [live]")),
    **COMMON_PARAMETERS,
}  # fmt: skip
_CHOICES = COMMON_CHOICES


class MultiviewFusionNode(PipelineNode):
    """See the module notes; ``detectors`` (one per camera) replace the embedded experts (tests inject oracles)."""

    PARAMETERS = PARAMETERS
    CHOICES = _CHOICES
    TIME_JUMP_CONSEQUENCE = "synchronisation restarted (calibration kept)"
    STRING_LISTS = ("cameras", "camera_frames")

    def __init__(
        self, node_name: str = MULTIVIEW_NODE_NAME, *, detectors: Sequence[HandExpert] | None = None, **kwargs
    ) -> None:
        self._detectors = detectors  # read by on_configure, which autostart runs inside PipelineNode.__init__
        super().__init__(node_name, **kwargs)

    def _init_state(self) -> None:
        self._names: list[str] = []
        self._sync: ViewSynchronizer | None = None
        self._infos: dict[int, CameraInfo] = {}
        self._info_topics: list[str] = []
        self._calibration_file_status = "none"
        self._reset_stats()

    # ------------------------------------------------------------------ parameters

    def _rig(self) -> tuple[list[str], list[str], str]:
        """(camera names, their frames, reference frame) from the parameters; ValueError when they are unusable,
        including two cameras whose topics resolve (after remapping) to the same name."""
        names = list(self._param("cameras") or [])
        frames = list(self._param("camera_frames") or []) or default_camera_frames(names)
        check_rig_names(names, frames)
        topics: dict[str, str] = {}
        for name in names:
            for stream in ("image", "camera_info"):
                resolved = self.resolve_topic_name(f"{name}/{stream}")
                if resolved in topics:
                    raise ValueError(f"{name}/{stream} and {topics[resolved]} both resolve to {resolved}: each camera "
                                     "needs its own topics (check the remappings)")  # fmt: skip
                topics[resolved] = f"{name}/{stream}"
        return names, frames, self._param("reference_frame") or frames[0]

    def _config(self) -> MultiviewConfig:
        return MultiviewConfig(**self._hand_stage())

    # ------------------------------------------------------------------ lifecycle

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Check the rig, load the hand model and detectors, create publishers and services, load the calibration
        file (a file that does not fit is reported; the rig then calibrates itself)."""
        try:
            names, frames, reference = self._rig()
            if not self._param("view_timeout_s") > self._param("sync_tolerance_s"):
                raise ValueError("view_timeout_s must be larger than sync_tolerance_s")
            processor = MultiviewMessageProcessor(
                names, self._config(), camera_frames=frames, reference_frame=reference,
                marker_lifetime_s=self._param("marker_lifetime_s"), detectors=self._detectors,
            )  # fmt: skip
        except (ValueError, RuntimeError, OSError) as error:
            self.get_logger().error(f"configure failed: {error}")
            return TransitionCallbackReturn.FAILURE
        self._processor, self._names, self._infos = processor, names, {}
        self._reset_stats()
        self._outputs = {
            "hands": self.create_lifecycle_publisher(HandArray, "hands", 10),
            "hand_markers": self.create_lifecycle_publisher(MarkerArray, "hand_markers", 10),
            "calibration": self.create_lifecycle_publisher(MultiCameraCalibration, "calibration", LATCHED_QOS),
            "tf": self.create_publisher(TFMessage, "/tf", 100),
            "diagnostics": self.create_publisher(DiagnosticArray, "/diagnostics", 10),
        }
        for name in names:
            self._outputs[f"{name}/camera_info_estimated"] = self.create_lifecycle_publisher(
                CameraInfo, f"{name}/camera_info_estimated", 10)  # fmt: skip
        group = MutuallyExclusiveCallbackGroup()
        self._own_services = [
            self.create_service(SaveToPath, "~/save_calibration", self._on_save, callback_group=group),
            self.create_service(LoadFromPath, "~/load_calibration", self._on_load, callback_group=group),
            self.create_service(Reset, "~/reset_calibration", self._on_reset, callback_group=group),
        ]
        self._own_timers = [
            self.create_steady_timer(self._param("diagnostics_period_s"), self._publish_diagnostics),
            self.create_timer(self._param("calibration_period_s"), self._republish_calibration),
        ]
        self.get_logger().info(f"configured: cameras {names} (frames {frames}), reference frame {reference}, "
                               f"hand model {processor.pipeline.model.name}")  # fmt: skip
        if len(names) == 1:
            self._report(WARN, f"one camera ({names[0]}): hands are its monocular result, no multi-view fusion")
        calibration_file = self._param("calibration_file")
        if calibration_file:
            self._load(calibration_file)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Subscribe to every camera and start the worker. The CameraInfo subscriptions come first: when an image
        and its CameraInfo wait together, the executor takes them in creation order, so the CameraInfo is there
        when the image completes a set."""
        result = super().on_activate(state)
        self._sync = ViewSynchronizer(self._names, int(self._param("sync_tolerance_s") * NS_PER_S),
                                      int(self._param("view_timeout_s") * NS_PER_S),
                                      on_time_jump=self._on_time_jump)  # fmt: skip
        for index, name in enumerate(self._names):
            self._subscribe(CameraInfo, f"{name}/camera_info", self._info_receiver(index),
                            self._param("qos_camera_info"))  # fmt: skip
        self._info_topics = [subscription.topic_name for subscription in self._inputs]
        for index, name in enumerate(self._names):
            self._subscribe(Image, f"{name}/image", self._image_receiver(index), self._param("qos_image"))
        self._start_worker(self._work, "multiview-node-worker")
        return result

    # ------------------------------------------------------------------ input

    def _image_receiver(self, index: int):
        name = self._names[index]

        def receive(msg: Image) -> None:
            self._received[index] += 1
            self._rates[index].tick(self.get_clock().now().nanoseconds)
            matched = self._sync.push(name, time_ns(msg.header.stamp), msg)
            if matched is not None:
                self._post([matched[camera] for camera in self._names])

        return receive

    def _info_receiver(self, index: int):
        def receive(msg: CameraInfo) -> None:
            self._infos[index] = msg  # the latest describes every image (checked against each image's size)

        return receive

    # ------------------------------------------------------------------ worker

    def _work(self) -> None:
        """Fuse the newest synchronised set, publish, repeat; a set that cannot be used is reported and skipped."""
        for images in self._mail():
            taken = time.perf_counter()
            infos = [self._infos.get(index) for index in range(len(self._names))]
            if self._info_pending(images, infos):
                continue
            markers = self._param("publish_markers") and self._outputs["hand_markers"].get_subscription_count() > 0
            try:
                with self._lock:
                    if self._processor is None:
                        return
                    out = self._processor.process(images, infos, markers=markers,
                                                  now_ns=self.get_clock().now().nanoseconds)  # fmt: skip
            except RigNotStartedError as error:
                self._report(WARN, str(error))
                continue
            except InputError as error:
                self._input_errors += 1
                self._report(ERROR, f"set skipped: {error}")
                continue
            except Exception as error:  # a stage failed (a detector, the fit): that set is lost, never the worker
                self._processing_errors += 1
                self._report(ERROR, f"set failed: {type(error).__name__}: {error}")
                continue
            self._publish(out, taken)

    def _info_pending(self, images: list, infos: list) -> bool:
        """Before the rig starts, hold a set back while a camera whose driver publishes CameraInfo (the topic has a
        publisher) has sent images but no CameraInfo yet, for up to START_INFO_IMAGES of its images: drivers send
        the image first, and a camera started without its CameraInfo would be re-calibrated when it arrives."""
        if self._processor is None or self._processor.started:
            return False
        waiting = [
            name
            for index, name in enumerate(self._names)
            if images[index] is not None and infos[index] is None and self._received[index] < START_INFO_IMAGES
            and self.count_publishers(self._info_topics[index]) > 0
        ]  # fmt: skip
        if waiting:
            self._report(WARN, f"waiting for the CameraInfo of {waiting} before starting the rig")
        return bool(waiting)

    def _publish(self, out: MultiviewMessages, taken: float) -> None:
        """Cameras first (CameraInfo, TF, calibration), then the hands: a consumer that transforms the hands into
        another camera's frame finds the frame's TF already sent."""
        outputs = self._outputs
        for name, info in out.camera_infos.items():
            outputs[f"{name}/camera_info_estimated"].publish(info)
        if out.transforms:
            outputs["tf"].publish(TFMessage(transforms=out.transforms))
        if out.calibration is not None:
            outputs["calibration"].publish(out.calibration)
        outputs["hands"].publish(out.hands)
        if out.markers:
            outputs["hand_markers"].publish(out.markers.serialized())
        self._fused += 1
        self._hands = len(out.result.hands)
        if out.result.hands:  # HandArray carries no monocular flag: consumers read these counts from diagnostics
            self._sets_with_hands += 1
            self._monocular_sets += all(hand.monocular for hand in out.result.hands)
        self._processing_ms.append(1e3 * (time.perf_counter() - taken))
        if out.calibration_file_error is not None:
            self._calibration_file_status = out.calibration_file_error
            self._report(ERROR, out.calibration_file_error)
        for error in out.view_errors:
            self._input_errors += 1
            self._report(ERROR, error)
        for warning in out.warnings:
            self._report(WARN, warning)

    def _republish_calibration(self) -> None:
        """The calibration at calibration_period_s (besides every change), stamped with the last fused frame."""
        with self._lock:
            processor = self._processor
            if processor is None or processor.last_stamp_ns is None:
                return
            msg = processor.calibration_msg(processor.last_stamp_ns)
        if msg is not None:
            self._outputs["calibration"].publish(msg)

    # ------------------------------------------------------------------ diagnostics

    def _reset_stats(self) -> None:
        super()._reset_stats()
        count = len(self._names)
        self._received = [0] * count
        self._rates = [RateMeter(window_s=5.0) for _ in range(count)]
        self._fused = 0
        self._sets_with_hands = 0
        self._monocular_sets = 0
        self._processing_errors = 0
        self._dropped_busy = 0
        self._hands = 0

    def received_counts(self) -> dict[str, int]:
        """Images taken per camera since configure (what DDS delivered to this node)."""
        return dict(zip(self._names, self._received, strict=True))

    def _publish_diagnostics(self) -> None:
        now_ns = self._diagnostics_now()
        if now_ns is None:
            return
        publisher, processor = self._outputs["diagnostics"], self._processor
        reason = "" if processor.pipeline.calibrator is None else processor.pipeline.calibrator.reason
        condition = "no fused set yet" if self._inputs and self._fused == 0 else None
        if condition is None and reason:
            condition = f"not calibrated yet, hands seen there are monocular: {reason}"
        level, message = self._overall_status(condition)
        timings = self.processing_times_ms()
        sync = self._sync
        values = {
            "cameras": len(self._names),
            "calibration_state": RigState(processor.state).name.lower(),
            "calibration_reason": reason or "none",
            "calibration_file": self._calibration_file_status,
            "inputs_without_publisher": ", ".join(self.inputs_without_publisher()) or "none",
            "fused_sets": self._fused,
            "sets_with_hands": self._sets_with_hands,
            "monocular_sets": self._monocular_sets,
            "processing_ms": sum(timings) / len(timings) if timings else 0.0,
            "dropped_busy": self._dropped_busy,
            "input_errors": self._input_errors,
            "processing_errors": self._processing_errors,
            "hands": self._hands,
            "time_jumps": 0 if sync is None else sync.time_jumps,
        }
        fqn = self.get_fully_qualified_name()
        statuses = [diagnostic_status(f"{self.get_name()}: multiview fusion", fqn, level, message, values)]
        estimates = {estimate.name: estimate for estimate in processor.pipeline.camera_estimates()}
        live = set(self._names) if sync is None else set(sync.live())
        for index, name in enumerate(self._names):
            estimate = estimates.get(name)
            camera_level, camera_message = OK, "in sync"
            if self._received[index] == 0:
                camera_level, camera_message = WARN, "no image received yet"
            elif name not in live:
                camera_level, camera_message = WARN, "left out: its images lag the others by over the view timeout"
            elif estimate is not None and estimate.hold:
                camera_level, camera_message = WARN, f"not calibrated yet: {estimate.hold}"
            camera_values = {
                "input_rate_hz": self._rates[index].rate_hz(now_ns),
                "images": self._received[index],
                "sync_dropped": 0 if sync is None else sync.dropped[name],
                "sets_left_out": 0 if sync is None else sync.left_out[name],
                "camera_info": "received" if index in self._infos else "none (focal length estimated)",
                "calibrated": estimate is not None and estimate.T_ref_cam is not None,
                "converged": estimate is not None and estimate.converged,
                "reprojection_error_px": float("nan") if estimate is None else estimate.reprojection_error_px,
                "observations": 0 if estimate is None else estimate.observations,
            }
            statuses.append(diagnostic_status(f"{self.get_name()}: camera {name}", fqn, camera_level, camera_message,
                                              camera_values))  # fmt: skip
        publisher.publish(diagnostic_array(statuses, now_ns))

    # ------------------------------------------------------------------ services

    def _load(self, path: str) -> tuple[bool, str]:
        """Load a calibration file; (success, message); a failure is also reported (diagnostics + log)."""
        try:
            with self._lock:
                applied = self._processor.load_calibration(Path(path).expanduser())
                msg = self._processor.calibration_msg(self._processor.last_stamp_ns) if applied else None
        except (FileNotFoundError, CalibrationFileError) as error:
            self._calibration_file_status = f"refused: {error}"
            self._report(ERROR, f"{error}; self-calibrating instead")
            return False, str(error)
        if msg is not None:
            self._outputs["calibration"].publish(msg)
        message = f"loaded {path}" if applied else f"{path} is checked and applied with the first set of images"
        self._calibration_file_status = message
        self.get_logger().info(message)
        return True, message

    def _save(self, directory: Path) -> Path:
        """Write the rig calibration into ``directory`` (created if needed), atomically; OSError, RuntimeError
        (nothing fused yet) or ValueError when it cannot."""
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            return self._processor.save_calibration(directory / CALIBRATION_FILE_NAME)

    def _release(self) -> None:
        """Save the calibration first when save_calibration_on_exit asks for it (a stop must not lose what the rig
        learnt), then free the models, threads, publishers, services and timers."""
        if self._processor is not None and self._param("save_calibration_on_exit"):
            directory = Path(self._param("save_directory")).expanduser()
            logger = self.get_logger()
            try:
                logger.info(f"saved the rig calibration to {self._save(directory)} on exit")
            except (OSError, RuntimeError, ValueError) as error:
                logger.error(f"save on exit to {str(directory)!r} failed: {error}")
        super()._release()

    def _on_save(self, request: SaveToPath.Request, response: SaveToPath.Response) -> SaveToPath.Response:
        directory = Path(request.directory or self._param("save_directory")).expanduser()
        try:
            path = self._save(directory)
        except (OSError, RuntimeError, ValueError) as error:
            response.success, response.message = False, f"save to {str(directory)!r} failed: {error}"
            return response
        response.success, response.files = True, [str(path)]
        response.message = f"saved the rig calibration to {path}"
        return response

    def _on_load(self, request: LoadFromPath.Request, response: LoadFromPath.Response) -> LoadFromPath.Response:
        response.success, response.message = self._load(request.path)
        return response

    def _on_reset(self, request: Reset.Request, response: Reset.Response) -> Reset.Response:
        if (request.map or request.trajectories) and not request.calibration:
            response.success, response.message = True, "reset nothing (this node keeps only the calibration)"
            return response
        with self._lock:
            self._processor.reset_calibration()
            msg = self._processor.calibration_msg(self._processor.last_stamp_ns or 0)
        if msg is not None:
            self._outputs["calibration"].publish(msg)
        self._calibration_file_status = "reset: self-calibrating"
        response.success, response.message = True, "reset the calibration: self-calibrating from the next images"
        return response


def main(args: list[str] | None = None) -> None:
    """`ros2 run hand_scene_perception multiview_fusion`: spin until Ctrl-C or SIGTERM."""
    spin_node(MultiviewFusionNode, args)

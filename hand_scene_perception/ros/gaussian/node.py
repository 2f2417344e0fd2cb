"""The ``gaussian_hands`` lifecycle node: the ego node's tracked hands in, each hand's fitted Gaussian avatar
rendered out (Hand-4DGS-style mesh-guided Gaussians, gaussian/).

In: ``hands`` (hand_scene_msgs/HandArray with vertices: the ego node's), ``image`` and ``camera_info`` (the camera
that filmed them, for the overlay), TF (the camera's pose in the hands' frame at their stamp). Out, each built only
while it has subscribers: ``render`` (sensor_msgs/Image: the hands seen by a virtual camera set by the ``render_*``
parameters, centred on the hands) with ``render/camera_info`` and the TF from the filming camera to
``render_frame``; ``overlay`` (the avatars drawn over the image of the hands' stamp); ``gaussians/left`` and
``gaussians/right`` (sensor_msgs/PointCloud2 in the hands' frame, fields x y z rgb opacity scale_x scale_y scale_z
rot_w rot_x rot_y rot_z: ros/gaussian/processor.py GAUSSIAN_FIELDS). The avatars are files written by
``hand-scene fit gaussian`` (parameter ``avatar_files``), loaded at configure: a file that cannot be used fails the
configure with the reason (nothing else is touched). Fitting them online from the stream is not done yet.

Thin like the other nodes: the drawing is
:class:`~hand_scene_perception.ros.gaussian.processor.GaussianMessageProcessor` and gaussian/renderer.py; here:
parameters, lifecycle, the two-slot mailbox and worker (node_base.py), diagnostics.
A hand that cannot be drawn (no vertices, another hand model, no avatar for its side, NaN) is skipped with a
throttled WARN and counted; the others are drawn.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import State, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_msgs.msg import TFMessage

from hand_scene_msgs.msg import HandArray

from ...core.hand_model import create_hand_model
from ...gaussian.renderer import AvatarRenderer, ViewSpec
from ..conversions import InputError, time_ns
from ..diagnostics import ERROR, WARN, RateMeter, diagnostic_array, diagnostic_status, overload_condition
from ..launch.plan import GAUSSIAN_NODE_NAME
from ..node_base import (
    COMMON_CHOICES,
    COMMON_PARAMETERS,
    HAND_MODEL_PARAMETERS,
    PipelineNode,
    float_param,
    int_param,
    spin_node,
    text_param,
)
from ..tf_lookup import transform_lookup
from .processor import GaussianMessageProcessor

# Images kept to find the one of a HandArray's stamp (the ego node publishes hands tens of ms after their image).
IMAGE_CACHE = 10

PARAMETERS: dict[str, tuple[object, ParameterDescriptor]] = {
    "avatar_files": ([], ParameterDescriptor(
        description="avatar files written by `hand-scene fit gaussian` (left/right.avatar.pt), one per side "
                    "[configure]", dynamic_typing=True)),
    **HAND_MODEL_PARAMETERS,
    "render_width": (256, int_param("width of the render image, pixels [configure]", 8, 4096)),
    "render_height": (256, int_param("height of the render image, pixels [configure]", 8, 4096)),
    "render_fov_deg": (60.0, float_param("horizontal field of view of the virtual camera, degrees [configure]",
                                         1.0, 170.0)),
    "render_yaw_deg": (0.0, float_param("virtual camera turned about the hands' centre, about the filming camera's "
                                        "y axis, degrees [configure]", -180.0, 180.0)),
    "render_pitch_deg": (0.0, float_param("and about its x axis, degrees [configure]", -89.0, 89.0)),
    "render_distance_m": (0.0, float_param("virtual camera's distance to the hands' centre, m (0: the filming "
                                           "camera's) [configure]", 0.0, 100.0)),
    "render_frame": ("gaussian_render_optical_frame", text_param("optical frame of the render image (TF from the "
                                                                  "filming camera) [configure]")),
    "tf_timeout_s": (0.05, float_param("longest wait for the camera's pose at the hands' stamp, s [configure]",
                                       0.0, 2.0)),
    "qos_hands": ("AUTO", text_param("hands subscription QoS (see qos_image) [configure]")),
    **{name: COMMON_PARAMETERS[name] for name in ("qos_image", "qos_camera_info", "diagnostics_period_s",
                                                    "autostart")},
}  # fmt: skip
_CHOICES = {**COMMON_CHOICES, "qos_hands": COMMON_CHOICES["qos_image"]}


class GaussianHandsNode(PipelineNode):
    """See the module notes."""

    PARAMETERS = PARAMETERS
    CHOICES = _CHOICES
    TIME_JUMP_CONSEQUENCE = "cached images dropped"
    STRING_LISTS = ("avatar_files",)

    def __init__(self, node_name: str = GAUSSIAN_NODE_NAME, **kwargs) -> None:
        super().__init__(node_name, **kwargs)

    def _init_state(self) -> None:
        self._images: deque[tuple[int, Image]] = deque(maxlen=IMAGE_CACHE)
        self._images_lock = threading.Lock()  # the executor adds images while the worker looks one up
        self._info: CameraInfo | None = None
        self._reset_stats()

    def _reset_stats(self) -> None:
        super()._reset_stats()
        self._received = 0
        self._input_rate = RateMeter(window_s=5.0)
        self._processed_rate = RateMeter(window_s=5.0)
        self._rendered = 0
        self._skipped_hands = 0
        self._processing_errors = 0
        self._dropped_busy = 0

    # ------------------------------------------------------------------ lifecycle

    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Load the hand model and the avatars; create the publishers and the TF listener."""
        try:
            files = [str(path) for path in (self._param("avatar_files") or []) if str(path).strip()]
            if not files:
                raise ValueError("avatar_files is empty: fit avatars with `hand-scene fit gaussian VIDEO --out DIR` "
                                 "and list DIR/right.avatar.pt (and left)")  # fmt: skip
            model = create_hand_model(self._param("hand_model"), self._param("mano_dir") or None)
            renderer = AvatarRenderer.from_files(model, files)
            view = ViewSpec(self._param("render_width"), self._param("render_height"), self._param("render_fov_deg"),
                            self._param("render_yaw_deg"), self._param("render_pitch_deg"),
                            self._param("render_distance_m"))  # fmt: skip
        except (ValueError, FileNotFoundError, RuntimeError, OSError) as error:
            self.get_logger().error(f"configure failed: {error}")
            return TransitionCallbackReturn.FAILURE
        self._processor = GaussianMessageProcessor(renderer, view, self._param("render_frame"),
                                                   transform_lookup(self), self._param("tf_timeout_s"))  # fmt: skip
        self._reset_stats()
        self._outputs = {
            "render": self.create_lifecycle_publisher(Image, "render", 5),
            "render/camera_info": self.create_lifecycle_publisher(CameraInfo, "render/camera_info", 5),
            "overlay": self.create_lifecycle_publisher(Image, "overlay", 5),
            "gaussians/left": self.create_lifecycle_publisher(PointCloud2, "gaussians/left", 2),
            "gaussians/right": self.create_lifecycle_publisher(PointCloud2, "gaussians/right", 2),
            "tf": self.create_publisher(TFMessage, "/tf", 100),
            "diagnostics": self.create_publisher(DiagnosticArray, "/diagnostics", 10),
        }
        self._own_timers = [self.create_steady_timer(self._param("diagnostics_period_s"), self._publish_diagnostics)]
        self.get_logger().info(f"configured: avatars of the {', '.join(s.value for s in renderer.sides)} hand "
                               f"({model.name}), render {view.width}x{view.height}")  # fmt: skip
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Subscribe (camera_info and image before hands: an image is cached when its hands arrive) and start."""
        result = super().on_activate(state)
        self._images.clear()
        self._subscribe(CameraInfo, "camera_info", self._on_info, self._param("qos_camera_info"))
        self._subscribe(Image, "image", self._on_image, self._param("qos_image"))
        self._subscribe(HandArray, "hands", self._on_hands, self._param("qos_hands"))
        self._start_worker(self._work, "gaussian-node-worker")
        return result

    # ------------------------------------------------------------------ input

    def _on_info(self, msg: CameraInfo) -> None:
        self._info = msg

    def _on_image(self, msg: Image) -> None:
        stamp = time_ns(msg.header.stamp)
        with self._images_lock:
            jumped = self._images[-1][0] if self._images and stamp < self._images[-1][0] else None
            if jumped is not None:
                self._images.clear()
            self._images.append((stamp, msg))
        if jumped is not None:
            self._on_time_jump(jumped, stamp)

    def _image_at(self, stamp_ns: int) -> Image | None:
        with self._images_lock:
            return next((image for stamp, image in reversed(self._images) if stamp == stamp_ns), None)

    def _on_hands(self, msg: HandArray) -> None:
        self._received += 1
        self._input_rate.tick(self.get_clock().now().nanoseconds)
        self._post(msg)

    # ------------------------------------------------------------------ worker

    def _wanted(self) -> dict[str, bool]:
        outputs = self._outputs
        return {"render": outputs["render"].get_subscription_count() > 0,
                "overlay": outputs["overlay"].get_subscription_count() > 0,
                "clouds": any(outputs[f"gaussians/{side}"].get_subscription_count() > 0 for side in ("left", "right"))}

    def _work(self) -> None:
        """Draw the newest HandArray for the outputs someone listens to, publish, repeat."""
        for hands in self._mail():
            taken = time.perf_counter()
            try:
                wanted = self._wanted()
                if not any(wanted.values()):
                    continue  # nobody listens: nothing is drawn
                image = self._image_at(time_ns(hands.header.stamp)) if wanted["overlay"] else None
                with self._lock:
                    if self._processor is None:
                        return
                    out = self._processor.process(hands, image, self._info, **wanted)
            except InputError as error:
                self._input_errors += 1
                self._report(ERROR, f"hands skipped: {error}")
                continue
            except Exception as error:  # the renderer failed on this input: it is lost, never the worker
                self._processing_errors += 1
                self._report(ERROR, f"hands failed: {type(error).__name__}: {error}")
                continue
            if out.render_transform is not None:
                self._outputs["tf"].publish(TFMessage(transforms=[out.render_transform]))
            if out.render is not None:
                self._outputs["render/camera_info"].publish(out.render_info)
                self._outputs["render"].publish(out.render)
                self._rendered += 1
            if out.overlay is not None:
                self._outputs["overlay"].publish(out.overlay)
            for side, cloud in out.clouds.items():
                self._outputs[f"gaussians/{side}"].publish(cloud)
            self._processing_ms.append(1e3 * (time.perf_counter() - taken))
            self._processed_rate.tick(self.get_clock().now().nanoseconds)
            self._skipped_hands += len(out.skipped)
            for reason in out.skipped:
                self._report(WARN, f"hand not drawn: {reason}")
            for warning in out.warnings:
                self._report(WARN, warning)

    # ------------------------------------------------------------------ diagnostics

    def _publish_diagnostics(self) -> None:
        now_ns = self._diagnostics_now()
        if now_ns is None:
            return
        publisher, processor = self._outputs["diagnostics"], self._processor
        input_hz, processed_hz = self._input_rate.rate_hz(now_ns), self._processed_rate.rate_hz(now_ns)
        condition = "no hands received yet" if self._inputs and self._received == 0 else None
        condition = condition or overload_condition(input_hz, processed_hz)
        level, message = self._overall_status(condition)
        timings = self.processing_times_ms()
        values = {
            "avatars": ", ".join(side.value for side in processor.renderer.sides),
            "inputs_without_publisher": ", ".join(self.inputs_without_publisher()) or "none",
            "hand_arrays": self._received,
            "input_rate_hz": input_hz,
            "processed_rate_hz": processed_hz,
            "renders": self._rendered,
            "skipped_hands": self._skipped_hands,
            "processing_ms": sum(timings) / len(timings) if timings else 0.0,
            "dropped_busy": self._dropped_busy,
            "input_errors": self._input_errors,
            "processing_errors": self._processing_errors,
        }
        status = diagnostic_status(f"{self.get_name()}: gaussian hands", self.get_fully_qualified_name(), level,
                                   message, values)  # fmt: skip
        publisher.publish(diagnostic_array([status], now_ns))


def main(args: list[str] | None = None) -> None:
    """`ros2 run hand_scene_perception gaussian_hands`: spin until Ctrl-C or SIGTERM."""
    spin_node(GaussianHandsNode, args)

"""What every pipeline node here shares: parameter tables, input QoS words, the lifecycle teardown, the small
mailbox feeding a worker thread, throttled problem reports and ``main``.

The nodes (ros/ego/node.py, ros/multiview/node.py) differ in their inputs, outputs and services; the plumbing that
keeps latency from building up and keeps a bad input from stopping the node is the same and lives here once.
A subclass sets ``PARAMETERS`` (name: (default, descriptor)) and ``CHOICES`` (name: accepted words), initialises
its own fields in :meth:`_init_state`, and implements ``on_configure``/``on_activate`` and
:meth:`_publish_diagnostics`.
"""

from __future__ import annotations

import signal
import threading
import time
from abc import ABCMeta, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecyclePublisher, State, TransitionCallbackReturn
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.timer import Timer

from ..backends.registry import BACKEND_NAMES
from ..core.hand_model.factory import HAND_MODEL_NAMES
from ..core.threads import use_single_threaded_math
from .diagnostics import ERROR, OK, WARN

QOS_CHOICES = ("AUTO", "SENSOR_DATA", "SYSTEM_DEFAULT", "RELIABLE", "BEST_EFFORT")
# How often an AUTO input compares its reliability with what the topic's publishers offer (seconds).
QOS_FOLLOW_PERIOD_S = 1.0
LOG_THROTTLE_S = 5.0
# A bad input keeps the diagnostics at ERROR/WARN this long after the last one.
PROBLEM_HOLD_S = 5.0
# Frames whose processing times the diagnostics and benchmarks see.
PROCESSING_WINDOW = 100
# How often an idle worker checks that the node is still running (seconds).
IDLE_CHECK_S = 0.2
# Latched outputs (late subscribers still get the last message).
LATCHED_QOS = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)


def float_param(description: str, low: float, high: float, step: float = 0.0) -> ParameterDescriptor:
    """Descriptor of a floating-point parameter whose range rclpy enforces."""
    return ParameterDescriptor(
        description=description, floating_point_range=[FloatingPointRange(from_value=low, to_value=high, step=step)]
    )


def int_param(description: str, low: int, high: int) -> ParameterDescriptor:
    """Descriptor of an integer parameter whose range rclpy enforces."""
    return ParameterDescriptor(description=description, integer_range=[IntegerRange(from_value=low, to_value=high,
                                                                                   step=1)])  # fmt: skip


def text_param(description: str) -> ParameterDescriptor:
    """Descriptor of a parameter without a numeric range (strings, booleans, lists)."""
    return ParameterDescriptor(description=description)


# Parameters both pipeline nodes declare, with the same meaning (name: (default, descriptor)). [configure]: read at
# configure; [live]: takes effect at once; [start]: read once when the node starts.
HAND_MODEL_PARAMETERS: dict[str, tuple[object, ParameterDescriptor]] = {
    "hand_model": (HAND_MODEL_NAMES[0], text_param("open (package's own model) or mano (needs mano_dir) "
                                                   "[configure]")),
    "mano_dir": ("", text_param("folder with MANO_RIGHT/MANO_LEFT .pkl or .npz for hand_model mano [configure]")),
}  # fmt: skip
HAND_STAGE_PARAMETERS: dict[str, tuple[object, ParameterDescriptor]] = {
    "backend": (BACKEND_NAMES[0], text_param(
        f"hand expert: {', '.join(BACKEND_NAMES)} (embedded: MediaPipe's models bundled with its wheel, CPU) "
        "[configure]")),
    "max_hands": (2, int_param("most hands at once [configure]", 1, 4)),
    **HAND_MODEL_PARAMETERS,
}  # fmt: skip
COMMON_PARAMETERS: dict[str, tuple[object, ParameterDescriptor]] = {
    "marker_lifetime_s": (0.5, float_param("hand marker lifetime, s (0: forever) [configure]", 0.0, 60.0)),
    "qos_image": ("AUTO", text_param("image subscription QoS: " + ", ".join(QOS_CHOICES) + " (AUTO: reliable "
                                     "when every publisher offers it, else best effort) [configure]")),
    "qos_camera_info": ("AUTO", text_param("camera_info subscription QoS [configure]")),
    "diagnostics_period_s": (1.0, float_param("period of /diagnostics, s [configure]", 0.1, 60.0)),
    "autostart": (True, text_param("configure and activate on start (no lifecycle manager needed) [start]")),
}
COMMON_CHOICES: dict[str, Sequence[str]] = {"backend": BACKEND_NAMES, "hand_model": HAND_MODEL_NAMES,
                                            "qos_image": QOS_CHOICES, "qos_camera_info": QOS_CHOICES}


# Messages an input subscription keeps until the executor takes them. With one, a message is replaced whenever the
# executor thread waits for the interpreter lock longer than a frame period (the worker and the odometry thread run
# Python too), although the worker may be idle by then. Measured (2 cores, publisher in another process, reliable):
# the demo's node received 91-97 of 150 images with 1, 130-149 with 3; the multiview node on a 15 Hz two-camera rig
# 120 and 146 of 150 images per camera with 1, 146-150 with 3. Latency does not build up: the executor drains a
# backlog at once, the stamp synchronisers keep the newest set and the mailbox the newest MAILBOX_DEPTH of those.
INPUT_QUEUE_DEPTH = 3


def qos_profile(name: str, offered: Sequence[ReliabilityPolicy] = ()) -> QoSProfile:
    """Subscription QoS from its parameter word, keeping :data:`INPUT_QUEUE_DEPTH` messages; AUTO takes the
    reliability :func:`matched_reliability` gives for the ``offered`` reliabilities of the publishers."""
    if name == "AUTO":
        reliability = matched_reliability(offered)
    elif name == "SENSOR_DATA":
        reliability = qos_profile_sensor_data.reliability
    elif name in ("SYSTEM_DEFAULT", "RELIABLE"):
        reliability = ReliabilityPolicy.RELIABLE
    elif name == "BEST_EFFORT":
        reliability = ReliabilityPolicy.BEST_EFFORT
    else:
        raise ValueError(f"QoS must be one of {', '.join(QOS_CHOICES)}, got {name!r}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=INPUT_QUEUE_DEPTH, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)  # fmt: skip


def matched_reliability(offered: Sequence[ReliabilityPolicy]) -> ReliabilityPolicy:
    """RELIABLE when there are publishers and every one offers it, else BEST_EFFORT (which connects to any).

    Measured between two processes here (640x360 RGB at 30 Hz, Fast DDS): a best-effort reader got 65-76 % of a
    reliable camera's images (a lost fragment loses the whole image, whatever the shared-memory segment size), a
    reliable one 85-100 %; a reliable reader gets nothing from a best-effort camera, hence the match, as rosbag2
    does when it records."""
    if offered and all(policy == ReliabilityPolicy.RELIABLE for policy in offered):
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


class AutoQosInput:
    """An input subscription with QoS AUTO. When its publishers come to offer another reliability, a subscription
    with the matched one replaces it; the old one serves until the new one delivers, so the switch loses no frame
    and gives none twice (a message both deliver in between is a duplicate the stamp synchronisers drop)."""

    def __init__(self, node: Node, kind: type, topic: str, callback: Callable) -> None:
        self._node, self._kind, self._callback = node, kind, callback
        self.topic_name = node.resolve_topic_name(topic)
        self._retiring = None
        self.subscription = self._create(self._offered())

    def _offered(self) -> list[ReliabilityPolicy]:
        return [info.qos_profile.reliability for info in self._node.get_publishers_info_by_topic(self.topic_name)]

    def _create(self, offered: Sequence[ReliabilityPolicy]):
        def receive(msg) -> None:
            if self._retiring is not None and subscription is self.subscription:
                self._node.destroy_subscription(self._retiring)  # the new one delivers: the old one goes
                self._retiring = None
            if self._retiring is None or subscription is self._retiring:
                self._callback(msg)

        profile = qos_profile("AUTO", offered)
        subscription = self._node.create_subscription(self._kind, self.topic_name, receive, profile)
        return subscription

    def follow(self) -> None:
        """Re-subscribe when the matched reliability changed (no publisher: keep what served the last one)."""
        offered = self._offered()
        wanted = matched_reliability(offered)
        if not offered or wanted == self.subscription.qos_profile.reliability:
            return
        if self._retiring is not None:  # (changed again before the new one delivered)
            self._node.destroy_subscription(self._retiring)
        self._retiring, self.subscription = self.subscription, self._create(offered)
        self._node.get_logger().info(f"{self.topic_name}: subscribing {wanted.name.lower()} (QoS AUTO: what its "
                                     f"{len(offered)} publisher(s) offer)")  # fmt: skip

    def retire(self) -> None:
        """Destroy the subscription(s)."""
        for subscription in (self._retiring, self.subscription):
            if subscription is not None:
                self._node.destroy_subscription(subscription)
        self._retiring = None


class PipelineNode(LifecycleNode, metaclass=ABCMeta):
    """Lifecycle node plumbing shared by the pipeline nodes (see the module notes)."""

    PARAMETERS: Mapping[str, tuple[object, ParameterDescriptor]] = {}
    CHOICES: Mapping[str, Sequence[str]] = {}
    STRING_LISTS: tuple[str, ...] = ()  # list parameters whose items must be strings
    # What a backward stamp jump does to the node's state (said in the WARN it raises).
    TIME_JUMP_CONSEQUENCE = "synchronisation restarted"
    # Input sets waiting for the worker: two absorb a pair that arrives at once (the executor took both after a
    # wait for the interpreter lock) while bounding the latency a backlog can add to one frame period.
    MAILBOX_DEPTH = 2

    def __init__(self, node_name: str, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self._processor = None  # the subclass's message processor (has close())
        self._lock = threading.Lock()  # the processor: worker frames vs services
        self._mailbox_ready = threading.Condition()
        self._mailbox: deque[object] = deque(maxlen=self.MAILBOX_DEPTH)
        self._dropped_busy = 0
        self._worker: threading.Thread | None = None
        self._running = False
        self._inputs: list = []
        self._qos_timer = None
        self._own_timers: list = []
        self._own_services: list = []
        self._outputs: dict[str, object] = {}
        self._problem: tuple[int | bytes, str, float] | None = None  # (level, text, monotonic time)
        self._init_state()
        # Declared after the fields, with the choices check already in place so that values from a params file or
        # overrides are checked too: a rejected value raises here. The node destroys itself first: Jazzy's context
        # shutdown leaves a node alive (Kilted's destroys it), and its DDS endpoints would stay in the graph.
        try:
            self.add_on_set_parameters_callback(self._check_parameters)
            for name, (default, descriptor) in self.PARAMETERS.items():
                try:
                    self.declare_parameter(name, default, descriptor)
                except InvalidParameterTypeException as error:
                    # `-p rate:=0` gives an integer where a double is declared: say so instead of a traceback
                    hint = " (write a decimal point, e.g. 0.0)" if isinstance(default, float) else ""
                    raise ValueError(f"parameter {name} must be of type {type(default).__name__}{hint}: "
                                     f"{error}") from None
            if self._param("autostart") and self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()
        except BaseException:
            self.destroy_node()
            raise

    def _init_state(self) -> None:
        """The subclass's own fields, set before the parameters are declared and autostart configures."""

    def _reset_stats(self) -> None:
        """Start the statistics both nodes keep (a subclass adds its own and calls this)."""
        self._processing_ms: deque[float] = deque(maxlen=PROCESSING_WINDOW)
        self._input_errors = 0

    def processing_times_ms(self) -> list[float]:
        """The last PROCESSING_WINDOW frames' times in the node, from the mailbox to the outputs published (decode,
        pipeline, messages), milliseconds."""
        return list(self._processing_ms)

    def _on_time_jump(self, previous_ns: int, new_ns: int) -> None:
        """Stamps went backwards (a looped bag, a restarted simulator): WARN with what the node did about it."""
        jump_s = (previous_ns - new_ns) / 1e9
        self._report(WARN, f"image stamps went back {jump_s:.3f} s: {self.TIME_JUMP_CONSEQUENCE}")

    # ------------------------------------------------------------------ parameters

    def _check_parameters(self, parameters: Sequence[rclpy.Parameter]) -> SetParametersResult:
        """Reject words outside their choices and STRING_LISTS that are not lists of strings (ranges are enforced by
        the descriptors; a list parameter declared with dynamic typing has no type check of its own)."""
        for parameter in parameters:
            value = parameter.value
            if parameter.name in self.STRING_LISTS and value is not None and (
                    not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value)):
                return SetParametersResult(successful=False, reason=f"{parameter.name} must be a string list")
            choices = self.CHOICES.get(parameter.name)
            if choices is not None and parameter.value not in choices:
                return SetParametersResult(
                    successful=False, reason=f"{parameter.name} must be one of {', '.join(choices)}"
                )
        return SetParametersResult(successful=True)

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _hand_stage(self) -> dict[str, object]:
        """The HandStageConfig fields (pipelines/hand_estimate.py) from HAND_STAGE_PARAMETERS."""
        return {"backend": self._param("backend"), "max_hands": self._param("max_hands"),
                "hand_model": self._param("hand_model"), "mano_dir": self._param("mano_dir") or None}

    # ------------------------------------------------------------------ lifecycle

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Unsubscribe and stop the worker (the frame under way completes)."""
        self._unsubscribe()
        self._stop_worker()
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Free the models, publishers, services and timers."""
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Stop everything from any state."""
        self._unsubscribe()
        self._stop_worker()
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        """Stop the worker and free the models before the node goes."""
        self._stop_worker()
        self._release()
        super().destroy_node()

    def _subscribe(self, kind: type, topic: str, callback: Callable, qos_word: str) -> None:
        """Subscribe an input (kept in ``_inputs``: a subscription, or an :class:`AutoQosInput`). With QoS AUTO
        the reliability matches the topic's publishers now and follows them once a second (a camera started after
        the node)."""
        if qos_word != "AUTO":
            self._inputs.append(self.create_subscription(kind, topic, callback, qos_profile(qos_word)))
            return
        self._inputs.append(AutoQosInput(self, kind, topic, callback))
        if self._qos_timer is None:
            self._qos_timer = self.create_steady_timer(QOS_FOLLOW_PERIOD_S, self._follow_publishers)

    def create_steady_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        """A timer on the steady clock: it keeps ticking while sim time stands still or jumps (a paused bag, a
        simulator not started yet), so diagnostics still say what the node is waiting for."""
        return self.create_timer(period_s, callback, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def inputs_without_publisher(self) -> list[str]:
        """Input topics that no publisher is connected to yet, as this node's subscriptions see it (a misspelt
        topic, a camera not started, or discovery still under way: the publisher may already see this node)."""
        subscriptions = [entry.subscription if isinstance(entry, AutoQosInput) else entry for entry in self._inputs]
        return [s.topic_name for s in subscriptions if s.get_publisher_count() == 0]

    def _follow_publishers(self) -> None:
        for entry in self._inputs:
            if isinstance(entry, AutoQosInput):
                entry.follow()

    def _unsubscribe(self) -> None:
        if self._qos_timer is not None:
            self.destroy_timer(self._qos_timer)
            self._qos_timer = None
        for entry in self._inputs:
            if isinstance(entry, AutoQosInput):
                entry.retire()
            else:
                self.destroy_subscription(entry)
        self._inputs = []

    def _start_worker(self, target: Callable[[], None], name: str) -> None:
        self._running = True
        self._worker = threading.Thread(target=self._until_context_ends(target), name=name, daemon=True)
        self._worker.start()

    def _until_context_ends(self, target: Callable[[], None]) -> Callable[[], None]:
        """``target``, ending quietly when rclpy's context went down under it (Ctrl-C shuts the context down
        before the node can stop its worker, so a publish under way fails); other errors are raised."""

        def run() -> None:
            try:
                target()
            except Exception:
                if self.context.ok():
                    raise

        return run

    def _stop_worker(self) -> None:
        with self._mailbox_ready:
            self._running = False
            self._mailbox.clear()
            self._mailbox_ready.notify_all()
        if self._worker is not None:
            self._worker.join()
            self._worker = None

    def _release(self) -> None:
        for timer in self._own_timers:
            self.destroy_timer(timer)
        for service in self._own_services:
            self.destroy_service(service)
        for publisher in self._outputs.values():
            if isinstance(publisher, LifecyclePublisher):
                self.destroy_lifecycle_publisher(publisher)
            else:
                self.destroy_publisher(publisher)
        self._own_timers, self._own_services, self._outputs = [], [], {}
        with self._lock:
            if self._processor is not None:
                self._processor.close()
                self._processor = None

    # ------------------------------------------------------------------ mailbox (the newest MAILBOX_DEPTH inputs)

    def _post(self, item: object) -> None:
        """Hand an input set to the worker; when MAILBOX_DEPTH already wait, the oldest is dropped and counted."""
        with self._mailbox_ready:
            if len(self._mailbox) == self._mailbox.maxlen:
                self._dropped_busy += 1  # the worker is behind: the newest inputs win
            self._mailbox.append(item)
            self._mailbox_ready.notify()

    def _wait_for_mail(self) -> None:
        """Block until an input set waits or the node stops running."""
        with self._mailbox_ready:
            while self._running and not self._mailbox:
                self._mailbox_ready.wait(IDLE_CHECK_S)

    def _mail(self) -> Iterator[object]:
        """Each input set as it comes (waiting while none does), until the node stops running: a worker's loop."""
        while self._running:
            self._wait_for_mail()
            item = self._take_mail()
            if item is not None:
                yield item

    def _take_mail(self) -> object | None:
        """The oldest waiting input set (removed), or None when there is none or the node stopped."""
        with self._mailbox_ready:
            if not self._running or not self._mailbox:
                return None
            return self._mailbox.popleft()

    # ------------------------------------------------------------------ problems and diagnostics

    def _report(self, level: int | bytes, text: str) -> None:
        """Remember a problem for the diagnostics, log it (throttled) and publish diagnostics at once."""
        if not self.context.ok():
            return  # shutting down (Ctrl-C): nothing to log or publish to
        self._problem = (level, text, time.monotonic())
        logger = self.get_logger()
        if level == ERROR:  # one call site per severity: rclpy refuses a throttled site that changes severity
            logger.error(text, throttle_duration_sec=LOG_THROTTLE_S)
        else:
            logger.warning(text, throttle_duration_sec=LOG_THROTTLE_S)
        self._publish_diagnostics()

    def _held_problem(self) -> tuple[int | bytes, str] | None:
        """The last reported problem while it is recent (PROBLEM_HOLD_S), else None."""
        if self._problem is not None and time.monotonic() - self._problem[2] < PROBLEM_HOLD_S:
            return self._problem[0], self._problem[1]
        return None

    def _overall_status(self, condition: str | None) -> tuple[int | bytes, str]:
        """The node's diagnostics level and message: a recent problem first, else WARN ``condition`` (a state the
        node is in now, such as nothing arrived yet or more input than it can process; None: none), else OK."""
        problem = self._held_problem()
        if problem is not None:
            return problem
        return (WARN, condition) if condition is not None else (OK, "running")

    def _diagnostics_now(self) -> int | None:
        """The clock's time (ns) when the node is configured and can publish its diagnostics, else None."""
        if self._outputs.get("diagnostics") is None or self._processor is None:
            return None
        return self.get_clock().now().nanoseconds

    @abstractmethod
    def _publish_diagnostics(self) -> None:
        """Publish the node's /diagnostics status now (also called on every reported problem)."""


def restore_default_sigterm() -> None:
    """Give SIGTERM back its default disposition, so that rclpy's handler (installed by ``rclpy.init``) ends the node.

    Why: importing pycolmap (core/multiview_geometry.py, so the multiview node) installs glog's failure signal
    handler on SIGTERM, which prints a native stack trace and kills the process (status -15). rclpy's handler
    shuts the context down and then calls the handler it replaced, so with glog's there SIGTERM still aborts.
    Call it from the main thread after the node's modules are imported and before ``rclpy.init``.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def spin_node(
    factory: Callable[[], PipelineNode],
    args: list[str] | None = None,
    on_running: Callable[[PipelineNode], None] | None = None,
) -> None:
    """`ros2 run` and `hand-scene launch` body: start rclpy, create the node (``on_running`` is told), spin it until
    SIGINT or SIGTERM (Ctrl-C, `ros2 launch`, systemd), then tear down cleanly: the worker finishes its frame, the
    pipeline's threads and detectors are released, a save on exit is written, and the process exits 0."""
    restore_default_sigterm()
    use_single_threaded_math()  # `ros2 run` / `ros2 launch` start here, not through the hand-scene command
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        # Only remember it: rclpy's own handler (installed by rclpy.init, which calls this one) has already shut the
        # context down, which ends spin. Raising KeyboardInterrupt here instead landed wherever the main thread
        # was, e.g. half-way through an executor Task's construction (rclpy then printed "'Task' object has no
        # attribute '_exception'" from its __del__, seen once in the Kilted shutdown test).
        interrupted.set()

    previous_sigint = signal.signal(signal.SIGINT, on_sigint)  # rclpy's handler (rclpy.init) calls this one
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        if on_running is not None:
            on_running(node)
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # A signal can shut the context down between the executor's check and its wait set (rclpy raises
        # RCLError "the given context is not valid" then, seen once in ~20 SIGTERMs), or while the node is still
        # being built (its next rclpy call fails): stops like the others.
        if rclpy.ok() and not interrupted.is_set():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        signal.signal(signal.SIGINT, previous_sigint)

"""`hand-scene bench ros-ego`: the ego node at camera rate through DDS on localhost, measured end to end.

A camera publisher runs in its own process (``python -m hand_scene_perception.eval.ros_ego --publish ...``):
synthetic frames (one hand, the generator's 640x480 camera) at a fixed rate, stamped with the wall clock when
published (a reliable writer, like most drivers' defaults), optionally with depth. The node runs in this process
next to a listener; latency is the HandArray's arrival minus its image stamp (same machine clock). Phases: RGB with
the node's default SensorDataQoS inputs gives ``delivered_fraction`` and the latency percentiles; the same with
RELIABLE inputs gives ``*_reliable_input`` (best effort loses a whole 0.9 MB image when one UDP fragment is
dropped, a transport loss the node never sees: the two runs separate what the node does from what the transport
costs); RGB-D with mapping (RELIABLE inputs) gives ``rate_hz_rgbd``.
``map_publish_ms`` is the 500k-point scene map's encode + serialise time (ros/diagnostics.py).
The same publisher also serves the node's cross-process tests (``--stamp-offset-ns`` gives the generator's
own stamps, so an oracle detector can look the frames up).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..ros.launch.runner import ensure_local_discovery, use_shipped_dds_profile

# Frames before this many seconds after the first publish are warm-up (graph start, first keyframe): not counted.
WARMUP_S = 1.5
# Distinct frames rendered and played back and forth (the hand moves smoothly; stamps keep increasing).
RENDERED_FRAMES = 45
# Real video frames decoded up front and played back and forth (decoding while publishing would slow the camera).
VIDEO_FRAMES = 150
CAMERA_STREAMS = ("image", "camera_info", "depth")
_PUBLISHER_START_TIMEOUT_S = 60.0


def publish_camera(argv: Sequence[str] | None = None) -> int:
    """The camera publisher process: render, wait for the node's image subscription, publish, report as JSON."""
    parser = argparse.ArgumentParser(description=publish_camera.__doc__)
    parser.add_argument("--publish", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=RENDERED_FRAMES, help="frames rendered")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--hands", type=int, default=1)
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds (0: each rendered frame once)")
    parser.add_argument("--depth", action="store_true", help="also publish 32FC1 depth")
    parser.add_argument("--reliability", choices=("reliable", "best_effort"), default="reliable")
    parser.add_argument("--stamp-offset-ns", type=int, default=None,
                        help="stamp = offset + the generator's frame time (default: the wall clock)")
    parser.add_argument("--frame-id", default="camera_color_optical_frame")
    parser.add_argument("--image", default=None, help="publish this real image (RGB only) instead of synthetic frames")
    parser.add_argument("--video", default=None, help="publish this video's frames (decoded first) instead")
    parser.add_argument("--depth-dir", default=None, help="with --video: aligned depth per frame (as `hand-scene run`)")
    parser.add_argument("--max-frames", type=int, default=VIDEO_FRAMES, help="with --video: frames decoded")
    parser.add_argument("--namespace", default="", help="camera topics under this namespace (image_raw, ...)")
    args = parser.parse_args(argv)
    ensure_local_discovery(os.environ)
    use_shipped_dds_profile(os.environ)

    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from ..ros.bags.transport import camera_topics
    from ..ros.conversions import camera_info_msg, depth_msg, image_msg
    from ..synth.sequence import default_camera, generate_sequence

    if args.image is not None:
        from PIL import Image as PILImage

        rgbs = [np.asarray(PILImage.open(args.image).convert("RGB"))]
        camera = default_camera(rgbs[0].shape[1], rgbs[0].shape[0])
        depths, times = [], [0.0]
    elif args.video is not None:
        rgbs, depths = load_video_frames(Path(args.video), args.depth_dir and Path(args.depth_dir), args.max_frames)
        camera = default_camera(rgbs[0].shape[1], rgbs[0].shape[0])
        times = [index / args.rate for index in range(len(rgbs))]
    else:
        camera = default_camera(args.width, args.height)
        frames = list(generate_sequence(args.seed, args.frames, num_hands=args.hands, camera=camera))
        rgbs = [frame.rgb for frame in frames]
        depths = [frame.depth.astype(np.float32) for frame in frames]
        times = [frame.stamp for frame in frames]
    order = list(range(len(rgbs))) + list(range(len(rgbs) - 2, 0, -1))  # back and forth
    count = len(rgbs) if args.duration <= 0 else max(1, round(args.duration * args.rate))
    reliability = ReliabilityPolicy.RELIABLE if args.reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    qos = QoSProfile(depth=5, reliability=reliability)

    rclpy.init()
    node = rclpy.create_node("ego_bench_camera")
    topics = camera_topics(args.namespace) if args.namespace else {name: name for name in CAMERA_STREAMS}
    publishers = {name: node.create_publisher(kind, topics[name], qos)
                  for name, kind in (("image", Image), ("camera_info", CameraInfo), ("depth", Image))}  # fmt: skip
    try:
        deadline = time.monotonic() + _PUBLISHER_START_TIMEOUT_S
        while publishers["image"].get_subscription_count() == 0:
            if time.monotonic() > deadline:
                print(json.dumps({"error": "no subscriber on image"}), flush=True)
                return 1
            time.sleep(0.05)
        time.sleep(0.3)  # let the other endpoints match too
        period = 1.0 / args.rate
        start = time.perf_counter()
        stamps = []
        for index in range(count):
            target = start + index * period
            while (delay := target - time.perf_counter()) > 0:
                time.sleep(delay)
            slot = order[index % len(order)]
            if args.stamp_offset_ns is None:
                stamp = time.time_ns()
            else:
                stamp = args.stamp_offset_ns + round(times[slot] * 1e9)
            publishers["camera_info"].publish(camera_info_msg(camera, args.frame_id, stamp))
            if args.depth and depths:
                publishers["depth"].publish(depth_msg(depths[slot], args.frame_id, stamp))
            publishers["image"].publish(image_msg(rgbs[slot], args.frame_id, stamp))
            stamps.append(stamp)
        elapsed = time.perf_counter() - start
        time.sleep(0.5)  # let reliable readers take the last frames
        print(json.dumps({"published": len(stamps), "stamps": stamps, "seconds": elapsed}), flush=True)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def load_video_frames(video: Path, depth_dir: Path | None, max_frames: int) -> tuple[list, list]:
    """The first ``max_frames`` RGB frames of ``video`` and, with ``depth_dir``, their depth in metres (float32)."""
    from ..io.frames import load_depth_m, matched_depth_files, open_frames

    source = open_frames(video, None, max_frames)
    try:
        depth_files = matched_depth_files(depth_dir, source) if depth_dir is not None else None
        rgbs = [image for _, _, image in source.frames]
    finally:
        source.close()
    if not rgbs:
        raise ValueError(f"no frames in {video}")
    depths = []
    if depth_files is not None:
        if len(depth_files) < len(rgbs):
            raise ValueError(f"{len(depth_files)} depth files in {depth_dir} for {len(rgbs)} frames")
        depths = [load_depth_m(path, source.height, source.width).astype(np.float32) for path in depth_files]
    return rgbs, depths[: len(rgbs)]


def _publisher_command(extra: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "hand_scene_perception.eval.ros_ego", "--publish", *extra]


def _phase(
    use_depth: bool,
    duration_s: float,
    rate_hz: float,
    detector=None,
    input_qos: str = "SENSOR_DATA",
    inspect: Callable[[object], dict] | None = None,
) -> dict:
    """One run: node + listener here, camera publisher in a child process; per-frame delivery and latency.

    ``inspect(node)`` runs after the publisher finished, before the node goes; its dict joins the result."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from hand_scene_msgs.msg import HandArray

    from ..ros.conversions import time_ns
    from ..ros.ego.node import EgoReconstructionNode

    context = rclpy.Context()
    rclpy.init(context=context)
    arrivals: dict[int, tuple[int, int]] = {}  # stamp -> (arrival ns, hands)
    lock = threading.Lock()

    def on_hands(msg: HandArray) -> None:
        now = time.time_ns()
        with lock:
            arrivals[time_ns(msg.header.stamp)] = (now, len(msg.hands))

    executor = SingleThreadedExecutor(context=context)
    node = listener = spinner = None
    try:
        overrides = [Parameter("use_depth", value=use_depth), Parameter("max_hands", value=2),
                     Parameter("map_publish_rate_hz", value=1.0 if use_depth else 0.0)]  # fmt: skip
        overrides += [Parameter(f"qos_{stream}", value=input_qos) for stream in ("image", "camera_info", "depth")]
        node = EgoReconstructionNode(context=context, detector=detector, parameter_overrides=overrides)
        listener = rclpy.create_node("ego_bench_listener", context=context)
        listener.create_subscription(HandArray, "hands", on_hands, 100)
        executor.add_node(node)
        executor.add_node(listener)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        args = ["--duration", str(duration_s + WARMUP_S), "--rate", str(rate_hz)] + (["--depth"] if use_depth else [])
        child = subprocess.run(_publisher_command(args), capture_output=True, text=True, timeout=duration_s + 120,
                               env={**os.environ})  # fmt: skip
        if child.returncode != 0:
            raise RuntimeError(f"camera publisher failed: {child.stdout[-2000:]} {child.stderr[-2000:]}")
        report = json.loads(child.stdout.strip().splitlines()[-1])
        dropped = node.dropped_frames()
        received = node.received_counts()
        processing_ms = node.processing_times_ms()
        inspected = inspect(node) if inspect is not None else {}
    finally:
        executor.shutdown(timeout_sec=2.0)
        if spinner is not None:
            spinner.join(timeout=2.0)
        for each in (node, listener):
            if each is not None:
                each.destroy_node()
        rclpy.try_shutdown(context=context)
    with lock:
        delivery = _delivery(report["stamps"], arrivals)
    return {
        **delivery,
        "dropped_frames_node": dropped,
        "received": received,
        "node_processing_ms_p50": float(np.median(processing_ms)) if processing_ms else float("nan"),
        **inspected,
    }


def _delivery(stamps: Sequence[int], arrivals: dict[int, tuple[int, int]]) -> dict:
    """Delivery and latency of the published ``stamps`` (after the warm-up) from the HandArrays' ``arrivals``
    (stamp -> (arrival ns, hands)); latency = arrival - image stamp, both on this machine's clock."""
    counted = [s for s in stamps if s >= stamps[0] + WARMUP_S * 1e9]
    got = {s: arrivals[s] for s in counted if s in arrivals}
    latencies = np.array([(arrival - stamp) / 1e6 for stamp, (arrival, _) in got.items()])
    with_hands = sum(1 for _, hands in got.values() if hands > 0)
    span_s = (counted[-1] - counted[0]) / 1e9 if len(counted) > 1 else 0.0
    return {
        "frames": len(counted),
        "delivered": len(got),
        "delivered_fraction": len(got) / len(counted) if counted else 0.0,
        "hands_fraction": with_hands / len(counted) if counted else 0.0,
        "latency_p50_ms": float(np.percentile(latencies, 50)) if len(latencies) else float("nan"),
        "latency_p99_ms": float(np.percentile(latencies, 99)) if len(latencies) else float("nan"),
        "rate_hz": len(got) / span_s if span_s > 0 else 0.0,
        "input_rate_hz": (len(counted) - 1) / span_s if span_s > 0 else 0.0,
    }


def _viewer_topics() -> dict[str, type]:
    """Every output a robot's RViz and recorder subscribe to, with its type (hands first: latency is taken there).
    The viewer takes all but the hands as serialised bytes, as a recorder does and as RViz does in C++: decoding a
    mesh marker into Python objects (~15 ms) would load this machine's two cores with work no robot has."""
    from nav_msgs.msg import Odometry
    from nav_msgs.msg import Path as PathMsg
    from sensor_msgs.msg import PointCloud2
    from tf2_msgs.msg import TFMessage
    from visualization_msgs.msg import MarkerArray

    from hand_scene_msgs.msg import ContactArray, HandArray

    return {"hands": HandArray, "hand_markers": MarkerArray, "hand_paths/left": PathMsg, "hand_paths/right": PathMsg,
            "scene_map": PointCloud2, "camera_odometry": Odometry, "contacts": ContactArray, "/tf": TFMessage}


def _detector_alone(rgbs: Sequence[np.ndarray], max_hands: int, rate_hz: float) -> dict:
    """The node's own hand expert (embedded, video mode) on the same frames in this process: per-frame ms."""
    from ..backends.registry import create_hand_expert

    detector = create_hand_expert("embedded", max_hands=max_hands)
    times = []
    try:
        for index, rgb in enumerate(rgbs):
            start = time.perf_counter()
            detector.detect(rgb, round(index * 1e9 / rate_hz))
            times.append(1e3 * (time.perf_counter() - start))
    finally:
        close = getattr(detector, "close", None)
        if close is not None:
            close()
    steady = times[len(times) // 10:]  # (the first calls build the graph)
    return {"detector_ms_mean": float(np.mean(steady)), "detector_ms_p50": float(np.median(steady))}


def _video_phase(video: Path, depth_dir: Path | None, duration_s: float, rate_hz: float, max_hands: int,
                 subscribe_all: bool, log_path: Path, node_parameters: Sequence[str] = ()) -> dict:  # fmt: skip
    """The node in its own process (``hand-scene launch ego``), the camera publisher in another, and here a viewer
    that subscribes to the hands (latency) and, with ``subscribe_all``, to every other output as RViz and a
    recorder would (as bytes, see :func:`_viewer_topics`); the node's own numbers (rates, per-stage times) from
    its last /diagnostics."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor

    from ..ros.conversions import time_ns
    from ..ros.diagnostics import node_status
    from ..ros.launch.plan import EGO_NODE_NAME
    from ..ros.node_process import NodeProcess

    context = rclpy.Context()
    rclpy.init(context=context)
    arrivals: dict[int, tuple[int, int]] = {}
    counts: dict[str, int] = {}
    node_values: dict[str, str] = {}
    status: dict[str, object] = {}
    lock = threading.Lock()

    def on_message(topic: str, msg: object) -> None:
        now = time.time_ns()
        with lock:
            counts[topic] = counts.get(topic, 0) + 1
            if topic == "hands":
                arrivals[time_ns(msg.header.stamp)] = (now, len(msg.hands))

    def on_diagnostics(msg: DiagnosticArray) -> None:
        report = node_status(msg, f"/{EGO_NODE_NAME}")
        if report is not None:
            with lock:
                node_values.update(report[2])
                status.update(level=report[0], message=report[1])

    topics = _viewer_topics()
    if not subscribe_all:
        topics = {"hands": topics["hands"]}
    arguments = {"camera_namespace": "/bench", "use_depth": "true" if depth_dir else "false"}
    ros_arguments = ["-p", f"max_hands:={max_hands}", "-p", "diagnostics_period_s:=0.5"]
    for assignment in node_parameters:
        ros_arguments += ["-p", assignment]
    executor = SingleThreadedExecutor(context=context)
    viewer = spinner = None
    try:
        viewer = rclpy.create_node("ego_bench_viewer", context=context)
        for topic, kind in topics.items():
            viewer.create_subscription(kind, topic, lambda msg, topic=topic: on_message(topic, msg), 10,
                                       raw=topic != "hands")  # fmt: skip
        viewer.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
        executor.add_node(viewer)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        publisher_args = ["--video", str(video), "--namespace", "/bench", "--duration", str(duration_s + WARMUP_S),
                          "--rate", str(rate_hz)]  # fmt: skip
        if depth_dir is not None:
            publisher_args += ["--depth", "--depth-dir", str(depth_dir)]
        with NodeProcess("ego", arguments, ros_arguments, log_path=log_path):
            child = subprocess.run(_publisher_command(publisher_args), capture_output=True, text=True,
                                   timeout=duration_s + 180, env={**os.environ})  # fmt: skip
            time.sleep(1.0)  # the last results and a diagnostics report after the last frame
        if child.returncode != 0:
            raise RuntimeError(f"camera publisher failed: {child.stdout[-2000:]} {child.stderr[-2000:]}")
        report = json.loads(child.stdout.strip().splitlines()[-1])
    finally:
        executor.shutdown(timeout_sec=2.0)
        if spinner is not None:
            spinner.join(timeout=2.0)  # (a spin still inside rcl when the context goes aborts the process)
        if viewer is not None:
            viewer.destroy_node()
        rclpy.try_shutdown(context=context)
    with lock:
        delivery = _delivery(report["stamps"], arrivals)
        values = dict(node_values)
        received = dict(counts)
    stages = {key[len("stage_"):-len("_ms")]: float(value) for key, value in values.items()
              if key.startswith("stage_") and key.endswith("_ms")}  # fmt: skip
    return {
        **delivery,
        "node": {key: values.get(key) for key in ("input_rate_hz", "processed_rate_hz", "processing_ms",
                                                   "frames_received", "frames_processed", "dropped_frames")},
        "node_status": dict(status),
        "stages_ms": stages,
        "received_per_topic": received,
    }  # fmt: skip


def benchmark_ros_ego_video(video: Path, depth_dir: Path | None = None, duration_s: float = 10.0,
                            rate_hz: float = 30.0, max_hands: int = 1, subscribe_all: bool = True,
                            log_path: Path | None = None, node_parameters: Sequence[str] = ()) -> dict:  # fmt: skip
    """The ego node on a real video at camera rate, every output subscribed (see :func:`_video_phase`), against
    the node's hand expert alone on the same frames in the same run; ``node_parameters`` ("name:=value") are
    passed to the node (for comparisons of its settings)."""
    ensure_local_discovery(os.environ)
    use_shipped_dds_profile(os.environ)
    rgbs, _ = load_video_frames(Path(video), None, VIDEO_FRAMES)
    detector = _detector_alone(rgbs, max_hands, rate_hz)
    height, width = rgbs[0].shape[:2]
    del rgbs
    log = Path(log_path) if log_path is not None else Path(os.environ.get("TMPDIR", "/tmp")) / "bench_ros_ego_node.log"
    phase = _video_phase(Path(video), depth_dir, duration_s, rate_hz, max_hands, subscribe_all, log, node_parameters)
    processing = phase["node"]["processing_ms"]
    ratio = None if processing is None else float(processing) / detector["detector_ms_mean"]
    return {
        "video": str(video),
        "depth_dir": None if depth_dir is None else str(depth_dir),
        "resolution": [width, height],
        "input_rate_hz": rate_hz,
        "duration_s": duration_s,
        "max_hands": max_hands,
        "subscribed": "all outputs" if subscribe_all else "hands",
        "node_parameters": list(node_parameters),
        "delivered_fraction": phase["delivered_fraction"],
        "latency_p50_ms": phase["latency_p50_ms"],
        "latency_p99_ms": phase["latency_p99_ms"],
        "rate_hz": phase["rate_hz"],
        **detector,
        "ratio_processing_to_detector": ratio,
        "node_log": str(log),
        "phase": phase,
    }


def benchmark_ros_ego(duration_s: float = 10.0, rate_hz: float = 30.0) -> dict:
    """The issue's targets in one run: RGB phase (delivery, latency), RGB-D phase (rate), scene map publish."""

    ensure_local_discovery(os.environ)
    use_shipped_dds_profile(os.environ)
    rgb = _phase(False, duration_s, rate_hz)
    rgb_reliable = _phase(False, duration_s, rate_hz, input_qos="RELIABLE")
    rgbd = _phase(True, duration_s, rate_hz, input_qos="RELIABLE")
    cloud = benchmark_point_cloud()
    return {
        "resolution": [640, 480],
        "input_rate_hz": rate_hz,
        "duration_s": duration_s,
        "backend": "embedded",
        "delivered_fraction": rgb["delivered_fraction"],
        "latency_p50_ms": rgb["latency_p50_ms"],
        "latency_p99_ms": rgb["latency_p99_ms"],
        "rate_hz_rgbd": rgbd["rate_hz"],
        "map_publish_ms": cloud["map_publish_ms"],
        "delivered_fraction_reliable_input": rgb_reliable["delivered_fraction"],
        "latency_p50_ms_reliable_input": rgb_reliable["latency_p50_ms"],
        "latency_p99_ms_reliable_input": rgb_reliable["latency_p99_ms"],
        "rgb": rgb,
        "rgb_reliable_input": rgb_reliable,
        "rgbd": rgbd,
        "map_points": cloud["num_points"],
    }


def _resident_mb() -> float:
    """This process's resident memory (Linux /proc), MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def benchmark_ros_soak(duration_s: float = 600.0, rate_hz: float = 30.0, warmup_s: float = 60.0) -> dict:
    """The soak target: RGB-D with mapping at ``rate_hz`` for ``duration_s``; resident memory sampled every 5 s,
    growth measured from the end of ``warmup_s``; map and path sizes checked against their caps at the end."""
    ensure_local_discovery(os.environ)
    use_shipped_dds_profile(os.environ)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        start = time.monotonic()
        while not stop.wait(5.0):
            samples.append((time.monotonic() - start, _resident_mb()))

    def caps(node) -> dict:
        processor = node._processor  # the bench inspects the node it owns
        return {
            "map_voxels": len(processor.pipeline.map),
            "max_voxels": processor.pipeline.config.max_voxels,
            "path_poses": {side.value: len(path) for side, path in processor.paths.items()},
            "path_cap": node.get_parameter("path_max_poses").value,
        }

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        phase = _phase(True, duration_s, rate_hz, input_qos="RELIABLE", inspect=caps)
    finally:
        stop.set()
        sampler.join()
    after_warmup = [mb for t, mb in samples if t >= warmup_s]
    return {
        "duration_s": duration_s,
        "rate_hz": phase["rate_hz"],
        "rss_after_warmup_mb": after_warmup[0] if after_warmup else None,
        "rss_end_mb": after_warmup[-1] if after_warmup else None,
        "rss_growth_mb": after_warmup[-1] - after_warmup[0] if after_warmup else None,
        "rss_samples_mb": [round(mb, 1) for _, mb in samples],
        **{key: phase[key] for key in ("map_voxels", "max_voxels", "path_poses", "path_cap", "delivered_fraction")},
    }


if __name__ == "__main__":
    sys.exit(publish_camera())


def benchmark_point_cloud(num_points: int = 500_000, repeats: int = 15, seed: int = 0) -> dict[str, float]:
    """Time encoding a coloured cloud into PointCloud2 plus rclpy serialisation (what a publish costs
    in this process before DDS takes the bytes); medians over ``repeats`` runs, milliseconds."""
    import statistics

    from rclpy.serialization import serialize_message

    from ..ros.conversions import point_cloud_msg

    rng = np.random.default_rng(seed)
    points = rng.uniform(-5.0, 5.0, size=(num_points, 3)).astype(np.float32)
    colors = rng.integers(0, 256, size=(num_points, 3), dtype=np.uint8)
    encode, serialize, total = [], [], []
    size = 0
    for _ in range(repeats):
        start = time.perf_counter()
        msg = point_cloud_msg(points, colors, "map", 0)
        encoded = time.perf_counter()
        size = len(serialize_message(msg))
        end = time.perf_counter()
        encode.append(encoded - start)
        serialize.append(end - encoded)
        total.append(end - start)
    return {
        "num_points": num_points,
        "map_publish_ms": 1000 * statistics.median(total),
        "encode_ms": 1000 * statistics.median(encode),
        "serialize_ms": 1000 * statistics.median(serialize),
        "serialized_bytes": size,
    }

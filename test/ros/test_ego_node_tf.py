"""The ego node with camera_pose_source tf, its TF from a publisher in another process (real DDS on localhost).

The TF tree is world → base (static, /tf_static) → camera (the synthetic sequence's ground-truth camera poses,
/tf). The node's published hands must be the pipeline's camera-frame hands moved by that chain at each image
stamp (the reference: the same pipeline given the chain's poses directly), and an image whose frame is not in
TF must be skipped with a diagnostics WARN.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from ego_fixtures import CAMERA_FRAME, NodeHarness, StampOracle, frame_messages, frame_stamp, synthetic_frames
from node_checks import helper_process
from rclpy.parameter import Parameter
from scipy.spatial.transform import Rotation
from tf2_msgs.msg import TFMessage

from hand_scene_msgs.msg import HandArray
from hand_scene_perception.pipelines.ego import EgoConfig, EgoFrame, EgoPipeline
from hand_scene_perception.ros.conversions import hand_state, time_msg, time_ns
from hand_scene_perception.ros.ego.node import EgoReconstructionNode
from hand_scene_perception.ros.tf_lookup import TF_STATIC_QOS

HERE = Path(__file__).resolve().parent
FRAMES = 6
WORLD, BASE = "world", "base_link"
# world → base: the robot somewhere in its world, far from the identity.
T_WORLD_BASE = np.eye(4)
T_WORLD_BASE[:3, :3] = Rotation.from_euler("zyx", [50, -10, 20], degrees=True).as_matrix()
T_WORLD_BASE[:3, 3] = [2.0, -1.5, 0.8]


@pytest.fixture(scope="module")
def frames():
    return synthetic_frames(FRAMES)


@pytest.fixture
def tf_publisher(frames, subprocess_env, tmp_path):
    """world → base static and base → camera (ground truth at every frame's stamp), from another process."""
    poses = tmp_path / "poses.npz"
    np.savez(poses, stamps_ns=np.array([frame_stamp(f) for f in frames]), static=T_WORLD_BASE,
             dynamic=np.stack([f.T_world_camera for f in frames]))  # fmt: skip
    arguments = ["--poses", str(poses), "--world", WORLD, "--base", BASE, "--camera", CAMERA_FRAME, "--duration", "60"]
    with helper_process(HERE / "tf_publisher_process.py", arguments, subprocess_env) as process:
        yield process


def _reference_hands(frames, stamps: list[int]) -> dict[int, list]:
    """Per stamp, the pipeline's camera-frame hands on the frames the node processed, moved by the chain's pose."""
    expected = {}
    by_stamp = {frame_stamp(f): f for f in frames}
    with EgoPipeline(EgoConfig(camera_pose_source="tf"), detector=StampOracle(frames, noise_px=0.0)) as pipeline:
        for stamp in stamps:
            frame = by_stamp[stamp]
            pose = T_WORLD_BASE @ frame.T_world_camera
            result = pipeline.process(EgoFrame(frame.rgb, frame.camera, stamp, frame.depth.astype(np.float32), pose))
            expected[stamp] = [(h.side, h.camera.joints @ pose[:3, :3].T + pose[:3, 3]) for h in result.hands]
    return expected


def test_hands_in_the_tf_world_follow_the_tf_chain_and_a_frame_without_tf_is_skipped(context, frames, tf_publisher):
    parameters = {"camera_pose_source": "tf", "world_frame": WORLD, "tf_timeout_s": 0.5, "diagnostics_period_s": 0.2,
                  "map_publish_rate_hz": 0.0}  # fmt: skip
    node = EgoReconstructionNode(context=context, detector=StampOracle(frames, noise_px=0.0),
                                 parameter_overrides=[Parameter(k, value=v) for k, v in parameters.items()])
    listen = {"hands": (HandArray, 20), "/tf": (TFMessage, 200), "/diagnostics": (DiagnosticArray, 50),
              "/tf_static": (TFMessage, TF_STATIC_QOS)}  # fmt: skip
    rig = NodeHarness(context, node, listen=listen)
    try:
        rig.wait_connected()
        # The TF publisher is up once its transforms reach this process (the node listens beside this helper).
        heard = rig.wait_for(lambda: rig.messages("/tf_static") and rig.messages("/tf"), 30.0)
        assert heard, "no TF from the publisher process" + (f": {tf_publisher.stdout.read()}"
                                                            if tf_publisher.poll() is not None else "")
        for frame in frames:
            count = len(rig.messages("hands"))
            rig.publish(frame_messages(frame))
            assert rig.wait_for(lambda count=count: len(rig.messages("hands")) > count), "no hands for a frame"
        arrays = rig.messages("hands")
        stamps = [time_ns(msg.header.stamp) for msg in arrays]
        assert stamps == [frame_stamp(f) for f in frames] and all(msg.header.frame_id == WORLD for msg in arrays)

        # A camera that TF does not know: skipped (no HandArray), with a WARN saying why.
        lost = frame_messages(frames[-1])
        for message in (lost.image, lost.info, lost.depth):
            message.header.frame_id = "unknown_camera_optical_frame"
            message.header.stamp = time_msg(frame_stamp(frames[-1]) + 10_000_000)
        start = time.monotonic()
        rig.publish(lost)

        def warned() -> list[DiagnosticStatus]:
            return [s for a in rig.messages("/diagnostics") for s in a.status
                    if s.level == DiagnosticStatus.WARN and "no TF pose of 'unknown_camera_optical_frame'" in s.message]

        assert rig.wait_for(warned, 10.0), [s.message for a in rig.messages("/diagnostics") for s in a.status]
        skipped_after_s = time.monotonic() - start
        assert "not in the TF tree" in warned()[0].message
        time.sleep(0.3)  # (a HandArray would come right after the lookup)
        assert len(rig.messages("hands")) == FRAMES
        values = {v.key: v.value for v in warned()[-1].values}
        assert values["camera_pose_source"] == "tf"
        # The node published no camera TF of its own (the camera already has its parent, base_link).
        assert not [t for m in rig.messages("/tf") for t in m.transforms
                    if t.child_frame_id == CAMERA_FRAME and t.header.frame_id == WORLD]
    finally:
        rig.close()

    expected = _reference_hands(frames, stamps)
    errors = []
    for msg, stamp in zip(arrays, stamps, strict=True):
        assert len(msg.hands) == len(expected[stamp]) == 1
        for hand, (side, joints) in zip(msg.hands, expected[stamp], strict=True):
            state = hand_state(hand)
            assert state.side is side
            errors.append(np.abs(state.joints - joints).max())
    print(f"max hand joint error vs the TF chain: {1e3 * max(errors):.2e} mm; missing TF skipped after "
          f"{skipped_after_s:.2f} s")
    assert max(errors) < 1e-3, f"{1e3 * max(errors):.3f} mm"

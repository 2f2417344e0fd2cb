"""EgoMessageProcessor without DDS: synthetic frames with ground truth through the same conversions the node uses."""

from __future__ import annotations

import numpy as np
import pytest
from ego_fixtures import CAMERA_FRAME, StampOracle, frame_messages, frame_stamp, synthetic_frames

from hand_scene_msgs.msg import Hand
from hand_scene_perception.core.hand_model.side import HandSide
from hand_scene_perception.pipelines.ego import EgoConfig
from hand_scene_perception.ros.conversions import (
    POINT_STEP,
    InputError,
    depth_msg,
    hand_state,
    point_cloud_arrays,
    transform_matrix,
)
from hand_scene_perception.ros.ego.processor import EgoMessageProcessor

PATH_CAP = 5


@pytest.fixture(scope="module")
def frames():
    return synthetic_frames(10)


@pytest.fixture
def processor(frames):
    proc = EgoMessageProcessor(EgoConfig(), world_frame="map", frame_prefix="robot/", path_max_poses=PATH_CAP,
                               marker_lifetime_s=0.25, detector=StampOracle(frames))  # fmt: skip
    yield proc
    proc.close()


def test_hands_world_frame_match_ground_truth(processor, frames):
    outputs = [processor.process(**_inputs(frame)) for frame in frames]
    # The node's world is the first camera pose: ground truth mapped through it.
    node_from_truth = np.linalg.inv(frames[0].T_world_camera)
    errors = []
    for frame, out in zip(frames, outputs, strict=True):
        assert out.hands.header.frame_id == "map" and out.hands.header.stamp.nanosec == frame_stamp(frame) % 10**9
        (msg,) = out.hands.hands
        state = hand_state(msg)
        assert msg.header.frame_id == "map" and state.image_frame_id == CAMERA_FRAME
        assert state.side is frame.hands[0].side and state.vertices.shape == (processor.pipeline.model.num_vertices, 3)
        truth = frame.hands[0].joints_world @ node_from_truth[:3, :3].T + node_from_truth[:3, 3]
        errors.append(np.linalg.norm(state.joints - truth, axis=1).mean())
    assert np.median(errors) < 0.03, errors  # metres, with depth


def test_transforms_paths_markers_odometry(processor, frames):
    for frame in frames[:PATH_CAP + 3]:
        out = processor.process(**_inputs(frame))
    side = frames[0].hands[0].side
    camera_tf, hand_tf = out.transforms
    assert (camera_tf.header.frame_id, camera_tf.child_frame_id) == ("map", CAMERA_FRAME)
    assert (hand_tf.header.frame_id, hand_tf.child_frame_id) == ("map", f"robot/{side.value}_hand")
    np.testing.assert_allclose(transform_matrix(camera_tf), out.result.T_world_camera, atol=1e-9)
    np.testing.assert_allclose(transform_matrix(hand_tf), out.result.hands[0].world.wrist_pose, atol=1e-9)
    path = out.paths[side.value]
    assert len(path.poses) == PATH_CAP and path.header.frame_id == "map"  # capped: 8 frames in, 5 kept
    assert [p.header.stamp.nanosec for p in path.poses] == [frame_stamp(f) % 10**9 for f in frames[3:8]]
    assert len(out.paths["left" if side.value == "right" else "right"].poses) == 0
    assert {m.ns for m in out.markers.markers} == {"hands/mesh", "hands/skeleton"}
    assert all(m.lifetime.nanosec == 250_000_000 and m.header.frame_id == "map" for m in out.markers.markers)
    assert out.odometry.header.frame_id == "map" and out.odometry.child_frame_id == CAMERA_FRAME
    assert out.contacts.header.frame_id == "map"


def test_scene_map_and_topology(processor, frames):
    for frame in frames[:4]:
        processor.process(**_inputs(frame))
    cloud = processor.scene_map_msg(frame_stamp(frames[3]))
    assert cloud.point_step == POINT_STEP and [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]
    points, _ = point_cloud_arrays(cloud)
    assert cloud.header.frame_id == "map" and len(points) > 1000 and np.all(np.isfinite(points))
    topology = processor.mesh_topology_msg()
    assert topology.vertex_count == processor.pipeline.model.num_vertices
    assert len(topology.faces_right) == len(topology.faces_left) > 0


@pytest.mark.parametrize("problem", ["encoding", "size", "zero_k", "depth_size"])
def test_bad_inputs_raise_and_change_nothing(processor, frames, problem):
    processor.process(**_inputs(frames[0]))
    inputs = _inputs(frames[1])
    if problem == "encoding":
        inputs["image"].encoding = "yuv422"
    elif problem == "size":
        inputs["info"].width = 400
    elif problem == "zero_k":
        inputs["info"].k = [0.0] * 9
    else:
        inputs["depth"] = depth_msg(np.ones((100, 100), np.float32), CAMERA_FRAME, frame_stamp(frames[1]))
    with pytest.raises(InputError):
        processor.process(**inputs)
    assert sum(len(path) for path in processor.paths.values()) == 1
    out = processor.process(**_inputs(frames[1]))  # the next good frame goes on in the same session
    assert out.result.session_reset is None and len(out.hands.hands) == 1


def test_time_jump_back_resets(processor, frames):
    for frame in frames[:4]:
        processor.process(**_inputs(frame))
    out = processor.process(**_inputs(frames[1]))
    assert any("time jumped back" in warning for warning in out.warnings)
    assert sum(len(path.poses) for path in out.paths.values()) == 1
    assert out.markers.markers[0].action == out.markers.markers[0].DELETEALL


def test_trajectory_window_side_and_save(processor, frames, tmp_path):
    for frame in frames[:6]:
        processor.process(**_inputs(frame))
    side = frames[0].hands[0].side
    other = HandSide.LEFT if side is HandSide.RIGHT else HandSide.RIGHT
    window = processor.trajectory(frame_stamp(frames[2]), frame_stamp(frames[4]))
    assert [stamp for stamp, _ in window] == [frame_stamp(f) for f in frames[2:5]]
    assert processor.trajectory(0, 2**62, side=other) == []
    msgs = processor.trajectory_msgs(0, 2**62, side=side)
    assert len(msgs) == PATH_CAP and all(isinstance(m, Hand) and len(m.vertices) == 0 for m in msgs)
    files = processor.save(tmp_path / "saved")
    assert {f.name for f in files} >= {"map.ply", "hands.npz", "camera_trajectory.csv", "summary.json"}
    with np.load(tmp_path / "saved" / "hands.npz", allow_pickle=False) as saved:
        assert saved["joints_world"].shape == (PATH_CAP, 21, 3)
    processor.reset()
    assert processor.trajectory(0, 2**62) == [] and len(processor.pipeline.map) == 0


def _inputs(frame) -> dict:
    messages = frame_messages(frame)
    return {"image": messages.image, "info": messages.info, "depth": messages.depth}


def test_stream_gives_the_same_messages_and_skips_bad_inputs(frames):
    def make():
        return EgoMessageProcessor(EgoConfig(), world_frame="map", path_max_poses=PATH_CAP, marker_lifetime_s=0.25,
                                   detector=StampOracle(frames))

    single = make()
    expected = [single.process(**_inputs(frame)) for frame in frames]
    single.close()
    inputs = [tuple(_inputs(frame).values()) + (None,) for frame in frames]
    bad = list(inputs[3])
    bad[0] = depth_msg(np.zeros((4, 4), np.uint16), CAMERA_FRAME, frame_stamp(frames[3]))  # not a colour image
    errors = []
    streamed = make()
    outputs = list(streamed.process_stream(inputs[:3] + [tuple(bad)] + inputs[3:], on_error=errors.append))
    streamed.close()
    assert len(errors) == 1 and isinstance(errors[0], InputError)
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected, strict=True):
        assert got.hands.header.stamp == want.hands.header.stamp
        np.testing.assert_allclose(hand_state(got.hands.hands[0]).joints, hand_state(want.hands.hands[0]).joints,
                                   atol=1e-6)
        assert [t.child_frame_id for t in got.transforms] == [t.child_frame_id for t in want.transforms]

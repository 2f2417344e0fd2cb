"""The gaussian_hands node over real rclpy and DDS on localhost: render, overlay and Gaussian clouds of a tracked
hand whose camera pose comes from TF; hands it cannot draw are skipped with the reason; unusable avatar files fail
the configure and are left as they were."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from ego_fixtures import NodeHarness
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_msgs.msg import TFMessage

from hand_scene_msgs.msg import Hand, HandArray
from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.core.hand_model import HandSide, create_hand_model
from hand_scene_perception.core.hand_state import HandState
from hand_scene_perception.core.transform_buffer import TransformUnavailable
from hand_scene_perception.gaussian.avatar_file import load_avatar, save_avatar
from hand_scene_perception.gaussian.per_video import new_avatar
from hand_scene_perception.gaussian.renderer import AvatarRenderer, ViewSpec
from hand_scene_perception.ros.conversions import (
    InputError,
    camera_info_msg,
    hand_msg,
    image_msg,
    time_ns,
    transform_msg,
)
from hand_scene_perception.ros.diagnostics import node_status
from hand_scene_perception.ros.gaussian.node import GaussianHandsNode
from hand_scene_perception.ros.gaussian.processor import GAUSSIAN_FIELD_NAMES, GaussianMessageProcessor

MODEL = create_hand_model("open")
CAMERA = PinholeCamera.from_intrinsics(300.0, 300.0, 159.5, 119.5, 320, 240)
CAMERA_FRAME = "camera_optical_frame"
T_MAP_CAMERA = np.eye(4)
T_MAP_CAMERA[:3, :3] = Rotation.from_euler("xyz", [0.3, -0.2, 0.1]).as_matrix()
T_MAP_CAMERA[:3, 3] = [0.2, -0.1, 0.5]
STAMP_NS = 1_000_000_000


@pytest.fixture(scope="module")
def avatar_file(tmp_path_factory):
    """A right-hand avatar whose colours are red (so the render and overlay show where it is), lit by a light
    from the camera's right (so its colours depend on the frame it is posed in)."""
    avatar = new_avatar(MODEL, HandSide.RIGHT)
    with torch.no_grad():
        avatar.color_mlp[2].bias.copy_(torch.tensor([6.0, -6.0, -6.0]))
        avatar.light_direction.copy_(torch.tensor([1.0, 0.0, 0.0]))
        avatar.ambient.fill_(0.3)
        avatar.diffuse_gain.fill_(0.7)
    path = tmp_path_factory.mktemp("avatars") / "right.avatar.pt"
    save_avatar(path, avatar, HandSide.RIGHT)
    return path


def _hand(side: HandSide, with_vertices: bool = True) -> Hand:
    """A hand 0.4 m in front of the camera, palm toward it, expressed in the map frame."""
    pose = np.zeros((16, 3))
    pose[0] = [np.pi, 0.0, 0.0]
    out = MODEL.forward(pose.astype(np.float32), side=side, transl=np.array([0.0, 0.0, 0.4], np.float32))
    vertices_cam, joints_cam = np.asarray(out.vertices[0], np.float64), np.asarray(out.joints[0], np.float64)
    to_map = lambda points: points @ T_MAP_CAMERA[:3, :3].T + T_MAP_CAMERA[:3, 3]  # noqa: E731
    state = HandState(track_id=1, side=side, confidence=0.9, joints=to_map(joints_cam), wrist_pose=np.eye(4),
                      model_name=MODEL.name, model_pose=pose, model_shape=np.zeros(10),
                      vertices=to_map(vertices_cam) if with_vertices else None,
                      image_frame_id=CAMERA_FRAME)  # fmt: skip
    return hand_msg(state, "map", STAMP_NS)


def _node(context, **parameters) -> GaussianHandsNode:
    values = {"render_width": 64, "render_height": 48, "diagnostics_period_s": 0.2, **parameters}
    return GaussianHandsNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])


def _harness(context, node) -> NodeHarness:
    listen = {"render": (Image, 5), "render/camera_info": (CameraInfo, 5), "overlay": (Image, 5),
              "gaussians/right": (PointCloud2, 2), "/tf": (TFMessage, 50), "/diagnostics": (DiagnosticArray, 50)}
    inputs = {"hands": HandArray, "image": Image, "camera_info": CameraInfo, "/tf": TFMessage}
    harness = NodeHarness(context, node, listen=listen, inputs=inputs)
    harness.wait_connected(topic="hands")
    return harness


def _send(harness, hands: list[Hand]) -> None:
    harness.publishers["/tf"].publish(TFMessage(transforms=[transform_msg(T_MAP_CAMERA, "map", CAMERA_FRAME,
                                                                          STAMP_NS)]))  # fmt: skip
    harness.publishers["camera_info"].publish(camera_info_msg(CAMERA, CAMERA_FRAME, STAMP_NS))
    grey = np.full((CAMERA.height, CAMERA.width, 3), 90, np.uint8)
    harness.publishers["image"].publish(image_msg(grey, CAMERA_FRAME, STAMP_NS))
    harness.publishers["hands"].publish(HandArray(header=hands[0].header, hands=hands))


def _pixels(msg: Image) -> np.ndarray:
    return np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)


def test_a_tracked_hand_is_rendered_overlaid_and_published_as_gaussians(context, avatar_file):
    harness = _harness(context, _node(context, avatar_files=[str(avatar_file)]))
    try:
        for topic in ("render", "overlay", "gaussians/right"):
            assert harness.wait_for(lambda t=topic: harness.node._outputs[t].get_subscription_count() > 0)
        _send(harness, [_hand(HandSide.RIGHT)])
        assert harness.wait_for(lambda: all(harness.messages(t) for t in ("render", "overlay", "gaussians/right")),
                                timeout_s=30.0)  # fmt: skip
        render = harness.messages("render")[0]
        assert (render.width, render.height, render.encoding) == (64, 48, "rgb8")
        assert render.header.frame_id == "gaussian_render_optical_frame" and time_ns(render.header.stamp) == STAMP_NS
        red = _pixels(render)[..., 0] > 128
        rows, cols = np.nonzero(red)
        assert red.mean() > 0.05 and abs(cols.mean() - 31.5) < 6 and abs(rows.mean() - 23.5) < 6  # centred
        assert harness.messages("render/camera_info")[0].width == 64
        # the overlay: the red hand where the camera sees it, the grey image elsewhere
        overlay = _pixels(harness.messages("overlay")[0])
        red_rows, red_cols = np.nonzero((overlay[..., 0] > 150) & (overlay[..., 1] < 60))
        vertices_map = np.frombuffer(_hand(HandSide.RIGHT).vertices, np.float32).reshape(-1, 3).astype(np.float64)
        vertices_cam = (vertices_map - T_MAP_CAMERA[:3, 3]) @ T_MAP_CAMERA[:3, :3]
        low, high = CAMERA.project(vertices_cam).min(axis=0) - 2, CAMERA.project(vertices_cam).max(axis=0) + 2
        assert len(red_rows) > 500
        assert low[0] <= red_cols.min() and red_cols.max() <= high[0] and low[1] <= red_rows.min() <= high[1]
        assert (overlay[:10, :10] == 90).all()
        # the Gaussians, in the hands' frame (map)
        cloud = harness.messages("gaussians/right")[0]
        assert [f.name for f in cloud.fields] == list(GAUSSIAN_FIELD_NAMES) and cloud.header.frame_id == "map"
        values = np.frombuffer(cloud.data, np.float32).reshape(cloud.width, len(GAUSSIAN_FIELD_NAMES))
        assert cloud.width == 10 * len(MODEL.faces(HandSide.RIGHT))
        assert np.all(values[:, :3].min(0) >= vertices_map.min(0) - 1e-4)
        assert np.all(values[:, :3].max(0) <= vertices_map.max(0) + 1e-4)
        np.testing.assert_allclose(np.linalg.norm(values[:, 8:12], axis=1), 1.0, atol=1e-5)
        assert (values[:, 4] > 0.9).all()  # opacities start at 0.99
        rgb = values[:, 3].view(np.uint32)
        assert (rgb & 0xFF).max() < 40 and ((rgb >> 8) & 0xFF).max() < 40  # red, shaded
        # lit as the fit learnt it, in the filming camera's frame (not in map's)
        avatar, _ = load_avatar(avatar_file, MODEL)
        vertices_cam = (vertices_map - T_MAP_CAMERA[:3, 3]) @ T_MAP_CAMERA[:3, :3]
        with torch.no_grad():
            lit = avatar(torch.as_tensor(vertices_cam, dtype=torch.float32)).colors.numpy()
            wrong = avatar(torch.as_tensor(vertices_map, dtype=torch.float32)).colors.numpy()
        red = ((rgb >> 16) & 0xFF).astype(float)
        np.testing.assert_allclose(red, lit[:, 0] * 255, atol=1.0)
        assert np.abs(red - wrong[:, 0] * 255).max() > 10  # (map is turned 0.4 rad from the camera)
        transforms = [t for msg in harness.messages("/tf") for t in msg.transforms]
        assert any(t.child_frame_id == "gaussian_render_optical_frame" and t.header.frame_id == CAMERA_FRAME
                   for t in transforms)  # fmt: skip
    finally:
        harness.close()


def test_hands_it_cannot_draw_are_skipped_with_the_reason(context, avatar_file):
    harness = _harness(context, _node(context, avatar_files=[str(avatar_file)]))
    try:
        assert harness.wait_for(lambda: harness.node._outputs["render"].get_subscription_count() > 0)
        _send(harness, [_hand(HandSide.LEFT), _hand(HandSide.RIGHT, with_vertices=False), _nan_hand(),
                        _hand(HandSide.RIGHT)])

        def warned() -> bool:
            for msg in harness.messages("/diagnostics"):
                status = node_status(msg, harness.node.get_fully_qualified_name())
                if status is not None and int(status[2]["skipped_hands"]) >= 3:
                    return True
            return False

        assert harness.wait_for(warned, timeout_s=30.0)
        assert harness.wait_for(lambda: harness.messages("render"), timeout_s=30.0)  # the good hand is drawn
        levels = [node_status(m, harness.node.get_fully_qualified_name()) for m in harness.messages("/diagnostics")]
        texts = " ".join(s[1] for s in levels if s is not None)
        assert "hand not drawn" in texts
    finally:
        harness.close()


def _nan_hand() -> Hand:
    hand = _hand(HandSide.RIGHT)
    vertices = np.frombuffer(hand.vertices, np.float32).copy()
    vertices[7] = np.nan
    hand.vertices = vertices.tolist()
    return hand


class _FixedTF:
    """TF that knows the camera's pose in map at every stamp (what the ego node publishes)."""

    def lookup(self, target: str, source: str, stamp_ns: int, timeout_s: float = 0.0) -> np.ndarray:
        if (target, source) != (CAMERA_FRAME, "map"):
            raise TransformUnavailable(f"no {source} -> {target}")
        return np.linalg.inv(T_MAP_CAMERA)

    def close(self) -> None:
        pass


def test_each_unusable_hand_is_left_out_with_its_reason(avatar_file):
    renderer = AvatarRenderer.from_files(MODEL, [str(avatar_file)])
    processor = GaussianMessageProcessor(renderer, ViewSpec(32, 32), "render_frame", _FixedTF())
    other_model = _hand(HandSide.RIGHT)
    other_model.model_name = "mano"
    bad_side = _hand(HandSide.RIGHT)
    bad_side.side = 7
    hands = [_hand(HandSide.LEFT), _hand(HandSide.RIGHT, with_vertices=False), _nan_hand(), other_model, bad_side,
             _hand(HandSide.RIGHT)]  # fmt: skip
    out = processor.process(HandArray(header=hands[0].header, hands=hands), render=True, clouds=True)
    assert out.drawn == ["right"] and out.render is not None and list(out.clouds) == ["right"]
    reasons = "\n".join(out.skipped)
    for expected in ("hand 0 (left): no avatar for the left hand", "hand 1 (right): no vertices",
                     "hand 2 (right): the right hand's vertices are not all finite",
                     "hand 3 (right): the right hand is a 'mano' mesh", "hand 4 (side 7): Hand.side must be"):
        assert expected in reasons
    # the camera's pose unknown: nothing can be lit, so nothing is drawn, with the reason
    moved = _hand(HandSide.RIGHT)
    moved.image_frame_id = "elsewhere"
    with pytest.raises(InputError, match="no TF from 'map' to the camera 'elsewhere'"):
        processor.process(HandArray(header=moved.header, hands=[moved]))
    # a hand behind the camera: a warning, no render
    behind = _hand(HandSide.RIGHT)
    flipped = np.frombuffer(behind.vertices, np.float32).reshape(-1, 3).astype(np.float64)
    cam = (flipped - T_MAP_CAMERA[:3, 3]) @ T_MAP_CAMERA[:3, :3]
    cam[:, 2] -= 0.8
    behind.vertices = (cam @ T_MAP_CAMERA[:3, :3].T + T_MAP_CAMERA[:3, 3]).astype(np.float32).ravel().tolist()
    out = processor.process(HandArray(header=behind.header, hands=[behind]))
    assert out.render is None and "behind the camera" in out.warnings[0]


def test_unusable_avatar_files_fail_the_configure_and_stay_untouched(context, avatar_file, tmp_path):
    empty = _node(context)
    assert empty._processor is None  # autostart's configure failed: avatar_files is empty
    empty.destroy_node()
    broken = tmp_path / "right.avatar.pt"
    broken.write_bytes(avatar_file.read_bytes()[:500])
    node = _node(context, avatar_files=[str(broken)])
    try:
        assert node._processor is None
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert broken.read_bytes() == avatar_file.read_bytes()[:500]
    finally:
        node.destroy_node()
    twice = _node(context, avatar_files=[str(avatar_file), str(avatar_file)])
    assert twice._processor is None  # two avatars of one side
    twice.destroy_node()


def test_behind_the_ego_node_every_tracked_frame_is_rendered_and_overlaid(context, tmp_path):
    """The message contract between the nodes: the ego node's hands (vertices, image frame) and TF (its camera
    pose) are what the gaussian node needs to draw each frame from the virtual camera and over the image."""
    from ego_fixtures import StampOracle, frame_messages, frame_stamp, synthetic_frames

    from hand_scene_perception.ros.ego.node import EgoReconstructionNode

    frames = synthetic_frames(6)
    files = []
    for side in HandSide:
        files.append(tmp_path / f"{side.value}.avatar.pt")
        save_avatar(files[-1], new_avatar(MODEL, side), side)
    ego = EgoReconstructionNode(context=context, detector=StampOracle(frames),
                                parameter_overrides=[Parameter("diagnostics_period_s", value=0.2)])  # fmt: skip
    gaussian = _node(context, avatar_files=[str(f) for f in files])
    listen = {"render": (Image, 10), "overlay": (Image, 10), "hands": (HandArray, 10)}
    harness = NodeHarness(context, ego, listen=listen)
    harness.executor.add_node(gaussian)
    try:
        harness.wait_connected()
        assert harness.wait_for(lambda: gaussian._outputs["overlay"].get_subscription_count() > 0)
        assert harness.wait_for(lambda: gaussian.count_publishers("hands") > 0)
        for frame in frames:
            harness.publish(frame_messages(frame))
            assert harness.wait_for(lambda f=frame: frame_stamp(f) in {time_ns(m.header.stamp) for m in
                                                                       harness.messages("overlay")}, 20.0)  # fmt: skip
        tracked = {time_ns(m.header.stamp) for m in harness.messages("hands") if m.hands}
        rendered = {time_ns(m.header.stamp) for m in harness.messages("render")}
        assert tracked == {frame_stamp(f) for f in frames} and tracked <= rendered
        overlay = _pixels(harness.messages("overlay")[-1])
        assert not np.array_equal(overlay, frames[-1].rgb)  # the avatar is drawn over the camera image
    finally:
        harness.close()
        gaussian.destroy_node()

"""Tests of the open hand model: interface, topology, kinematics, mirroring, skinning and shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hand_scene_perception.core.hand_model.base import HandModel
from hand_scene_perception.core.hand_model.joint_order import MEDIAPIPE_JOINT_NAMES, MEDIAPIPE_PARENTS
from hand_scene_perception.core.hand_model.open_model import OpenHandModel, mirror_pose, rest_skeleton
from hand_scene_perception.core.hand_model.poses import POSE_NAMES, named_local_angles, named_pose

J = {name: i for i, name in enumerate(MEDIAPIPE_JOINT_NAMES)}
FINGERS = ("thumb", "index", "middle", "ring", "pinky")


@pytest.fixture(scope="module")
def model() -> OpenHandModel:
    return OpenHandModel()


@pytest.fixture(scope="module")
def rest(model):
    return model.forward(np.zeros((16, 3), np.float32))


def _volume(v: np.ndarray, f: np.ndarray) -> float:
    return float(np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6)


def _chain(joints: np.ndarray, finger: str) -> np.ndarray:
    first = J["thumb_cmc"] if finger == "thumb" else J[f"{finger}_mcp"]
    return joints[first : first + 4]


def _chain_length(joints: np.ndarray, finger: str) -> float:
    return float(np.linalg.norm(np.diff(_chain(joints, finger), axis=0), axis=1).sum())


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_satisfies_protocol_and_sizes(model):
    assert isinstance(model, HandModel)
    assert model.name == "open_hand_v1"
    assert model.num_shape_params >= 10
    assert 2000 <= len(model.faces("right")) <= 8000


def test_numpy_and_torch_io(model):
    out = model.forward(np.zeros(48))
    assert out.vertices.shape == (1, model.num_vertices, 3) and out.vertices.dtype == np.float32
    assert out.joints.shape == (1, 21, 3) and out.joints.dtype == np.float32
    assert out.faces.dtype == np.int64
    for dtype in (torch.float32, torch.float64):
        t = model.forward(torch.zeros(3, 16, 3, dtype=dtype), shape=torch.zeros(10, dtype=dtype))
        assert isinstance(t.vertices, torch.Tensor) and t.vertices.dtype == dtype
        assert t.vertices.shape == (3, model.num_vertices, 3) and t.joints.shape == (3, 21, 3)
    with pytest.raises(ValueError):
        model.forward(np.zeros((16, 2)))
    with pytest.raises(ValueError):
        model.forward(np.zeros((2, 16, 3)), shape=np.zeros((3, 10)))


def test_batch_entries_are_independent(model):
    poses = np.stack([np.zeros((16, 3)), named_pose("fist")]).astype(np.float32)
    both = model.forward(poses, transl=np.array([[0, 0, 0], [0.1, 0.2, 0.3]]))
    single = model.forward(poses[1], transl=np.array([0.1, 0.2, 0.3]))
    np.testing.assert_allclose(both.vertices[1], single.vertices[0], atol=1e-6)
    np.testing.assert_allclose(both.joints[0], model.forward(poses[0]).joints[0], atol=1e-6)


@pytest.mark.parametrize("side", ["right", "left"])
def test_watertight_and_outward(model, rest, side):
    f = model.faces(side)
    v = model.forward(np.zeros((16, 3)), side=side).vertices[0]
    undirected = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(undirected, axis=0, return_counts=True)
    assert np.all(counts == 2)
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)  # consistent orientation
    assert len(np.unique(f)) - len(counts) + len(f) == 2  # Euler characteristic of a sphere
    assert _volume(v, f) > 2e-4  # outward normals and a hand-sized volume (m³)


def test_rest_joint_layout(rest):
    j = rest.joints[0]
    np.testing.assert_allclose(j[J["wrist"]], 0, atol=1e-7)
    mid = j[J["middle_mcp"]]
    assert mid[0] > 0.06 and abs(mid[1]) < 1e-6 and abs(mid[2]) < 1e-6  # +x toward the middle MCP
    assert j[J["index_mcp"], 1] > 0 > j[J["pinky_mcp"], 1]  # right hand: +y toward the thumb
    assert j[J["thumb_tip"], 1] > j[J["index_tip"], 1]
    hand_length = np.linalg.norm(j[J["middle_tip"]])
    assert 0.175 < hand_length < 0.195
    width = j[J["index_mcp"], 1] - j[J["pinky_mcp"], 1]
    assert 0.045 < width < 0.07  # knuckle centres; the skin adds ~2 cm to the 8.5 cm palm
    for finger in FINGERS:
        chain = _chain(j, finger)
        # Each chain moves away from the wrist, the tip is the farthest point.
        dist = np.linalg.norm(chain, axis=1)
        assert np.all(np.diff(dist) > 0), finger
    # The index MCP lies between wrist and index tip.
    assert 0 < np.dot(j[J["index_mcp"]], j[J["index_tip"]]) < np.dot(j[J["index_tip"]], j[J["index_tip"]])
    for child, parent in enumerate(MEDIAPIPE_PARENTS):
        if parent >= 0:
            assert np.linalg.norm(j[child] - j[parent]) > 0.01


def test_tips_lie_on_the_surface_at_the_finger_ends(model, rest):
    v, j = rest.vertices[0], rest.joints[0]
    skeleton = rest_skeleton()
    for finger, row in zip(FINGERS, (4, 8, 12, 16, 20), strict=True):
        assert np.min(np.linalg.norm(v - j[row], axis=1)) < 1e-7
        assert np.linalg.norm(j[row] - skeleton[16 + FINGERS.index(finger)]) < 0.004


def test_identity_pose_gives_rest_and_global_rotation_is_rigid(model, rest):
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    pose = np.zeros((16, 3))
    pose[0] = axis * 0.9
    rotated = model.forward(pose)
    rot = _rotation(axis, 0.9)
    np.testing.assert_allclose(rotated.vertices[0], rest.vertices[0] @ rot.T, atol=1e-5)
    np.testing.assert_allclose(rotated.joints[0], rest.joints[0] @ rot.T, atol=1e-5)
    shifted = model.forward(np.zeros((16, 3)), transl=np.array([0.1, -0.2, 0.5]))
    np.testing.assert_allclose(shifted.joints[0] - [0.1, -0.2, 0.5], rest.joints[0], atol=1e-6)


def test_flexion_curls_toward_palm_and_stays_continuous(model, rest):
    pose = model.pose_from_local(np.r_[np.zeros((1, 3)), [[np.pi / 2, 0, 0]], np.zeros((14, 3))])
    out = model.forward(pose.astype(np.float32))
    v, j = out.vertices[0], out.joints[0]
    assert np.isfinite(v).all()
    # 90° index MCP flexion: the index tip goes palmar (-z), other fingers stay put.
    assert j[J["index_tip"], 2] < -0.08
    np.testing.assert_allclose(j[J["middle_tip"]], rest.joints[0, J["middle_tip"]], atol=1e-6)
    bone = j[J["index_pip"]] - j[J["index_mcp"]]
    assert np.dot(bone / np.linalg.norm(bone), [0, 0, -1]) > 0.95
    f = model.faces("right")
    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    before = np.linalg.norm(np.diff(rest.vertices[0][edges], axis=1)[:, 0], axis=1)
    after = np.linalg.norm(np.diff(v[edges], axis=1)[:, 0], axis=1)
    assert np.max(after / before) < 3.0  # no tearing: edges stretch a bounded amount
    assert _volume(v, f) > 0.8 * _volume(rest.vertices[0], f)


def test_left_is_mirror_of_right(model):
    pose = named_pose("pinch") + np.random.default_rng(0).normal(0, 0.1, (16, 3))
    right = model.forward(pose)
    left = model.forward(mirror_pose(pose), side="left")
    mirror = np.array([1.0, -1.0, 1.0])
    np.testing.assert_allclose(left.vertices[0], right.vertices[0] * mirror, atol=1e-5)
    np.testing.assert_allclose(left.joints[0], right.joints[0] * mirror, atol=1e-5)
    assert _volume(left.vertices[0], model.faces("left")) > 0
    assert np.array_equal(model.faces("left"), model.faces("right")[:, ::-1])
    # Named poses are mirrored per side, so they give the same gesture on both hands.
    np.testing.assert_allclose(named_pose("fist", "left"), mirror_pose(named_pose("fist", "right")), atol=1e-12)


def test_shape_lengths_and_scale(model, rest):
    base = rest.joints[0]
    beta = np.zeros(model.num_shape_params)
    beta[model.shape_param_names.index("index_length")] = 0.1
    longer = model.forward(np.zeros((16, 3)), shape=beta).joints[0]
    assert _chain_length(longer, "index") == pytest.approx(1.1 * _chain_length(base, "index"), rel=1e-3)
    for finger in ("thumb", "middle", "ring", "pinky"):
        np.testing.assert_allclose(_chain(longer, finger), _chain(base, finger), atol=1e-6)
    beta[:] = 0
    beta[0] = 0.2
    scaled = model.forward(np.zeros((16, 3)), shape=beta)
    np.testing.assert_allclose(scaled.joints[0], 1.2 * base, atol=1e-6)
    beta[:] = 0
    beta[model.shape_param_names.index("palm_width")] = 0.1
    wide = model.forward(np.zeros((16, 3)), shape=beta).joints[0]
    span = wide[J["index_mcp"], 1] - wide[J["pinky_mcp"], 1]
    assert span == pytest.approx(1.1 * (base[J["index_mcp"], 1] - base[J["pinky_mcp"], 1]), rel=1e-3)
    beta[:] = 0
    beta[model.shape_param_names.index("finger_thickness")] = 0.2
    thick = model.forward(np.zeros((16, 3)), shape=beta)
    np.testing.assert_allclose(thick.joints[0, :5], base[:5], atol=0.003)
    assert _volume(thick.vertices[0], model.faces("right")) > _volume(rest.vertices[0], model.faces("right"))


def test_gradients_flow(model):
    pose = torch.tensor(named_pose("pinch"), dtype=torch.float64, requires_grad=True)
    shape = torch.zeros(model.num_shape_params, dtype=torch.float64, requires_grad=True)
    out = model.forward(pose, shape=shape, side="left")
    (out.joints.square().sum() + out.vertices.square().sum()).backward()
    assert torch.isfinite(pose.grad).all() and pose.grad.abs().sum() > 0
    assert torch.isfinite(shape.grad).all() and shape.grad.abs().sum() > 0
    zero = torch.zeros(16, 3, requires_grad=True)
    model.forward(zero).joints.sum().backward()
    assert torch.isfinite(zero.grad).all()


def test_named_poses_within_limits_and_meaningful(model):
    lower, upper = model.joint_limits()
    for side in ("right", "left"):
        for name in POSE_NAMES:
            local = model.local_from_pose(named_pose(name, side), side)
            np.testing.assert_allclose(local, named_local_angles(name), atol=1e-9)
            assert np.all(local >= lower) and np.all(local <= upper), (name, side)
    pinch = model.forward(named_pose("pinch")).joints[0]
    assert np.linalg.norm(pinch[J["thumb_tip"]] - pinch[J["index_tip"]]) < 0.012
    fist = model.forward(named_pose("fist")).joints[0]
    for finger in ("index", "middle", "ring", "pinky"):
        # Curled fingertips come back near their knuckles.
        assert np.linalg.norm(fist[J[f"{finger}_tip"]] - fist[J[f"{finger}_mcp"]]) < 0.06
    with pytest.raises(ValueError, match="known poses"):
        named_pose("wave")


def test_clamp_pose_projects_into_limits(model):
    pose = model.pose_from_local(np.full((16, 3), 3.0))
    lower, upper = model.joint_limits()
    local = model.local_from_pose(model.clamp_pose(pose))
    assert np.all(local <= upper + 1e-9) and np.all(local >= lower - 1e-9)
    tensor = model.clamp_pose(torch.tensor(pose))
    np.testing.assert_allclose(tensor.numpy(), model.clamp_pose(pose), atol=1e-12)

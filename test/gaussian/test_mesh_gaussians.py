"""Mesh-guided Gaussians: anchored on the posed mesh, oriented by its faces, appearance from zero-started MLPs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.hand_model import HandSide, create_hand_model
from hand_scene_perception.gaussian.mesh_gaussians import (
    GAUSSIANS_PER_FACE,
    MAX_LOG_SCALE_RESIDUAL,
    MeshGaussians,
    face_frames,
    face_quaternions,
    matrix_to_quaternion,
    mesh_sampling,
)
from hand_scene_perception.gaussian.splat_ply import SH_C0, write_splat_ply


@pytest.fixture(scope="module")
def open_hand():
    model = create_hand_model("open")
    rest = model.forward(np.zeros((16, 3), np.float32), side=HandSide.RIGHT)
    return model, np.asarray(rest.vertices[0], np.float64), model.faces(HandSide.RIGHT)


def _tetrahedron() -> tuple[np.ndarray, np.ndarray]:
    vertices = np.array([[0.0, 0, 0], [0.02, 0, 0], [0, 0.02, 0], [0, 0, 0.02]])
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return vertices, faces


def test_samples_are_on_their_faces_uniform_and_fixed_per_model():
    sampling = mesh_sampling(500, "open_hand_v1")
    assert sampling.shape == (500, GAUSSIANS_PER_FACE, 3)
    assert np.all(sampling >= 0) and np.allclose(sampling.sum(axis=-1), 1.0)
    np.testing.assert_array_equal(sampling, mesh_sampling(500, "open_hand_v1"))  # rebuilt identically
    assert not np.array_equal(sampling, mesh_sampling(500, "mano"))  # seeded per model
    # uniform over the triangle: each barycentric coordinate has mean 1/3 and the first has P(b0 > 1/2) = 1/4
    assert np.allclose(sampling.reshape(-1, 3).mean(axis=0), 1 / 3, atol=0.01)
    assert abs(np.mean(sampling[..., 0] > 0.5) - 0.25) < 0.02
    with pytest.raises(ValueError, match="at least one face"):
        mesh_sampling(0, "open_hand_v1")


def test_gaussians_follow_the_posed_mesh(open_hand):
    model, rest, faces = open_hand
    gaussians = MeshGaussians(faces, rest, model.name)
    assert gaussians.num_gaussians == len(faces) * GAUSSIANS_PER_FACE
    pose = np.zeros((16, 3), np.float32)
    pose[[2, 3, 5, 6]] = [0.0, 0.0, 0.6]  # bend two fingers
    posed = np.asarray(model.forward(pose, side=HandSide.RIGHT).vertices[0], np.float64)
    rotation = Rotation.from_rotvec([0.3, -0.5, 0.9])
    moved = rotation.apply(posed) + [0.1, -0.2, 0.5]
    out = gaussians(torch.as_tensor(np.stack([posed, moved]), dtype=torch.float32))
    positions = out.positions.double().numpy()
    # on the posed mesh: each Gaussian is its face's corners weighted by its barycentric coordinates
    expected = np.einsum("fkc,fcd->fkd", mesh_sampling(len(faces), model.name), posed[faces]).reshape(-1, 3)
    np.testing.assert_allclose(positions[0], expected, atol=1e-6)
    # and a rigid motion of the mesh moves positions and orientations with it
    np.testing.assert_allclose(positions[1], rotation.apply(positions[0]) + [0.1, -0.2, 0.5], atol=1e-5)
    turned = rotation * Rotation.from_quat(out.rotations[0].double().numpy()[:, [1, 2, 3, 0]])
    angle = (turned.inv() * Rotation.from_quat(out.rotations[1].double().numpy()[:, [1, 2, 3, 0]])).magnitude()
    assert angle.max() < 1e-3
    # pose-independent scales, shared by the batch; colours per pose (shading), equal while the shading is neutral
    assert out.colors.shape == out.scales.shape == (2, gaussians.num_gaussians, 3)
    torch.testing.assert_close(out.scales[0], out.scales[1])
    torch.testing.assert_close(out.colors[0], out.colors[1])


def test_shading_darkens_faces_turned_from_the_light():
    vertices, faces = _tetrahedron()
    gaussians = MeshGaussians(faces, vertices, "tetrahedron")
    with torch.no_grad():
        gaussians.light_direction.copy_(torch.tensor([0.0, 0.0, 1.0]))
        gaussians.ambient.fill_(0.2)
        gaussians.diffuse_gain.fill_(0.8)
    normals = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    # facing the light: full; sideways: the wrapped Lambert's 1/3; away: ambient only
    torch.testing.assert_close(gaussians.shading(normals), torch.tensor([1.0, 0.2 + 0.8 / 3, 0.2]))
    out = gaussians(torch.as_tensor(vertices))
    frames = face_frames(torch.as_tensor(vertices, dtype=torch.float32), torch.as_tensor(faces))
    expected = 0.5 * gaussians.shading(frames[..., 2]).repeat_interleave(GAUSSIANS_PER_FACE)
    torch.testing.assert_close(out.colors, expected[:, None].expand(-1, 3))  # mid-grey albedo times the shading


def test_rotations_are_the_face_frames():
    vertices, faces = _tetrahedron()
    quaternions = face_quaternions(torch.as_tensor(vertices), torch.as_tensor(faces)).numpy()
    np.testing.assert_allclose(np.linalg.norm(quaternions, axis=1), 1.0, atol=1e-12)
    assert np.all(quaternions[:, 0] >= 0)
    matrices = Rotation.from_quat(quaternions[:, [1, 2, 3, 0]]).as_matrix()
    corners = vertices[faces]
    edges = corners[:, 1] - corners[:, 0]
    normals = np.cross(edges, corners[:, 2] - corners[:, 0])
    np.testing.assert_allclose(matrices[:, :, 0], edges / np.linalg.norm(edges, axis=1, keepdims=True), atol=1e-9)
    np.testing.assert_allclose(matrices[:, :, 2], normals / np.linalg.norm(normals, axis=1, keepdims=True), atol=1e-9)
    # the normals point out of the closed tetrahedron (counter-clockwise faces)
    assert np.all(np.einsum("ij,ij->i", normals, corners.mean(axis=1) - vertices.mean(axis=0)) > 0)


@pytest.mark.parametrize("rotvec", [[0, 0, 0], [np.pi, 0, 0], [0, np.pi, 0], [0, 0, np.pi], [2.0, -1.0, 0.5],
                                    [0.0, 3.1, 0.2], [1e-9, 0, 0]])  # fmt: skip
def test_matrix_to_quaternion_inverts_every_branch(rotvec):
    rotation = Rotation.from_rotvec(rotvec)
    quaternion = matrix_to_quaternion(torch.as_tensor(rotation.as_matrix())).numpy()
    expected = rotation.as_quat()[[3, 0, 1, 2]]
    expected = expected if expected[0] > 0 or (expected[0] == 0 and quaternion @ expected > 0) else -expected
    np.testing.assert_allclose(np.abs(quaternion @ expected), 1.0, atol=1e-9)  # same rotation, either sign at w = 0
    np.testing.assert_allclose(Rotation.from_quat(quaternion[[1, 2, 3, 0]]).as_matrix(), rotation.as_matrix(),
                               atol=1e-9)  # fmt: skip


def test_appearance_starts_at_its_base_and_learns_within_bounds():
    vertices, faces = _tetrahedron()
    gaussians = MeshGaussians(faces, vertices, "tetrahedron")
    out = gaussians(torch.as_tensor(vertices))
    torch.testing.assert_close(out.colors, torch.full_like(out.colors, 0.5))  # zero output layers: mid-grey
    torch.testing.assert_close(out.scales, torch.exp(gaussians.log_scale_base)[:, None].expand(-1, 3))
    # the base is the face's area shared among its samples
    area = 0.5 * np.linalg.norm(np.cross(vertices[faces][:, 1] - vertices[faces][:, 0],
                                         vertices[faces][:, 2] - vertices[faces][:, 0]), axis=1)  # fmt: skip
    expected = np.repeat(np.sqrt(area / (np.pi * GAUSSIANS_PER_FACE)), GAUSSIANS_PER_FACE)
    np.testing.assert_allclose(torch.exp(gaussians.log_scale_base).detach().numpy(), expected, rtol=1e-6)
    assert gaussians.opacity_loss().item() == pytest.approx((1 - 0.99) ** 2, rel=1e-4)

    # a few steps toward red, huge Gaussians and full opacity: colours and opacity move, scales stay bounded
    optimiser = torch.optim.Adam(gaussians.parameters(), lr=0.05)
    for _ in range(60):
        out = gaussians(torch.as_tensor(vertices))
        red = torch.mean((out.colors - torch.tensor([1.0, 0.0, 0.0])) ** 2)
        loss = red - torch.log(out.scales).mean() + gaussians.opacity_loss()  # (larger and larger Gaussians)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        out = gaussians(torch.as_tensor(vertices))
    assert out.colors[:, 0].mean().item() > 0.8 and out.colors[:, 1:].mean().item() < 0.2
    residual = torch.log(out.scales) - gaussians.log_scale_base[:, None]
    assert 0.5 * MAX_LOG_SCALE_RESIDUAL < residual.max().item() <= MAX_LOG_SCALE_RESIDUAL + 1e-6  # pushed, bounded
    assert gaussians.opacity_loss().item() < (1 - 0.99) ** 2


def test_embeddings_from_outside_replace_the_learnt_ones_per_frame():
    vertices, faces = _tetrahedron()
    gaussians = MeshGaussians(faces, vertices, "tetrahedron")
    torch.nn.init.normal_(gaussians.color_mlp[2].weight)
    frames = torch.as_tensor(np.stack([vertices, vertices + 0.01]))
    generator = torch.Generator().manual_seed(0)
    predicted = torch.randn(2, len(vertices), gaussians.vertex_embeddings.shape[1], generator=generator)
    out = gaussians(frames, vertex_embeddings=predicted)
    assert out.colors.shape == (2, gaussians.num_gaussians, 3)
    assert not torch.allclose(out.colors[0], out.colors[1])


def test_bad_meshes_are_refused():
    vertices, faces = _tetrahedron()
    with pytest.raises(ValueError, match="index vertex"):
        MeshGaussians(faces + 1, vertices, "tetrahedron")
    with pytest.raises(ValueError, match=r"\(F, 3\)"):
        MeshGaussians(faces[:, :2], vertices, "tetrahedron")
    gaussians = MeshGaussians(faces, vertices, "tetrahedron")
    with pytest.raises(ValueError, match="vertices must be"):
        gaussians(torch.zeros(5, 3))


def _read_ply(path) -> tuple[list[str], np.ndarray]:
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    names = [line.split()[-1] for line in header if line.startswith("property")]
    assert all(line.split()[1] == "float" for line in header if line.startswith("property"))
    return header, np.frombuffer(data[end:], np.dtype([(name, "<f4") for name in names]))


def test_a_posed_avatar_exports_to_the_3dgs_layout(tmp_path):
    vertices, faces = _tetrahedron()
    gaussians = MeshGaussians(faces, vertices, "tetrahedron")
    torch.nn.init.normal_(gaussians.color_mlp[2].weight)  # colours other than grey
    posed = gaussians(torch.as_tensor(vertices + [0.0, 0.0, 0.4]))
    write_splat_ply(tmp_path / "hand.ply", posed)
    header, rows = _read_ply(tmp_path / "hand.ply")
    assert header[:2] == ["ply", "format binary_little_endian 1.0"] and f"element vertex {len(posed)}" in header
    assert list(rows.dtype.names) == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                                      "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]  # fmt: skip
    column = lambda *names: np.stack([rows[name] for name in names], axis=1).astype(np.float64)  # noqa: E731
    np.testing.assert_allclose(column("x", "y", "z"), posed.positions.detach().numpy(), atol=1e-7)
    np.testing.assert_allclose(0.5 + SH_C0 * column("f_dc_0", "f_dc_1", "f_dc_2"), posed.colors.detach().numpy(),
                               atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(1 / (1 + np.exp(-rows["opacity"])), posed.opacities.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(np.exp(column("scale_0", "scale_1", "scale_2")), posed.scales.detach().numpy(),
                               rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose(column("rot_0", "rot_1", "rot_2", "rot_3"), posed.rotations.detach().numpy(), atol=1e-7)
    assert not np.any(column("nx", "ny", "nz"))


def test_a_batch_or_a_nan_pose_is_not_exported_and_nothing_is_lost(tmp_path):
    vertices, faces = _tetrahedron()
    gaussians = MeshGaussians(faces, vertices, "tetrahedron")
    target = tmp_path / "hand.ply"
    write_splat_ply(target, gaussians(torch.as_tensor(vertices)))
    before = target.read_bytes()
    with pytest.raises(ValueError, match="not a batch"):
        write_splat_ply(target, gaussians(torch.as_tensor(np.stack([vertices, vertices]))))
    broken = vertices.copy()
    broken[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_splat_ply(target, gaussians(torch.as_tensor(broken)))
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["hand.ply"]


def test_appearance_computed_once_poses_the_same_avatar():
    vertices, faces = _tetrahedron()
    gaussians = MeshGaussians(faces, vertices, "tetrahedron")
    torch.nn.init.normal_(gaussians.scale_mlp[2].weight)
    torch.nn.init.normal_(gaussians.color_mlp[2].weight)
    appearance = gaussians.appearance()
    for offset in (0.0, 0.05):
        frame = torch.as_tensor(vertices + offset)
        reused, fresh = gaussians(frame, appearance=appearance), gaussians(frame)
        for name in ("positions", "rotations", "scales", "colors", "opacities"):
            torch.testing.assert_close(getattr(reused, name), getattr(fresh, name))
    black = gaussians(torch.as_tensor(vertices), appearance=(torch.zeros_like(appearance[0]), appearance[1]))
    assert not black.colors.any()  # what is passed is what is used


def test_the_same_model_gives_the_same_untrained_avatar():
    vertices, faces = _tetrahedron()
    first, second = MeshGaussians(faces, vertices, "tetrahedron"), MeshGaussians(faces, vertices, "tetrahedron")
    for name, value in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[name], value, rtol=0, atol=0)
    assert not torch.equal(MeshGaussians(faces, vertices, "other").color_mlp[0].weight, first.color_mlp[0].weight)

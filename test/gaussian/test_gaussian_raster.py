"""The CPU Gaussian rasteriser: EWA footprints, front-to-back compositing, gradients, culling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hand_scene_perception.core.camera import PinholeCamera
from hand_scene_perception.core.hand_model import HandSide, create_hand_model
from hand_scene_perception.gaussian.mesh_gaussians import Gaussians, MeshGaussians
from hand_scene_perception.gaussian.raster import LOW_PASS_PX2, quaternion_matrices, render_gaussians

CAMERA = PinholeCamera.from_intrinsics(100.0, 100.0, 15.0, 12.0, 32, 24)


def _gaussians(positions, scales, colors, opacities, rotations=None) -> Gaussians:
    positions = torch.as_tensor(positions, dtype=torch.float64).reshape(-1, 3)
    count = len(positions)
    rotations = torch.tensor([[1.0, 0, 0, 0]] * count, dtype=torch.float64) if rotations is None else rotations
    return Gaussians(positions, rotations, torch.as_tensor(scales, dtype=torch.float64).reshape(count, 3),
                     torch.as_tensor(colors, dtype=torch.float64).reshape(count, 3),
                     torch.as_tensor(opacities, dtype=torch.float64).reshape(count))  # fmt: skip


def test_one_gaussian_is_its_projected_bell_over_the_background():
    sigma, depth = 0.004, 0.5  # 0.8 px on screen, plus the low-pass
    one = _gaussians([0.01, -0.005, depth], [sigma] * 3, [1.0, 0.5, 0.0], [0.8])
    out = render_gaussians(one, CAMERA, background=(0.0, 0.0, 1.0))
    x, y = 0.01, -0.005
    u0, v0 = 100 * x / depth + 15, 100 * y / depth + 12
    # EWA: the isotropic 3D covariance through the projection's Jacobian, plus the low-pass
    jacobian = np.array([[100 / depth, 0, -100 * x / depth**2], [0, 100 / depth, -100 * y / depth**2]])
    inverse = np.linalg.inv(sigma**2 * jacobian @ jacobian.T + LOW_PASS_PX2 * np.eye(2))
    rows, cols = np.mgrid[0:24, 0:32]
    offsets = np.stack([cols - u0, rows - v0], axis=-1)
    expected = 0.8 * np.exp(-0.5 * np.einsum("...i,ij,...j->...", offsets, inverse, offsets))
    expected = np.where(expected >= 1 / 255, expected, 0.0)
    np.testing.assert_allclose(out.alpha.numpy(), expected, atol=1e-9)
    np.testing.assert_allclose(out.image.numpy(), expected[..., None] * [1.0, 0.5, 0.0]
                               + (1 - expected[..., None]) * [0.0, 0.0, 1.0], atol=1e-9)  # fmt: skip
    np.testing.assert_allclose(out.depth.numpy()[expected > 0], depth)


def test_an_anisotropic_gaussian_follows_its_rotation():
    rotation = Rotation.from_rotvec([0.0, 0.0, np.pi / 2])  # the long x axis turned onto the image's v axis
    quaternion = torch.as_tensor(rotation.as_quat()[[3, 0, 1, 2]])[None]
    long = _gaussians([0.0, 0.0, 0.5], [0.02, 0.002, 0.002], [1, 1, 1], [0.9], rotations=quaternion)
    alpha = render_gaussians(long, PinholeCamera.from_intrinsics(100.0, 100.0, 15.0, 15.0, 31, 31)).alpha.numpy()
    assert alpha[15 + 5, 15] > 0.3 and alpha[15, 15 + 5] < 1e-3  # spread along v, thin along u
    np.testing.assert_allclose(quaternion_matrices(quaternion)[0].numpy(), rotation.as_matrix(), atol=1e-12)


def test_the_nearer_gaussian_covers_the_farther_whatever_their_order():
    near = ([0.0, 0.0, 0.4], [0.01] * 3, [1.0, 0.0, 0.0], [0.9])
    far = ([0.0, 0.0, 0.8], [0.02] * 3, [0.0, 1.0, 0.0], [0.9])
    for first, second in ((near, far), (far, near)):
        both = _gaussians(*[np.concatenate([np.ravel(a), np.ravel(b)]) for a, b in zip(first, second, strict=True)])
        pixel = render_gaussians(both, CAMERA).image[12, 15].numpy()
        # composited front to back: 0.9 red, then 0.9 of the remaining 0.1 green
        np.testing.assert_allclose(pixel, [0.9, 0.1 * 0.9, 0.0], atol=1e-6)


def test_gaussians_behind_or_beside_the_camera_draw_nothing():
    hidden = _gaussians([[0.0, 0.0, -0.5], [0.0, 0.0, 0.005], [5.0, 0.0, 0.5]], [0.01] * 9, [1.0] * 9, [0.9] * 3)
    out = render_gaussians(hidden, CAMERA, background=(0.2, 0.3, 0.4))
    assert not out.alpha.any() and torch.allclose(out.image, torch.tensor([0.2, 0.3, 0.4], dtype=torch.float64))


def test_gradients_match_finite_differences():
    torch.manual_seed(0)
    positions = (torch.tensor([[0.0, 0.0, 0.5], [0.004, 0.002, 0.6]], dtype=torch.float64)).requires_grad_(True)
    scales = torch.full((2, 3), 0.006, dtype=torch.float64, requires_grad=True)
    colors = torch.tensor([[0.9, 0.2, 0.1], [0.1, 0.8, 0.3]], dtype=torch.float64, requires_grad=True)
    opacities = torch.tensor([0.7, 0.6], dtype=torch.float64, requires_grad=True)
    rotations = torch.tensor([[0.9, 0.1, 0.3, 0.2], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    weights = torch.rand(24, 32, 3, dtype=torch.float64)

    def loss(positions, rotations, scales, colors, opacities):
        out = render_gaussians(Gaussians(positions, rotations, scales, colors, opacities), CAMERA)
        return (out.image * weights).sum()

    assert torch.autograd.gradcheck(loss, (positions, rotations, scales, colors, opacities), eps=1e-7, atol=1e-4)


def test_an_avatar_renders_where_its_hand_is(tmp_path):
    model = create_hand_model("open")
    rest = np.asarray(model.forward(np.zeros((16, 3), np.float32), side=HandSide.RIGHT).vertices[0], np.float64)
    avatar = MeshGaussians(model.faces(HandSide.RIGHT), rest, model.name)
    camera = PinholeCamera.from_intrinsics(300.0, 300.0, 64.0, 64.0, 128, 128)
    placed = rest - rest.mean(axis=0) + [0.0, 0.0, 0.4]
    with torch.no_grad():
        out = render_gaussians(avatar(torch.as_tensor(placed, dtype=torch.float32)), camera)
    pixels = camera.project(placed)
    inside = np.zeros((128, 128), bool)
    cols, rows = np.clip(np.round(pixels).astype(int), 0, 127).T
    inside[rows, cols] = True
    coverage = out.alpha.numpy()
    assert coverage[inside].mean() > 0.9  # opaque where the mesh's vertices project
    far = np.ones((128, 128), bool)
    far[max(rows.min() - 5, 0):rows.max() + 6, max(cols.min() - 5, 0):cols.max() + 6] = False
    assert not coverage[far].any()  # nothing away from the hand
    np.testing.assert_allclose(out.image.numpy()[coverage > 0.99], 0.5, atol=0.01)  # an untrained avatar: grey


def test_bad_inputs_are_refused():
    one = _gaussians([0.0, 0.0, 0.5], [0.01] * 3, [1.0] * 3, [0.9])
    batch = Gaussians(one.positions[None], one.rotations[None], one.scales[None], one.colors, one.opacities)
    with pytest.raises(ValueError, match="not a batch"):
        render_gaussians(batch, CAMERA)
    distorted = PinholeCamera.from_intrinsics(100.0, 100.0, 15.0, 12.0, 32, 24, distortion_model="plumb_bob",
                                              d=(0.1, 0.0, 0.0, 0.0, 0.0))  # fmt: skip
    with pytest.raises(ValueError, match="pinhole"):
        render_gaussians(one, distorted)
    elsewhere = Gaussians(*(torch.empty_like(t, device="meta") for t in (one.positions, one.rotations, one.scales,
                                                                          one.colors, one.opacities)))  # fmt: skip
    with pytest.raises(ValueError, match="CPU"):
        render_gaussians(elsewhere, CAMERA)


def test_back_facing_gaussians_can_be_left_out():
    # z axis of the identity quaternion: +z, away from a camera looking down +z; turned by pi about x it faces it
    away = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    toward = torch.tensor([[0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    for rotation, drawn in ((away, False), (toward, True)):
        one = _gaussians([0.0, 0.0, 0.5], [0.01] * 3, [1.0] * 3, [0.9], rotations=rotation)
        assert render_gaussians(one, CAMERA).alpha.any()  # without culling: always drawn
        assert bool(render_gaussians(one, CAMERA, cull_back_facing=True).alpha.any()) is drawn


def test_without_gradients_the_compiled_loop_draws_the_same_hand():
    """The forward-only path (splat_kernel.py: one pass in depth order, early termination at 1e-4 transmittance)
    against the differentiable one on a posed, coloured hand: same image, coverage and depth."""
    model = create_hand_model("open")
    avatar = MeshGaussians(model.faces(HandSide.RIGHT), np.asarray(model.forward(
        np.zeros((16, 3), np.float32), side=HandSide.RIGHT).vertices[0], np.float64), model.name)  # fmt: skip
    with torch.no_grad():
        avatar.color_mlp[2].weight.normal_(generator=torch.Generator().manual_seed(1))
    pose = np.zeros((16, 3), np.float32)
    pose[0] = [0.4, 2.6, 0.3]
    pose[[2, 3, 8, 9]] = [0.0, 0.0, 0.8]
    vertices = np.asarray(model.forward(pose, side=HandSide.RIGHT).vertices[0])
    vertices = vertices - vertices.mean(axis=0) + [0.0, 0.0, 0.35]
    camera = PinholeCamera.from_intrinsics(260.0, 260.0, 47.5, 39.5, 96, 80)
    gaussians = avatar(torch.as_tensor(vertices, dtype=torch.float32))
    for cull in (True, False):
        traced = render_gaussians(gaussians, camera, background=(0.1, 0.5, 0.9), cull_back_facing=cull)
        assert traced.image.requires_grad  # (the differentiable path)
        with torch.no_grad():
            compiled = render_gaussians(gaussians, camera, background=(0.1, 0.5, 0.9), cull_back_facing=cull)
        assert compiled.alpha.mean() > 0.1
        for name in ("image", "alpha", "depth"):
            torch.testing.assert_close(getattr(compiled, name), getattr(traced, name).detach(), atol=2e-4, rtol=0)

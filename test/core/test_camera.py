"""PinholeCamera: validation, projection against OpenCV, exact inversion, resizing."""

from __future__ import annotations

import numpy as np
import pytest

from hand_scene_perception.core.camera import PinholeCamera

K = [500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0]
MODELS = {
    "plumb_bob": [-0.28, 0.07, 0.001, -0.0005, -0.01],
    "rational_polynomial": [0.5, -0.2, 0.001, 0.002, 0.05, 0.8, -0.1, 0.03],
    "equidistant": [0.1, -0.05, 0.01, -0.002],
    "": [],
}


def _camera(model: str) -> PinholeCamera:
    return PinholeCamera.from_camera_info_fields(640, 480, K, MODELS[model], model)


def _points(n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(0)
    z = rng.uniform(0.3, 3.0, n)
    xy = rng.uniform(-0.45, 0.45, (n, 2)) * z[:, None]
    return np.c_[xy, z]


def test_undistorted_projection_by_hand() -> None:
    cam = PinholeCamera.from_intrinsics(500.0, 400.0, 320.0, 240.0, 640, 480)
    # (0.2, -0.1, 2.0) -> x/z = 0.1, y/z = -0.05 -> u = 500*0.1+320 = 370, v = 400*-0.05+240 = 220
    np.testing.assert_allclose(cam.project(np.array([[0.2, -0.1, 2.0]])), [[370.0, 220.0]])
    np.testing.assert_allclose(cam.unproject(np.array([[370.0, 220.0]])), [[0.1, -0.05, 1.0]])
    np.testing.assert_allclose(cam.unproject(np.array([[370.0, 220.0]]), np.array([2.0])), [[0.2, -0.1, 2.0]])
    np.testing.assert_allclose(cam.K, [[500, 0, 320], [0, 400, 240], [0, 0, 1]])


@pytest.mark.parametrize("model", ["plumb_bob", "rational_polynomial"])
def test_radtan_matches_opencv(model: str) -> None:
    cv2 = pytest.importorskip("cv2")
    cam = _camera(model)
    pts = _points()
    ref = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), cam.K, np.array(MODELS[model]))[0][:, 0]
    np.testing.assert_allclose(cam.project(pts), ref, atol=1e-8)


def test_equidistant_matches_opencv_fisheye() -> None:
    cv2 = pytest.importorskip("cv2")
    cam = _camera("equidistant")
    pts = _points()
    ref = cv2.fisheye.projectPoints(pts[None], np.zeros(3), np.zeros(3), cam.K, np.array(MODELS["equidistant"]))[0][0]
    np.testing.assert_allclose(cam.project(pts), ref, atol=1e-8)


@pytest.mark.parametrize("model", list(MODELS))
def test_project_unproject_round_trip(model: str) -> None:
    cam = _camera(model)
    pts = _points()
    back = cam.unproject(cam.project(pts), pts[:, 2])
    np.testing.assert_allclose(back, pts, atol=1e-9)


@pytest.mark.parametrize("model", list(MODELS))
def test_undistort_whole_image_below_micro_pixel(model: str) -> None:
    cam = _camera(model)
    u, v = np.meshgrid(np.arange(0.0, 640.0, 7.0), np.arange(0.0, 480.0, 7.0))
    pixels = np.stack([u, v], axis=-1)  # (H', W', 2): batched leading axes are supported
    xy = cam.undistort_points(pixels)
    assert xy.shape == pixels.shape and np.all(np.isfinite(xy))
    reprojected = cam.project(np.concatenate([xy, np.ones((*xy.shape[:-1], 1))], axis=-1))
    assert np.abs(reprojected - pixels).max() < 1e-6


def test_undistort_to_pixels_uses_p() -> None:
    p = [400.0, 0.0, 300.0, 0.0, 0.0, 410.0, 250.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    cam = PinholeCamera.from_camera_info_fields(640, 480, K, MODELS["plumb_bob"], "plumb_bob", p)
    pixel = cam.project(np.array([[0.1, 0.2, 1.0]]))
    np.testing.assert_allclose(cam.undistort_points(pixel, to_pixels=True), [[340.0, 332.0]], atol=1e-8)
    # all-zero P (uncalibrated driver) counts as absent: rectified pixels use K
    cam0 = PinholeCamera.from_camera_info_fields(640, 480, K, [], "plumb_bob", [0.0] * 12)
    assert cam0.p is None
    np.testing.assert_allclose(cam0.undistort_points(np.array([[10.0, 20.0]]), to_pixels=True), [[10.0, 20.0]])


def test_points_behind_camera_are_nan() -> None:
    uv = _camera("plumb_bob").project(np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    assert np.isnan(uv[:2]).all() and np.isfinite(uv[2]).all()


def test_scaled_half_resolution() -> None:
    cam = PinholeCamera.from_intrinsics(500.0, 500.0, 319.5, 239.5, 640, 480)
    half = cam.scaled(0.5, 0.5)
    # pixel centres: u' + 0.5 = 0.5 (u + 0.5) -> the image centre 319.5 maps to 159.5
    assert (half.width, half.height) == (320, 240)
    assert (half.fx, half.fy, half.cx, half.cy) == (250.0, 250.0, 159.5, 119.5)
    pts = _points()
    np.testing.assert_allclose(half.project(pts), (cam.project(pts) + 0.5) * 0.5 - 0.5, atol=1e-9)


def test_camera_info_fields_round_trip() -> None:
    cam = _camera("rational_polynomial")
    fields = cam.to_camera_info_fields()
    again = PinholeCamera.from_camera_info_fields(
        fields["width"], fields["height"], fields["k"], fields["d"], fields["distortion_model"], fields["p"]
    )
    pts = _points(10)
    np.testing.assert_allclose(again.project(pts), cam.project(pts))


@pytest.mark.parametrize(
    ("k", "d", "model", "message"),
    [
        ([0.0, 0, 320, 0, 500, 240, 0, 0, 1], [], "plumb_bob", "focal"),
        ([500.0, 0, 320, 0, -5, 240, 0, 0, 1], [], "plumb_bob", "focal"),
        ([500.0, 0, np.nan, 0, 500, 240, 0, 0, 1], [], "plumb_bob", "finite"),
        ([500.0, 0, 320, 0, 500, 240, 0, 0], [], "plumb_bob", "9 values"),
        (K, [0.1, 0.2, 0.0, 0.0], "plumb_bob", "needs 5"),
        (K, [0.1, 0.2, 0.0, 0.0, 0.0], "equidistant", "needs 4"),
        (K, [0.1] * 5, "kannala_brandt", "unknown"),
    ],
)
def test_validation_errors(k: list, d: list, model: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PinholeCamera.from_camera_info_fields(640, 480, k, d, model)


def test_shape_errors() -> None:
    cam = _camera("")
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        cam.project(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="depth"):
        cam.unproject(np.zeros((4, 2)), np.ones(3))


def test_skew_round_trip() -> None:
    cam = PinholeCamera.from_camera_info_fields(640, 480, [500, 3.0, 320, 0, 510, 240, 0, 0, 1], [], "")
    # u = fx x + s y + cx: (0.1, 0.2) -> 50 + 0.6 + 320
    np.testing.assert_allclose(cam.project(np.array([[0.1, 0.2, 1.0]])), [[370.6, 342.0]])
    pts = _points()
    np.testing.assert_allclose(cam.unproject(cam.project(pts), pts[:, 2]), pts, atol=1e-9)


def test_pixels_beyond_the_lens_fold_are_nan() -> None:
    # strong barrel: the distorted radius peaks near r_d = 0.74 (normalised), so a pixel
    # 0.9 focal lengths from the centre has no undistorted preimage
    cam = PinholeCamera.from_camera_info_fields(
        640, 480, [500, 0, 320, 0, 500, 240, 0, 0, 1], [-0.45, 0.2, 0, 0, -0.05], "plumb_bob"
    )
    xy = cam.undistort_points(np.array([[320.0 + 450.0, 240.0], [320.0 + 100.0, 240.0]]))
    assert np.isnan(xy[0]).all() and np.isfinite(xy[1]).all()

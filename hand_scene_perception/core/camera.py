"""Pinhole camera with the lens-distortion models that sensor_msgs/CameraInfo names.

Everything downstream (metric placement, odometry, multi-view calibration, rendering) needs
the same projection and its exact inverse, so they live here once, ROS-free and numpy-only.

Conventions (ARCHITECTURE.md, Conventions): points are in the camera's optical frame (z forward, x right,
y down), metres; pixel coordinates have the centre of the top-left pixel at (0, 0), as in
OpenCV and ROS. Supported ``distortion_model`` values and their ``D`` layouts:

- ``plumb_bob``: 5 coefficients (k1, k2, p1, p2, k3), OpenCV's radial-tangential model;
- ``rational_polynomial``: 8 coefficients (k1, k2, p1, p2, k3, k4, k5, k6);
- ``equidistant``: 4 coefficients (k1, k2, k3, k4), OpenCV's fisheye model;
- an empty ``D`` (with any of the above, or an empty model name) means no distortion.

The rectification rotation ``R`` of CameraInfo is taken as identity (monocular cameras).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PLUMB_BOB = "plumb_bob"
RATIONAL_POLYNOMIAL = "rational_polynomial"
EQUIDISTANT = "equidistant"
# Where a moving camera's pose comes from (the ego pipeline's and node's camera_pose_source): visual odometry,
# TF (the frames bring their pose), or nowhere (a static camera at the initial pose). Here, numpy-only, so the
# launch plan can check the word without the pipeline's imports.
CAMERA_POSE_SOURCES = ("odometry", "tf", "static")

_D_LENGTHS = {PLUMB_BOB: 5, RATIONAL_POLYNOMIAL: 8, EQUIDISTANT: 4}

_MAX_ITERATIONS = 50
# Undistortion stops once the reprojection residual is below this (normalised units, i.e.
# about 1e-9 px at f = 1000 px); pixels still off by more than _FAIL_PX at the end
# (outside the invertible range of the lens model) come back as NaN.
_TOL_NORMALISED = 1e-12
_FAIL_PX = 1e-6
_STALL_RATIO = 0.9


def _as_points(array: object, last: int, name: str) -> np.ndarray:
    """Float64 view of an (..., last) array with a clear error otherwise."""
    out = np.asarray(array, dtype=np.float64)
    if out.ndim == 0 or out.shape[-1] != last:
        raise ValueError(f"{name} must have shape (..., {last}), got {np.shape(array)}")
    return out


@dataclass(frozen=True, eq=False)
class PinholeCamera:
    """Intrinsics, image size and distortion of one camera (immutable).

    ``fx, fy, cx, cy, skew`` are the entries of K in pixels; ``d`` and ``distortion_model``
    follow CameraInfo; ``p`` is CameraInfo's 3x4 projection matrix (row-major, 12 values)
    or None, used only for rectified pixel output and :meth:`to_camera_info_fields`.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    skew: float = 0.0
    distortion_model: str = PLUMB_BOB
    d: tuple[float, ...] = ()
    p: tuple[float, ...] | None = None
    _radtan: np.ndarray | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy", "skew"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(value):
                raise ValueError(f"camera {name} must be a finite number, got {value!r}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if int(self.width) != self.width or int(self.height) != self.height or self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive integers, got {self.width}x{self.height}")
        d = tuple(float(v) for v in self.d)
        if not all(math.isfinite(v) for v in d):
            raise ValueError(f"distortion coefficients must be finite, got {d}")
        model = self.distortion_model
        if d:
            if model not in _D_LENGTHS:
                raise ValueError(
                    f"unknown distortion model {model!r}; supported: {sorted(_D_LENGTHS)} (or empty D for none)"
                )
            if len(d) != _D_LENGTHS[model]:
                raise ValueError(f"distortion model {model!r} needs {_D_LENGTHS[model]} coefficients, got {len(d)}")
        elif model not in _D_LENGTHS and model not in ("", "none"):
            raise ValueError(f"unknown distortion model {model!r}; supported: {sorted(_D_LENGTHS)}")
        p = self.p
        if p is not None:
            p = tuple(float(v) for v in p)
            if len(p) != 12 or not all(math.isfinite(v) for v in p):
                raise ValueError(f"projection matrix P must be 12 finite values, got {self.p}")
            if p[0] <= 0 or p[5] <= 0:
                raise ValueError(f"projection matrix P must have positive focal lengths, got {p[0]}, {p[5]}")
        radtan = None
        if d and model in (PLUMB_BOB, RATIONAL_POLYNOMIAL):
            radtan = np.zeros(8)  # k1, k2, p1, p2, k3, k4, k5, k6
            radtan[: len(d)] = d
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        for name in ("fx", "fy", "cx", "cy", "skew"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "d", d)
        object.__setattr__(self, "p", p)
        object.__setattr__(self, "_radtan", radtan)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_camera_info_fields(
        cls,
        width: int,
        height: int,
        k: Sequence[float],
        d: Sequence[float],
        distortion_model: str,
        p: Sequence[float] | None = None,
    ) -> PinholeCamera:
        """Build from CameraInfo's fields; an all-zero P (uncalibrated drivers) counts as absent."""
        k_arr = np.asarray(k, dtype=np.float64).reshape(-1)
        if k_arr.size != 9:
            raise ValueError(f"K must have 9 values, got {k_arr.size}")
        if not np.all(np.isfinite(k_arr)):
            raise ValueError(f"K must be finite, got {k_arr.tolist()}")
        if k_arr[3] != 0 or k_arr[6] != 0 or k_arr[7] != 0 or k_arr[8] != 1:
            raise ValueError(f"K must be [fx s cx; 0 fy cy; 0 0 1], got {k_arr.tolist()}")
        p_tuple = None
        if p is not None and np.any(np.asarray(p, dtype=np.float64) != 0):
            p_tuple = tuple(float(v) for v in np.asarray(p, dtype=np.float64).reshape(-1))
        return cls(
            width=width,
            height=height,
            fx=float(k_arr[0]),
            fy=float(k_arr[4]),
            cx=float(k_arr[2]),
            cy=float(k_arr[5]),
            skew=float(k_arr[1]),
            distortion_model=distortion_model,
            d=tuple(float(v) for v in d),
            p=p_tuple,
        )

    @classmethod
    def from_intrinsics(
        cls,
        fx: float,
        fy: float,
        cx: float,
        cy: float,
        width: int,
        height: int,
        *,
        distortion_model: str = PLUMB_BOB,
        d: Sequence[float] = (),
    ) -> PinholeCamera:
        """Build from focal lengths and principal point (pixels), undistorted unless ``d`` is given."""
        return cls(
            width=width, height=height, fx=fx, fy=fy, cx=cx, cy=cy, distortion_model=distortion_model, d=tuple(d)
        )

    def to_camera_info_fields(self) -> dict[str, object]:
        """CameraInfo fields (width, height, distortion_model, d, k, r, p) for publishing this camera."""
        k = self.K
        p = list(self.p) if self.p is not None else np.hstack([k, np.zeros((3, 1))]).reshape(-1).tolist()
        model = self.distortion_model if self.d else PLUMB_BOB
        d = list(self.d) if self.d else [0.0] * 5
        return {
            "width": self.width,
            "height": self.height,
            "distortion_model": model,
            "d": d,
            "k": k.reshape(-1).tolist(),
            "r": np.eye(3).reshape(-1).tolist(),
            "p": p,
        }

    # ------------------------------------------------------------------ properties

    @property
    def K(self) -> np.ndarray:
        """3x3 intrinsic matrix (a fresh array)."""
        return np.array([[self.fx, self.skew, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def rectified_K(self) -> np.ndarray:
        """Intrinsics of the rectified image: P's left 3x3 when P is known, else K (as image_geometry does)."""
        if self.p is None:
            return self.K
        return np.asarray(self.p, dtype=np.float64).reshape(3, 4)[:, :3].copy()

    @property
    def is_distorted(self) -> bool:
        """True when the lens model has any non-zero coefficient."""
        return any(v != 0.0 for v in self.d)

    # ------------------------------------------------------------------ resizing

    def scaled(self, sx: float, sy: float) -> PinholeCamera:
        """Camera for the image resized by (sx, sy), e.g. 0.5 for half size.

        Pixel centres map as u' + 0.5 = sx (u + 0.5) (the cv2.resize convention), so
        cx' = sx (cx + 0.5) - 0.5; distortion coefficients act on normalised coordinates and
        do not change. The new size is the rounded scaled size.
        """
        if not (math.isfinite(sx) and math.isfinite(sy)) or sx <= 0 or sy <= 0:
            raise ValueError(f"scale factors must be positive, got sx={sx}, sy={sy}")
        p = None
        if self.p is not None:
            pm = np.asarray(self.p, dtype=np.float64).reshape(3, 4).copy()
            # rows 0 and 1 of P scale like K's rows; the principal-point shift uses P's third row (w)
            pm[0] = sx * pm[0] + (0.5 * sx - 0.5) * pm[2]
            pm[1] = sy * pm[1] + (0.5 * sy - 0.5) * pm[2]
            p = tuple(pm.reshape(-1).tolist())
        return PinholeCamera(
            width=max(1, round(self.width * sx)),
            height=max(1, round(self.height * sy)),
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=sx * (self.cx + 0.5) - 0.5,
            cy=sy * (self.cy + 0.5) - 0.5,
            skew=self.skew * sx,
            distortion_model=self.distortion_model,
            d=self.d,
            p=p,
        )

    # ------------------------------------------------------------------ projection

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Pixels (..., 2) of optical-frame points (..., 3), lens distortion applied.

        Points with z <= 0 (behind or on the camera plane) project to NaN.
        """
        pts = _as_points(points_cam, 3, "points_cam")
        z = pts[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = pts[..., :2] / z[..., None]
        xy[~(z > 0)] = np.nan
        return self._normalised_to_pixels(self._distort(xy))

    def unproject(self, pixels: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
        """Rays (..., 3) with z = 1 through the pixels, or 3D points when ``depth`` is given.

        ``depth`` is z-depth in metres (what depth images store), shape (...) matching the pixels.
        Pixels the lens model cannot invert (outside its valid range) give NaN.
        """
        xy = self.undistort_points(pixels)
        rays = np.concatenate([xy, np.ones((*xy.shape[:-1], 1))], axis=-1)
        if depth is None:
            return rays
        z = np.asarray(depth, dtype=np.float64)
        if z.shape != rays.shape[:-1]:
            raise ValueError(f"depth must have shape {rays.shape[:-1]} to match the pixels, got {z.shape}")
        return rays * z[..., None]

    def undistort_points(self, pixels: np.ndarray, *, to_pixels: bool = False) -> np.ndarray:
        """Remove lens distortion from pixels (..., 2).

        Returns normalised coordinates (x/z, y/z) by default, or pixels of the rectified image
        (through :attr:`rectified_K`) with ``to_pixels=True``. The lens model is inverted by
        vectorised damped Newton iterations to a residual far below 1e-6 px; pixels outside
        the model's invertible range come back as NaN.
        """
        px = _as_points(pixels, 2, "pixels")
        yd = (px[..., 1] - self.cy) / self.fy
        xd = (px[..., 0] - self.cx - self.skew * yd) / self.fx
        distorted = np.stack([xd, yd], axis=-1)
        if not self.is_distorted:
            xy = distorted
        elif self.distortion_model == EQUIDISTANT:
            xy = self._undistort_equidistant(distorted)
        else:
            xy = self._undistort_radtan(distorted)
        if not to_pixels:
            return xy
        k = self.rectified_K
        u = k[0, 0] * xy[..., 0] + k[0, 1] * xy[..., 1] + k[0, 2]
        v = k[1, 1] * xy[..., 1] + k[1, 2]
        return np.stack([u, v], axis=-1)

    # ------------------------------------------------------------------ internals

    def _normalised_to_pixels(self, xy: np.ndarray) -> np.ndarray:
        u = self.fx * xy[..., 0] + self.skew * xy[..., 1] + self.cx
        v = self.fy * xy[..., 1] + self.cy
        return np.stack([u, v], axis=-1)

    def _distort(self, xy: np.ndarray) -> np.ndarray:
        if not self.is_distorted:
            return xy
        if self.distortion_model == EQUIDISTANT:
            r = np.hypot(xy[..., 0], xy[..., 1])
            theta = np.arctan(r)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(r > 1e-12, self._theta_d(theta) / r, 1.0)
            return xy * ratio[..., None]
        return self._radtan_with_jacobian(xy, jacobian=False)[0]

    def _theta_d(self, theta: np.ndarray) -> np.ndarray:
        k1, k2, k3, k4 = self.d
        t2 = theta * theta
        return theta * (1.0 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))

    def _radtan_with_jacobian(self, xy: np.ndarray, jacobian: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Distorted normalised coordinates and, optionally, their 2x2 Jacobian (..., 2, 2)."""
        k1, k2, p1, p2, k3, k4, k5, k6 = self._radtan
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        num = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        den = 1.0 + r2 * (k4 + r2 * (k5 + r2 * k6))
        g = num / den
        xd = x * g + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        yd = y * g + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
        out = np.stack([xd, yd], axis=-1)
        if not jacobian:
            return out, None
        dnum = k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2)
        dden = k4 + r2 * (2.0 * k5 + 3.0 * k6 * r2)
        dg = (dnum * den - num * dden) / (den * den)  # d g / d r2
        jac = np.empty((*xy.shape[:-1], 2, 2))
        jac[..., 0, 0] = g + 2.0 * x * x * dg + 2.0 * p1 * y + 6.0 * p2 * x
        jac[..., 0, 1] = 2.0 * x * y * dg + 2.0 * p1 * x + 2.0 * p2 * y
        jac[..., 1, 0] = 2.0 * x * y * dg + 2.0 * p1 * x + 2.0 * p2 * y
        jac[..., 1, 1] = g + 2.0 * y * y * dg + 6.0 * p1 * y + 2.0 * p2 * x
        return out, jac

    def _undistort_radtan(self, target: np.ndarray) -> np.ndarray:
        flat_target = target.reshape(-1, 2)
        xy = flat_target.copy()
        active = np.flatnonzero(np.all(np.isfinite(flat_target), axis=-1))
        for _ in range(_MAX_ITERATIONS):
            if active.size == 0:
                break
            goal = flat_target[active]
            current, jac = self._radtan_with_jacobian(xy[active], jacobian=True)
            residual = current - goal
            err = np.linalg.norm(residual, axis=-1)
            keep = err > _TOL_NORMALISED
            active, goal, residual, err, jac = active[keep], goal[keep], residual[keep], err[keep], jac[keep]
            with np.errstate(all="ignore"):  # closed-form 2x2 solve; singular Jacobians give no step
                det = jac[:, 0, 0] * jac[:, 1, 1] - jac[:, 0, 1] * jac[:, 1, 0]
                step = (
                    np.stack(
                        [
                            jac[:, 1, 1] * residual[:, 0] - jac[:, 0, 1] * residual[:, 1],
                            jac[:, 0, 0] * residual[:, 1] - jac[:, 1, 0] * residual[:, 0],
                        ],
                        axis=-1,
                    )
                    / det[:, None]
                )
            step[~np.isfinite(step)] = 0.0
            # damping: halve the step where it would increase the residual
            scale = np.ones(active.size)
            for _ in range(8):
                trial = xy[active] - scale[:, None] * step
                new_err = np.linalg.norm(self._radtan_with_jacobian(trial, jacobian=False)[0] - goal, axis=-1)
                worse = new_err > err
                if not np.any(worse):
                    break
                scale = np.where(worse, 0.5 * scale, scale)
            xy[active] = np.where(worse[:, None], xy[active], trial)
            # Newton converges quadratically near a regular solution; a point whose residual
            # no longer shrinks sits at or beyond the lens model's fold and has no inverse
            active = active[new_err < _STALL_RATIO * err]
        xy = xy.reshape(target.shape)
        return self._mark_failures(xy, self._radtan_with_jacobian(xy, jacobian=False)[0], target)

    def _undistort_equidistant(self, target: np.ndarray) -> np.ndarray:
        k1, k2, k3, k4 = self.d
        theta_d = np.hypot(target[..., 0], target[..., 1])
        theta = theta_d.copy()
        for _ in range(_MAX_ITERATIONS):
            residual = self._theta_d(theta) - theta_d
            if not np.any(np.abs(residual) > _TOL_NORMALISED):
                break
            t2 = theta * theta
            deriv = 1.0 + t2 * (3.0 * k1 + t2 * (5.0 * k2 + t2 * (7.0 * k3 + 9.0 * k4 * t2)))
            with np.errstate(all="ignore"):
                step = residual / deriv
            step[~np.isfinite(step)] = 0.0
            # keep theta inside [0, pi/2) where the model is defined for forward-looking rays
            theta = np.clip(theta - step, 0.0, 0.5 * np.pi - 1e-9)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(theta_d > 1e-12, np.tan(theta) / theta_d, 1.0)
        xy = target * ratio[..., None]
        return self._mark_failures(xy, self._distort(xy), target)

    def _mark_failures(self, xy: np.ndarray, reprojected: np.ndarray, target: np.ndarray) -> np.ndarray:
        err_px = np.linalg.norm((reprojected - target) * np.array([self.fx, self.fy]), axis=-1)
        xy = xy.copy()
        xy[~(err_px <= _FAIL_PX)] = np.nan
        return xy


def same_intrinsics(a: PinholeCamera, b: PinholeCamera) -> bool:
    """Whether two cameras have the same image size, intrinsics and lens model (PinholeCamera compares by identity:
    a driver sends a new CameraInfo every frame, usually with the same content)."""
    fields = ("width", "height", "fx", "fy", "cx", "cy", "skew", "distortion_model", "d", "p")
    return all(getattr(a, name) == getattr(b, name) for name in fields)


def load_camera_info_yaml(path: str | Path) -> PinholeCamera:
    """Camera from a calibration YAML in the ROS camera_info format (what camera_calibration writes and
    camera_info_manager reads), so one calibration file serves the CLI and the robot alike.

    Needs ``image_width``, ``image_height`` and ``camera_matrix.data``; ``distortion_model`` (default
    plumb_bob), ``distortion_coefficients.data`` and ``projection_matrix.data`` are optional. Errors name
    the file and the field.
    """
    import yaml

    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"no such intrinsics file: {source}")
    try:
        info = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot parse {source} as YAML: {error}") from None
    if not isinstance(info, dict):
        raise ValueError(f"{source}: expected a camera_info mapping, got {type(info).__name__}")

    def matrix(name: str, required: bool) -> list | None:
        entry = info.get(name)
        if entry is None and not required:
            return None
        data = entry.get("data") if isinstance(entry, dict) else None
        if not isinstance(data, list):
            raise ValueError(f"{source}: field {name}.data is missing or not a list")
        return data

    for name in ("image_width", "image_height"):
        if not isinstance(info.get(name), int):
            raise ValueError(f"{source}: field {name} is missing or not an integer")
    try:
        return PinholeCamera.from_camera_info_fields(
            info["image_width"],
            info["image_height"],
            matrix("camera_matrix", required=True),
            matrix("distortion_coefficients", required=False) or (),
            str(info.get("distortion_model") or PLUMB_BOB),
            matrix("projection_matrix", required=False),
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: {error}") from None

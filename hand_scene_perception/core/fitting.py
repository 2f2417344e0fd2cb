"""Fit a hand model (open or MANO) to one hand's 21 metric camera-frame joints and its 2D landmarks.

Why not optimise the mesh model per frame in torch: the budget is ≤ 3 ms per hand on a 2-core CPU and one
forward pass of the model alone costs ~0.5 ms. The articulation only moves the 21 joints, so everything is
solved on the skeleton in numpy and the model runs once, at the end, for the mesh.

Method:

1. **Skeleton** (once per side, at construction): the model's rest joints (a zero-pose forward), their linear
   change with the shape vector (central differences), its local joint axes and joint limits. Nothing assumes
   the open model's rest frame, so MANO (rest wrist away from the origin, other axes) takes the same path.
2. **Shape** from bone and knuckle lengths: Gauss-Newton with a ridge prior scaled per parameter by its effect
   on the lengths (unit-free: MANO's betas and the open model's relative parameters share one setting), then
   averaged over frames through ``previous`` (a person's hand does not change; single frames are noisy).
3. **Global orientation** from the palm (wrist and four MCPs move rigidly with the root): Umeyama.
4. **Articulation**, per digit down the chain: the minimal rotation taking the rest bone onto the target bone
   in the parent's posed frame, in the joint's (flexion, abduction, twist) axes, twist from the warm start
   (bone directions do not show it), clamped to the joint limits.
5. **Refinement** by a few Levenberg-Marquardt steps with analytic Jacobians: the root's 6 DoF from the joints
   that move rigidly with it (so digit errors cannot tilt the palm), then each digit's 9 local angles (five
   independent problems, batched; box-clamped to the limits; priors on twist and, with a warm start, on the
   change since the previous frame). Both use 3D residuals and, when landmarks and a camera are given,
   Huber-weighted 2D reprojection residuals: MediaPipe's world landmarks are noisy in depth while its 2D
   landmarks are sharp. ``sigma_3d_m`` / ``sigma_2d_px`` set their balance, and ``sigma_ray_m`` (per joint:
   ``fit(ray_sigma_m=...)``) weights each 3D target's component along its viewing ray apart from the rest: a
   detector's hand-centred depths are its weakest output (``inf`` drops them: the landmarks, bone lengths and
   limits then place the joint), a point lifted from a depth image its best.
6. One model forward pass gives the mesh and the joints that are reported and measured. ``with_mesh=False``
   skips it (the pipeline re-poses the model after temporal filtering): the skeleton's own forward kinematics
   then give the joints, within ~0.05 mm mean (0.6 mm worst, fingertips) of the open model's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg.lapack import dposv
from scipy.spatial.transform import Rotation

from .alignment import umeyama
from .camera import PinholeCamera
from .hand_model import (
    MEDIAPIPE_PARENTS,
    MODEL_TO_MEDIAPIPE,
    NUM_JOINTS,
    NUM_POSE_JOINTS,
    HandModel,
    HandSide,
    mediapipe_to_model,
)
from .hand_model.open_model import anatomical_joint_limits, local_joint_axes
from .hand_model.wrist_frame import wrist_frame_from_joints

# Joints that move rigidly with the global orientation: wrist and the four finger MCPs.
PALM_JOINTS: tuple[int, ...] = (0, 5, 9, 13, 17)
# Each digit in product order: its base joint (thumb CMC, finger MCP) and the three joints it moves.
_CHAINS = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16], [17, 18, 19, 20]])
# Pose rows (MANO order) of each digit's three rotating joints.
_CHAIN_ROWS = np.asarray(MODEL_TO_MEDIAPIPE)[_CHAINS[:, :3]]
# Lengths the shape is estimated from: the 20 bones and the knuckle spacings (palm width).
_EDGES = np.array([(p, c) for c, p in enumerate(MEDIAPIPE_PARENTS) if p >= 0] + [(5, 9), (9, 13), (13, 17)])
# Joint i of a digit moves its points m >= i (points are the three joints below the base).
_MOVES = np.tri(3, dtype=bool)[:, :, None, None]
_EYE = np.eye(3)
# ε_ijk: [ω]× = -ε·ω, flattened so that [ω]× is one matmul, (ω @ _SKEW_BASIS).reshape(..., 3, 3)
_LEVI_CIVITA = np.zeros((3, 3, 3))
_LEVI_CIVITA[0, 1, 2] = _LEVI_CIVITA[1, 2, 0] = _LEVI_CIVITA[2, 0, 1] = 1.0
_LEVI_CIVITA[0, 2, 1] = _LEVI_CIVITA[2, 1, 0] = _LEVI_CIVITA[1, 0, 2] = -1.0
_SKEW_BASIS = -_LEVI_CIVITA.transpose(2, 0, 1).reshape(3, 9)
# the root's problem (6 DoF, six points, started from the palm alignment) is nearly linear
_RIGID_ITERATIONS = 2
_SHAPE_STEP = 0.1
_SHAPE_ITERATIONS = 1
_EPS = 1e-9


@dataclass(frozen=True, eq=False)
class FitResult:
    """A hand model fitted to one hand in the camera's optical frame.

    pose: (16, 3) axis-angle, MANO joint order, row 0 the global orientation in the camera frame.
    shape: (S,) shape vector (averaged over ``shape_frames`` frames). transl: (3,) metres, as the model takes it.
    joints_cam: (21, 3) and vertices_cam: (V, 3) metres, the model's output (``fit(with_mesh=False)``: the fitted
    skeleton's joints and no vertices). wrist_pose: (4, 4) T_camera_wrist.
    joint_error_m: mean distance from the fitted joints to the targets used.
    reprojection_error_px: mean pixel distance to the landmarks used (None without landmarks).
    """

    side: HandSide
    pose: np.ndarray
    shape: np.ndarray
    transl: np.ndarray
    joints_cam: np.ndarray
    vertices_cam: np.ndarray | None
    wrist_pose: np.ndarray
    joint_error_m: float
    reprojection_error_px: float | None
    shape_frames: int


@dataclass(frozen=True)
class _Skeleton:
    """One side's rest skeleton: joints (21, 3) at zero shape, their shape derivatives (S, 21, 3), axes (16, 3, 3).

    Also what the shape estimate reuses every frame: the rest edges (E, 3) of ``_EDGES``, their shape derivatives
    (E, S, 3) and each shape parameter's effect on the rest lengths (S,), the scale of its ridge prior.
    """

    rest: np.ndarray
    shape_jac: np.ndarray
    axes: np.ndarray
    edges: np.ndarray
    edge_jac: np.ndarray
    effect: np.ndarray


@dataclass(frozen=True)
class _Observations:
    """Targets of one frame, as residual terms: 3D joints (scaled by 1/σ, along the viewing ray by 1/σ_ray) and
    optional 2D landmarks (Huber)."""

    targets: np.ndarray  # (21, 3), zeros where missing
    w3: np.ndarray  # (21,) sqrt(weight) / sigma_3d across the viewing ray, 0 where missing
    # (21, 3, 3) W = w3 I + (w_ray - w3) r rᵀ, r the unit viewing ray (w_ray: sqrt(weight) / sigma along it);
    # None where every joint's weights are isotropic (then W = w3 I, the cheaper residual)
    weight3: np.ndarray | None
    xy: np.ndarray  # (21, 2) undistorted normalised landmarks, zeros where missing
    w2: np.ndarray  # (21,) sqrt(weight) / sigma_2d, 0 where missing or without landmarks
    focal: np.ndarray  # (2,) pixels per normalised unit
    huber_px: float

    def at(self, joints: np.ndarray) -> _Observations:
        """The observations of ``joints`` (int array of any shape), gathered once for a refinement's many calls."""
        return _Observations(
            self.targets[joints], self.w3[joints], None if self.weight3 is None else self.weight3[joints],
            self.xy[joints], self.w2[joints], self.focal, self.huber_px,
        )

    def terms(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Residual rows (..., 5), their derivative wrt the points (..., 5, 3) and the robust cost (...).

        ``points`` (..., 3) are camera-frame points shaped like these observations (see :meth:`at`).
        """
        z = np.maximum(points[..., 2], 1e-6)
        proj = points[..., :2] / z[..., None]
        err_px = (proj - self.xy) * self.focal
        norm = np.hypot(err_px[..., 0], err_px[..., 1])
        # IRLS: beyond huber_px the squared residual is down-weighted to the Huber loss's slope
        irls = np.minimum(self.huber_px / np.maximum(norm, _EPS), 1.0)
        s2 = self.w2 * np.sqrt(irls)
        residual = np.empty((*points.shape[:-1], 5))
        residual[..., 3:] = s2[..., None] * err_px
        jac = np.zeros((*points.shape[:-1], 5, 3))
        if self.weight3 is None:
            residual[..., :3] = self.w3[..., None] * (points - self.targets)
            jac[..., 0, 0] = jac[..., 1, 1] = jac[..., 2, 2] = self.w3
        else:
            residual[..., :3] = (self.weight3 @ (points - self.targets)[..., None])[..., 0]
            jac[..., :3, :] = self.weight3
        scale = (s2 / z)[..., None] * self.focal
        jac[..., 3, 0], jac[..., 4, 1] = scale[..., 0], scale[..., 1]
        jac[..., 3:, 2] = -scale * proj
        # Huber: n² inside, 2hn - h² beyond; irls (h/n there) gives both as n² · (2·irls - irls²)
        cost = np.sum(residual[..., :3] ** 2, axis=-1) + self.w2**2 * norm**2 * irls * (2.0 - irls)
        return residual, jac, cost


def _skew(v: np.ndarray) -> np.ndarray:
    """(..., 3, 3) cross-product matrices [v]× of (..., 3) vectors, by one matmul (einsum is slower here)."""
    return (v @ _SKEW_BASIS).reshape(*v.shape[:-1], 3, 3)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Broadcasting cross product of (..., 3) arrays (np.cross's generality costs ~10x on these tiny arrays)."""
    a0, a1, a2 = a[..., 0], a[..., 1], a[..., 2]
    b0, b1, b2 = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1)


def _exp_so3(omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (..., 3, 3) of axis-angle vectors (..., 3) and their right Jacobians J_r.

    J_r gives exp(ω + δ) ≈ exp(ω) exp(J_r(ω) δ), which the analytic Jacobians of the refinement need. Angles
    below 1e-6 rad use 1e-6 in the coefficients: their error is then far below double precision of the result.
    """
    theta = np.maximum(np.sqrt(np.sum(omega * omega, axis=-1)), 1e-6)[..., None, None]
    sin, cos = np.sin(theta), np.cos(theta)
    theta2 = theta * theta
    k = _skew(omega)
    k2 = k @ k
    b = (1.0 - cos) / theta2
    return _EYE + (sin / theta) * k + b * k2, _EYE - b * k + ((theta - sin) / (theta2 * theta)) * k2


def _log_so3(rotation: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle of (..., 3, 3) rotations; closed form, scipy only for angles near π (rare)."""
    trace = rotation[..., 0, 0] + rotation[..., 1, 1] + rotation[..., 2, 2]  # np.trace's axis handling is slower
    cos = np.clip((trace - 1.0) / 2.0, -1.0, 1.0)
    theta = np.arccos(cos)
    if np.any(theta > np.pi - 1e-3):
        return Rotation.from_matrix(rotation.reshape(-1, 3, 3)).as_rotvec().reshape(*rotation.shape[:-2], 3)
    skew = rotation - np.swapaxes(rotation, -1, -2)
    vee = np.stack([skew[..., 2, 1], skew[..., 0, 2], skew[..., 1, 0]], axis=-1)
    small = theta < 1e-6
    factor = np.where(small, 0.5 + theta**2 / 12.0, theta / (2.0 * np.sin(np.where(small, 1.0, theta))))
    return factor[..., None] * vee


def _rotations(omega: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices of (..., 3) axis-angle vectors."""
    return _exp_so3(omega)[0]


def _digit_kinematics(
    local: np.ndarray, base: np.ndarray, bones: np.ndarray, axes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Posed digits in the root frame: points (5, 4, 3) (base first) and per joint G_i J_r A_i (5, 3, 3, 3).

    ``local`` (5, 3, 3) local angles, ``bones`` (5, 3, 3) rest bone vectors, ``axes`` (5, 3, 3, 3). The second
    output maps a local-angle change of joint i to the rotation change of everything below it.
    """
    rot, right_jacobian = _exp_so3((axes @ local[..., None])[..., 0])
    frames = np.empty((5, 3, 3, 3))
    points = np.empty((5, 4, 3))
    frames[:, 0], points[:, 0] = rot[:, 0], base
    frames[:, 1] = rot[:, 0] @ rot[:, 1]
    frames[:, 2] = frames[:, 1] @ rot[:, 2]
    np.cumsum((frames @ bones[..., None])[..., 0], axis=1, out=points[:, 1:])
    points[:, 1:] += base[:, None]
    return points, frames @ right_jacobian @ axes


def _solve_spd(matrix: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve (B, P, P) symmetric positive definite systems for (B, P) right-hand sides.

    LAPACK's Cholesky solver one system at a time: numpy's batched LU solve goes through multi-threaded OpenBLAS,
    which on a busy 2-core machine costs up to milliseconds per tiny system, and scipy's batched solve spends
    tens of microseconds checking its inputs; this costs about a microsecond per system.
    """
    out = np.empty(rhs.shape)
    for k in range(len(matrix)):
        _, out[k], info = dposv(matrix[k], rhs[k])
        if info != 0:
            raise np.linalg.LinAlgError(f"system {k} is not positive definite (LAPACK info {info})")
    return out


def _levenberg_marquardt(
    params: np.ndarray,
    evaluate: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
    retract: Callable[[np.ndarray, np.ndarray], np.ndarray],
    iterations: int,
) -> np.ndarray:
    """A few damped Gauss-Newton steps on B independent small problems at once.

    ``evaluate(params)`` gives cost (B,), residuals (B, R) and Jacobian (B, R, P); ``retract`` applies a step
    (B, P). A step is kept per problem only where it lowers the cost, so the result is never worse.
    """
    cost, residual, jac = evaluate(params)
    damping = np.full(cost.shape, 1e-3)
    diagonal = np.arange(jac.shape[-1])
    for _ in range(iterations):
        jt = np.swapaxes(jac, -1, -2)
        hessian = jt @ jac
        gradient = (jt @ residual[..., None])[..., 0]
        hessian[:, diagonal, diagonal] += damping[:, None] * (hessian[:, diagonal, diagonal] + 1e-9)
        step = -_solve_spd(hessian, gradient)
        candidate = retract(params, step)
        new_cost, new_residual, new_jac = evaluate(candidate)
        better = new_cost < cost
        pick = better.reshape(-1, *([1] * (params.ndim - 1)))
        params = np.where(pick, candidate, params)
        cost = np.where(better, new_cost, cost)
        residual = np.where(better[:, None], new_residual, residual)
        jac = np.where(better[:, None, None], new_jac, jac)
        damping = np.where(better, np.maximum(damping * 0.1, 1e-7), damping * 10.0)
    return params


def _flexion_plane_twist(
    along: np.ndarray, flexion_axis: np.ndarray, next_bone: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Twist about ``along`` (5, 3) that makes the child's ``flexion_axis`` perpendicular to ``next_bone``.

    Of the two solutions, the one that bends the child toward the palm (positive flexion). Also returns the
    sine of the next bone's bend away from ``along``, which says how well the twist is determined.
    """
    direction = next_bone / np.maximum(np.linalg.norm(next_bone, axis=1, keepdims=True), _EPS)
    parallel = np.sum(flexion_axis * along, axis=1, keepdims=True) * along
    perpendicular = flexion_axis - parallel
    # R(τ) f · w = a + b cos τ + c sin τ
    a = np.sum(parallel * direction, axis=1)
    b = np.sum(perpendicular * direction, axis=1)
    c = np.sum(_cross(along, perpendicular) * direction, axis=1)
    phase = np.arctan2(c, b)
    offset = np.arccos(np.clip(-a / np.maximum(np.hypot(b, c), _EPS), -1.0, 1.0))
    candidates = np.stack([phase + offset, phase - offset], axis=1)
    cos, sin = np.cos(candidates)[..., None], np.sin(candidates)[..., None]
    axis = cos * perpendicular[:, None] + sin * _cross(along, perpendicular)[:, None] + parallel[:, None]
    flexes_palmar = np.sum(_cross(axis, along[:, None]) * direction[:, None], axis=2) >= 0
    twist = np.where(flexes_palmar[:, 0], candidates[:, 0], candidates[:, 1])
    bend = np.linalg.norm(_cross(along, direction), axis=1)
    return np.angle(np.exp(1j * twist)), bend


class HandFitter:
    """Fits a :class:`~.hand_model.HandModel` to metric 3D joints and 2D landmarks (module notes: the method).

    sigma_3d_m / sigma_2d_px: expected noise of the 3D targets and the landmarks (their relative weight).
    sigma_ray_m: expected noise of the 3D targets along their viewing rays (None: sigma_3d_m, isotropic).
    huber_px: landmark residual beyond which a landmark's weight falls off.
    twist_sigma: prior on twist (toward the previous frame's, else 0), in units of each joint's half twist range:
    bone directions do not show twist, only the bending of the bones below does.
    temporal_sigma_rad: expected change of each local angle between frames (warm start only; smaller = smoother).
    shape_prior: ridge weight pulling the shape toward the average hand, relative to each parameter's effect.
    shape_rate: weight of a new frame in the running shape average once more than 1/shape_rate frames were seen.
    fit_shape: estimate the shape (else keep the previous one, or zeros).
    iterations: Levenberg-Marquardt steps of the articulation refinement.
    """

    def __init__(
        self,
        model: HandModel,
        *,
        sigma_3d_m: float = 0.005,
        sigma_ray_m: float | None = None,
        sigma_2d_px: float = 2.0,
        huber_px: float = 6.0,
        twist_sigma: float = 1.0,
        temporal_sigma_rad: float = 0.3,
        shape_prior: float = 0.05,
        shape_rate: float = 0.05,
        fit_shape: bool = True,
        iterations: int = 3,
    ) -> None:
        for name, value in (
            ("sigma_3d_m", sigma_3d_m),
            ("sigma_2d_px", sigma_2d_px),
            ("huber_px", huber_px),
            ("twist_sigma", twist_sigma),
            ("temporal_sigma_rad", temporal_sigma_rad),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if not 0 < shape_rate <= 1 or shape_prior < 0 or iterations < 0:
            raise ValueError("need 0 < shape_rate <= 1, shape_prior >= 0 and iterations >= 0")
        self.model = model
        self.sigma_3d_m, self.sigma_2d_px, self.huber_px = float(sigma_3d_m), float(sigma_2d_px), float(huber_px)
        self.sigma_ray_m = self.sigma_3d_m if sigma_ray_m is None else float(sigma_ray_m)
        if not self.sigma_ray_m > 0:
            raise ValueError(f"sigma_ray_m must be positive, got {sigma_ray_m}")
        self.twist_sigma, self.temporal_sigma_rad = float(twist_sigma), float(temporal_sigma_rad)
        self.shape_prior, self.shape_rate, self.fit_shape = float(shape_prior), float(shape_rate), bool(fit_shape)
        self.iterations = int(iterations)
        limits = getattr(model, "joint_limits", anatomical_joint_limits)()
        self.lower, self.upper = (np.asarray(v, dtype=np.float64) for v in limits)
        self._skeletons = {side: self._build_skeleton(side) for side in HandSide}

    def _build_skeleton(self, side: HandSide) -> _Skeleton:
        """Rest joints and shape derivatives from one batched zero-pose forward; axes from the model or its rest."""
        n = self.model.num_shape_params
        shapes = np.concatenate([np.zeros((1, n)), _SHAPE_STEP * np.eye(n), -_SHAPE_STEP * np.eye(n)])
        out = self.model.forward(np.zeros((2 * n + 1, NUM_POSE_JOINTS, 3), np.float32), shapes.astype(np.float32), side)
        joints = np.asarray(out.joints, dtype=np.float64)
        rest = joints[0]
        shape_jac = (joints[1 : n + 1] - joints[n + 1 :]) / (2 * _SHAPE_STEP)
        joint_axes = getattr(self.model, "joint_axes", None)
        axes = joint_axes(side) if joint_axes else local_joint_axes(mediapipe_to_model(rest), side)
        edges = rest[_EDGES[:, 1]] - rest[_EDGES[:, 0]]
        edge_jac = np.swapaxes(shape_jac[:, _EDGES[:, 1]] - shape_jac[:, _EDGES[:, 0]], 0, 1)  # (E, S, 3)
        rest_dirs = edges / np.linalg.norm(edges, axis=1, keepdims=True)
        effect = np.sum((edge_jac @ rest_dirs[:, :, None])[..., 0] ** 2, axis=0)
        return _Skeleton(
            rest=rest,
            shape_jac=shape_jac,
            axes=np.asarray(axes, dtype=np.float64),
            edges=edges,
            edge_jac=edge_jac,
            effect=effect,
        )

    def rest_joints(self, side: HandSide | str, shape: np.ndarray | None = None) -> np.ndarray:
        """(21, 3) joints of the unposed model at ``shape`` (None: the average hand), from the linearised skeleton."""
        skeleton = self._skeletons[HandSide.parse(side)]
        if shape is None:
            return skeleton.rest.copy()
        return skeleton.rest + np.tensordot(np.asarray(shape, dtype=np.float64), skeleton.shape_jac, axes=1)

    def joint_axes(self, side: HandSide | str) -> np.ndarray:
        """(16, 3, 3) local joint axes the fitter uses for ``side`` (pose_j = axes_j @ local angles_j)."""
        return self._skeletons[HandSide.parse(side)].axes.copy()

    def fit(
        self,
        target_joints_cam: np.ndarray,
        side: HandSide | str,
        landmarks_px: np.ndarray | None = None,
        camera: PinholeCamera | None = None,
        previous: FitResult | None = None,
        landmark_weights: np.ndarray | None = None,
        with_mesh: bool = True,
        ray_sigma_m: np.ndarray | None = None,
        sigma_2d_px: float | None = None,
    ) -> FitResult:
        """Fit one hand (module notes: the method).

        target_joints_cam: (21, 3) metres, camera frame, product order; NaN rows are skipped (at least three of
        the palm joints, wrist and MCPs, must be present and not collinear, else ValueError).
        landmarks_px: (21, 2) pixels of the distorted image (NaN rows skipped); needs ``camera``.
        previous: this hand's last fit (warm start, temporal prior, running shape); ignored if its side differs.
        landmark_weights: (21,) non-negative confidence per joint, for the 3D and 2D terms alike.
        with_mesh: pose the model for the mesh and report its joints. False skips that forward pass (a caller that
        re-poses the model itself, e.g. after temporal filtering, saves its cost) and reports the fitted skeleton's
        joints; ``vertices_cam`` is then None.
        ray_sigma_m: (21,) noise of each 3D target along its viewing ray, metres (``inf``: the target says nothing
        about depth); None: ``sigma_ray_m`` for all.
        sigma_2d_px: this hand's landmark noise (None: the fitter's ``sigma_2d_px``); the Huber threshold scales
        with it. A detector's pixel error grows with the hand's size in the image.
        """
        side = HandSide.parse(side)
        skeleton = self._skeletons[side]
        obs = self._observations(target_joints_cam, landmarks_px, camera, landmark_weights, ray_sigma_m, sigma_2d_px)
        if previous is not None and previous.side is not side:
            previous = None
        axes = skeleton.axes[_CHAIN_ROWS]
        ref = np.zeros((5, 3, 3))
        if previous is not None:
            ref = (np.asarray(previous.pose, dtype=np.float64)[_CHAIN_ROWS][:, :, None] @ axes)[:, :, 0]
        shape, frames = self._shape(skeleton, obs, previous)
        rest = skeleton.rest + np.tensordot(shape, skeleton.shape_jac, axes=1)
        rotation, translation = self._palm_alignment(rest, obs)
        if np.any(obs.w2 > 0):  # without landmarks the palm alignment is already the least-squares fit
            rotation, translation = self._refine_rigid(rest, rotation, translation, obs)
        base, bones = rest[_CHAINS[:, 0]], rest[_CHAINS[:, 1:]] - rest[_CHAINS[:, :3]]
        lower, upper = self.lower[_CHAIN_ROWS], self.upper[_CHAIN_ROWS]
        local = self._swing(obs, rotation, translation, base, bones, axes, ref, lower, upper)
        local = self._refine_digits(local, base, bones, axes, ref, previous is not None, rotation, translation, obs)

        pose = np.zeros((NUM_POSE_JOINTS, 3))
        pose[0] = _log_so3(rotation)
        pose[_CHAIN_ROWS] = (axes @ local[..., None])[..., 0]
        transl = rotation @ rest[0] + translation - rest[0]
        vertices = None
        if with_mesh:
            out = self.model.forward(pose.astype(np.float32), shape.astype(np.float32), side, transl.astype(np.float32))
            joints = np.asarray(out.joints[0], dtype=np.float64)
            vertices = np.asarray(out.vertices[0], dtype=np.float64)
        else:
            joints = rest.copy()
            joints[_CHAINS[:, 1:]] = _digit_kinematics(local, base, bones, axes)[0][:, 1:]
            joints = joints @ rotation.T + translation
        return FitResult(
            side=side,
            pose=pose,
            shape=shape,
            transl=transl,
            joints_cam=joints,
            vertices_cam=vertices,
            wrist_pose=wrist_frame_from_joints(joints, side),
            joint_error_m=float(np.mean(np.linalg.norm(joints - obs.targets, axis=1)[obs.w3 > 0])),
            reprojection_error_px=_reprojection_error(camera, joints, landmarks_px, obs.w2 > 0),
            shape_frames=frames,
        )

    def _observations(
        self,
        target_joints_cam: np.ndarray,
        landmarks_px: np.ndarray | None,
        camera: PinholeCamera | None,
        landmark_weights: np.ndarray | None,
        ray_sigma_m: np.ndarray | None = None,
        sigma_2d_px: float | None = None,
    ) -> _Observations:
        """Validate the inputs and turn them into residual weights (zero for missing joints)."""
        sigma_2d = self.sigma_2d_px if sigma_2d_px is None else float(sigma_2d_px)
        if not (np.isfinite(sigma_2d) and sigma_2d > 0):
            raise ValueError(f"sigma_2d_px must be positive, got {sigma_2d_px}")
        targets = np.array(target_joints_cam, dtype=np.float64)
        if targets.shape != (NUM_JOINTS, 3):
            raise ValueError(f"target_joints_cam must have shape ({NUM_JOINTS}, 3), got {targets.shape}")
        weights = np.ones(NUM_JOINTS) if landmark_weights is None else np.array(landmark_weights, dtype=np.float64)
        if weights.shape != (NUM_JOINTS,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(f"landmark_weights must be {NUM_JOINTS} finite non-negative values")
        valid3 = np.all(np.isfinite(targets), axis=1) & (weights > 0)
        targets[~valid3] = 0.0
        xy, w2 = np.zeros((NUM_JOINTS, 2)), np.zeros(NUM_JOINTS)
        focal = np.ones(2)
        if landmarks_px is not None:
            if camera is None:
                raise ValueError("landmarks_px needs the camera they were seen by")
            pixels = np.asarray(landmarks_px, dtype=np.float64)
            if pixels.shape != (NUM_JOINTS, 2):
                raise ValueError(f"landmarks_px must have shape ({NUM_JOINTS}, 2), got {pixels.shape}")
            xy = camera.undistort_points(pixels)
            valid2 = np.all(np.isfinite(xy), axis=1) & (weights > 0)
            xy[~valid2] = 0.0
            w2 = np.where(valid2, np.sqrt(weights) / sigma_2d, 0.0)
            focal = np.array([camera.fx, camera.fy])
        sigma_ray = np.full(NUM_JOINTS, self.sigma_ray_m) if ray_sigma_m is None else np.array(ray_sigma_m, float)
        if sigma_ray.shape != (NUM_JOINTS,) or np.any(np.isnan(sigma_ray)) or np.any(sigma_ray <= 0):
            raise ValueError(f"ray_sigma_m must be {NUM_JOINTS} positive values (inf: no depth information)")
        w3 = np.where(valid3, np.sqrt(weights) / self.sigma_3d_m, 0.0)
        weight3 = None
        if np.any(sigma_ray != self.sigma_3d_m):
            norms = np.linalg.norm(targets, axis=1, keepdims=True)
            ray = np.where(norms > _EPS, targets / np.maximum(norms, _EPS), [0.0, 0.0, 1.0])
            extra = np.where(valid3, np.sqrt(weights) / sigma_ray, 0.0) - w3
            weight3 = w3[:, None, None] * _EYE + extra[:, None, None] * ray[:, :, None] * ray[:, None, :]
        return _Observations(
            targets=targets,
            w3=w3,
            weight3=weight3,
            xy=xy,
            w2=w2,
            focal=focal,
            huber_px=self.huber_px * sigma_2d / self.sigma_2d_px,
        )

    def _shape(self, skeleton: _Skeleton, obs: _Observations, previous: FitResult | None) -> tuple[np.ndarray, int]:
        """This frame's shape from the target lengths, blended into the running average of earlier frames."""
        n = self.model.num_shape_params
        prior = np.zeros(n) if previous is None else np.asarray(previous.shape, dtype=np.float64)
        frames = 0 if previous is None else previous.shape_frames
        a, b = _EDGES[:, 0], _EDGES[:, 1]
        edge_w = np.minimum(obs.w3[a], obs.w3[b]) ** 2
        if not self.fit_shape or n == 0 or not np.any(edge_w > 0):
            return prior, frames
        target = obs.targets[b] - obs.targets[a]
        target_len = np.sqrt(np.sum(target * target, axis=1))
        # unit-free ridge: each parameter is penalised relative to its own effect on the lengths
        effect = skeleton.effect
        ridge = np.diag(self.shape_prior * (effect + 1e-3 * effect.max() + _EPS) * edge_w.sum() / len(edge_w))
        beta = prior.copy()
        for _ in range(_SHAPE_ITERATIONS):
            edges = skeleton.edges + beta @ skeleton.edge_jac
            lengths = np.sqrt(np.sum(edges * edges, axis=1))
            jac = (skeleton.edge_jac @ (edges / lengths[:, None])[:, :, None])[..., 0]  # (E, S)
            hessian = jac.T @ (edge_w[:, None] * jac) + ridge
            gradient = jac.T @ (edge_w * (lengths - target_len)) + ridge @ beta
            beta = beta - _solve_spd(hessian[None], gradient[None])[0]
        rate = max(1.0 / (frames + 1), self.shape_rate)
        return prior + rate * (beta - prior), frames + 1

    @staticmethod
    def _palm_alignment(rest: np.ndarray, obs: _Observations) -> tuple[np.ndarray, np.ndarray]:
        """Rotation and translation taking the rest palm onto the target palm (the global orientation)."""
        palm = [j for j in PALM_JOINTS if obs.w3[j] > 0]
        if len(palm) < 3:
            raise ValueError(
                f"cannot fit the hand: need at least 3 of the palm joints {PALM_JOINTS} (wrist, MCPs), got {len(palm)}"
            )
        try:
            _, rotation, translation = umeyama(rest[palm], obs.targets[palm], with_scale=False)
        except ValueError as err:
            raise ValueError(f"cannot fit the hand: the palm joints are degenerate ({err})") from err
        return rotation, translation

    @staticmethod
    def _swing(
        obs: _Observations,
        rotation: np.ndarray,
        translation: np.ndarray,
        base: np.ndarray,
        bones: np.ndarray,
        axes: np.ndarray,
        ref: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
    ) -> np.ndarray:
        """Closed-form start: per joint down each digit, swing onto the target bone and twist, clamped.

        The swing is the minimal rotation taking the rest bone onto the target bone in the parent's posed frame.
        The twist about the bone (invisible in the bone itself) is the one that puts the next target bone into
        the child joint's flexion plane, once that bone bends enough to show it; else ``ref``'s twist. Works in
        the root frame; a joint whose child target is missing (or on top of it) keeps ``ref``.
        """
        targets = (obs.targets - translation) @ rotation
        local = ref.copy()
        frame = np.broadcast_to(np.eye(3), (5, 3, 3))
        point = base
        along = bones / np.sqrt(np.sum(bones * bones, axis=2, keepdims=True))
        for i in range(3):
            child = _CHAINS[:, i + 1]
            bone = bones[:, i]
            wanted = ((targets[child] - point)[:, None] @ frame)[:, 0]  # in the parent's posed frame
            cross = _cross(bone, wanted)
            sin = np.sqrt(np.sum(cross * cross, axis=1))
            angle = np.arctan2(sin, np.sum(bone * wanted, axis=1))
            omega = cross * (angle / np.maximum(sin, _EPS))[:, None]
            twist = ref[:, i, 2]
            if i < 2:
                swing = _rotations(omega)
                swung = frame @ swing
                grandchild = _CHAINS[:, i + 2]
                child_point = point + (swung @ bone[:, :, None])[..., 0]
                next_bone = ((targets[grandchild] - child_point)[:, None] @ swung)[:, 0]
                solved, bend = _flexion_plane_twist(along[:, i], axes[:, i + 1, :, 0], next_bone)
                # blend in the solved twist as the next bone bends out of line (straight digits do not show it)
                trust = np.clip((bend - 0.05) / 0.2, 0.0, 1.0) * (obs.w3[grandchild] > 0)
                omega = _log_so3(swing @ _rotations(along[:, i] * (twist + trust * (solved - twist))[:, None]))
            angles = (omega[:, None] @ axes[:, i])[:, 0]
            if i == 2:
                angles[:, 2] = twist
            known = (obs.w3[child] > 0) & (np.sum(wanted * wanted, axis=1) > 1e-12)
            local[:, i] = np.where(known[:, None], np.clip(angles, lower[:, i], upper[:, i]), ref[:, i])
            frame = frame @ _rotations((axes[:, i] @ local[:, i, :, None])[..., 0])
            point = point + (frame @ bone[:, :, None])[..., 0]
        return local

    def _refine_rigid(
        self, rest: np.ndarray, rotation: np.ndarray, translation: np.ndarray, obs: _Observations
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rigid 6-DoF refinement of the root from the joints that move rigidly with it (palm and thumb CMC).

        Uses their 3D and 2D observations; the digits are left to the articulation, so their errors cannot tilt
        the palm.
        """
        joints = np.array([*PALM_JOINTS, 1])
        points = rest[joints]
        observed = obs.at(joints)
        used = (observed.w3 > 0) | (observed.w2 > 0)

        def evaluate(params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            cam = points @ params[0, :3].T + params[0, 3]
            residual, d_res, cost = observed.terms(cam)
            # increments δ rotate about the palm's centre c (better conditioned than about the camera centre):
            # d point = δ × (point - c) = [c - point]× δ
            d_rotation = _skew(cam[used].mean(axis=0) - cam)
            jac = np.concatenate([d_res @ d_rotation, d_res], axis=2).reshape(1, -1, 6)
            return cost.sum()[None], residual.reshape(1, -1), jac

        def retract(params: np.ndarray, step: np.ndarray) -> np.ndarray:
            centre = (points[used] @ params[0, :3].T + params[0, 3]).mean(axis=0)
            delta = _rotations(step[0, :3])
            out = np.empty_like(params)
            out[0, :3] = delta @ params[0, :3]
            out[0, 3] = delta @ (params[0, 3] - centre) + centre + step[0, 3:]
            return out

        start = np.vstack([rotation, translation])[None]
        params = _levenberg_marquardt(start, evaluate, retract, _RIGID_ITERATIONS)
        return params[0, :3], params[0, 3]

    def _refine_digits(
        self,
        local: np.ndarray,
        base: np.ndarray,
        bones: np.ndarray,
        axes: np.ndarray,
        ref: np.ndarray,
        warm: bool,
        rotation: np.ndarray,
        translation: np.ndarray,
        obs: _Observations,
    ) -> np.ndarray:
        """Each digit's 9 local angles against its 3 joints' 3D and 2D observations, within the joint limits.

        The five digits are independent problems (solved batched), so one digit's trouble never holds back another.
        """
        lower, upper = self.lower[_CHAIN_ROWS], self.upper[_CHAIN_ROWS]
        prior = np.full((5, 3, 3), 1e-3)  # keeps every 9x9 system regular when a digit's targets are missing
        # twist prior relative to each joint's twist range: the thumb's CMC twists far more than a finger's PIP
        twist_range = np.minimum(0.5 * (upper[..., 2] - lower[..., 2]), np.pi)
        prior[..., 2] = 1.0 / (self.twist_sigma * twist_range)
        if warm:
            prior = np.sqrt(prior**2 + 1.0 / self.temporal_sigma_rad**2)
        prior = prior.reshape(5, 9)
        prior_jac = prior[:, :, None] * np.eye(9)
        observed = obs.at(_CHAINS[:, 1:])

        def evaluate(params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            points, lever_map = _digit_kinematics(params, base, bones, axes)
            cam = points @ rotation.T + translation
            residual, d_res, cost = observed.terms(cam[:, 1:])
            # joint i's local change δ turns point m by ω = R M_i δ about joint i (camera frame), so point m moves
            # by ω × (p_m - p_i) = [p_i - p_m]× R M_i δ; zero unless m is below i
            lever = _skew(cam[:, None, :3] - cam[:, 1:, None])  # (5, point m, joint i, 3, 3)
            d_cam = lever @ (rotation @ lever_map)[:, None] * _MOVES  # (5, m, i, xyz, local angle)
            jac = (d_res[:, :, None] @ d_cam).transpose(0, 1, 3, 2, 4).reshape(5, 15, 9)
            prior_res = prior * (params - ref).reshape(5, 9)
            total = cost.sum(axis=1) + np.sum(prior_res**2, axis=1)
            return (
                total,
                np.concatenate([residual.reshape(5, 15), prior_res], axis=1),
                np.concatenate([jac, prior_jac], 1),
            )

        def retract(params: np.ndarray, step: np.ndarray) -> np.ndarray:
            return np.clip(params + step.reshape(5, 3, 3), lower, upper)

        return _levenberg_marquardt(local, evaluate, retract, self.iterations)


def retarget_bone_lengths(joints: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``joints`` (21, 3) with every bone's direction kept and its length taken from ``reference`` (21, 3).

    Walks down the kinematic tree from the wrist, so a detector's articulation (its bone directions) is kept
    while its proportions are replaced: the embedded detector's bone directions are good on real hands and its
    lengths are not (module notes of pipelines/hand_estimate.py)."""
    joints = np.asarray(joints, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    # Each digit is a chain wrist -> 4 joints: its bones, rescaled, summed from the wrist down (the same walk as
    # one bone at a time, in a few whole-array operations).
    chains = np.concatenate([np.zeros((5, 1), np.int64), _CHAINS], axis=1)
    bones = joints[chains[:, 1:]] - joints[chains[:, :-1]]
    wanted = reference[chains[:, 1:]] - reference[chains[:, :-1]]
    lengths = np.sqrt(np.sum(bones * bones, axis=2, keepdims=True))
    scaled = bones * (np.sqrt(np.sum(wanted * wanted, axis=2, keepdims=True)) / np.maximum(lengths, _EPS))
    out = np.empty_like(joints)
    out[0] = joints[0]
    out[_CHAINS] = joints[0] + np.cumsum(scaled, axis=1)
    return out


def _reprojection_error(
    camera: PinholeCamera | None, joints: np.ndarray, landmarks_px: np.ndarray | None, used: np.ndarray
) -> float | None:
    """Mean pixel distance between the projected joints and the landmarks that took part in the fit."""
    if camera is None or landmarks_px is None or not np.any(used):
        return None
    pixels = np.asarray(landmarks_px, dtype=np.float64)[used]
    return float(np.mean(np.linalg.norm(camera.project(joints[used]) - pixels, axis=1)))


def random_pose(fitter: HandFitter, side: HandSide | str, rng: np.random.Generator, spread: float = 1.0) -> np.ndarray:
    """(16, 3) pose with local angles uniform within ``spread`` times the joint limits and a random orientation.

    For tests and benchmarks: the same recipe serves every model the fitter supports.
    """
    local = rng.uniform(fitter.lower[1:] * spread, fitter.upper[1:] * spread)
    pose = np.zeros((NUM_POSE_JOINTS, 3))
    pose[1:] = np.einsum("jab,jb->ja", fitter.joint_axes(side)[1:], local)
    pose[0] = Rotation.from_quat(rng.normal(size=4)).as_rotvec()
    return pose

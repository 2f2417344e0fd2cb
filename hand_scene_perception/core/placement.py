"""Metric placement of a hand in the camera frame from its 2D landmarks, intrinsics and optionally depth.

A detector gives 2D landmarks (pixels) and hand-centred metric 3D landmarks (MediaPipe's world landmarks,
or a fitted model's joints); the hand's known metric size against its 2D extent fixes the distance.

Method (chosen for speed and robustness, numpy only):

1. **Closed-form translation.** MediaPipe's world landmarks are already roughly aligned with the camera
   axes, so with the rotation fixed (identity, or ``initial_rotation``) the projection equations
   ``x_n (Z + tz) = X + tx``, ``y_n (Z + tz) = Y + ty`` on undistorted normalised coordinates are linear
   in t: a 3x3 least-squares solve, a few tens of microseconds.
2. **6-DoF refinement** (``refine_rotation=True``): world landmarks are predicted from a crop as if seen
   head-on, so a hand off the optical axis or a fitted model's joints need a rotation too. A hand-written
   Levenberg-Marquardt on rotation and translation with analytic Jacobians and Huber weights (IRLS)
   converges in a few iterations from step 1; it is several times cheaper than a generic
   ``scipy.optimize.least_squares`` call with the same robust loss, which matters at 30 FPS per hand.
3. **Depth** (optional, aligned to the colour image, metres, NaN/0/inf holes allowed): the depth sampled
   at the four finger MCPs (fingers curl over and hide their own joints, the knuckles stay visible; the
   wrist and thumb CMC are left out because a detector's wrist and CMC landmarks sit at other anatomical
   points than a hand model's joints: MediaPipe's wrist lies up to ~4 cm further up the forearm, which put
   the sampled skin centimetres off) is compared with where the skin over each joint should appear. A joint
   centre lies under the skin by a known anatomical depth, deeper on the palmar than on the dorsal side
   (``SKIN_DEPTH_M``); seen at an angle to the palm's normal, the viewing ray meets the skin that much
   earlier divided by the cosine of the angle. Seen nearly edge-on, the ray grazes the hand's side or a
   neighbouring finger instead: it meets skin about ``EDGE_ON_SKIN_DEPTH_M`` before the joint, a coarse
   estimate (±``EDGE_ON_SCALE_TOLERANCE``) that only bounds the scale: still far better than no depth, as
   the detector's metric hand size alone is off by up to ±25 %. The robust ratio
   of measured to predicted skin depth (median, then MAD outlier rejection, so an object in front of a
   knuckle does not drag the hand) scales the whole hand about the camera centre: reprojections stay
   exactly as they were while the metric distance (and so the hand's true size) comes from the sensor.
4. **Palm tilt** (with depth): the detector's hand-centred 3D landmarks are its weakest output, and the
   palm's tilt along the hand's axis is among what they get most wrong (on synthetic RGB-D sequences the
   wrist was its worst joint, ~3 cm off, mostly in depth, while the knuckles sat right). Step 3 pins the
   knuckles; the skin midway between the wrist and each knuckle (over the metacarpals, seen from the back
   and the front alike) is sampled and compared with where it should be (``MID_PALM_SKIN_DEPTH_M``, seen at
   an angle as in step 3; an edge-on palm is left alone). The median disagreement beyond the skin model's
   own accuracy, doubled (the knuckle end is pinned), slides the wrist along its viewing ray.

**Hand size without depth.** With no sensor, the distance is the hand's metric size against its 2D extent,
so the size decides it. A detector's per-frame metric size can be much less certain than how much adult
hands differ: MediaPipe's world landmarks on synthetic sequences give a palm size off by ±30 % per frame and
uncorrelated with the true size (r = -0.1), while adult hand sizes vary by about ±7 %. ``size_sigma`` (the
detector's relative size uncertainty) fuses the two as independent Gaussians in log size: the local joints
are rescaled to the inverse-variance-weighted mean of their own palm size and the average hand's
(``MEAN_PALM_SIZE_M``, the open hand model's rest palm, ``HAND_SIZE_SIGMA``). ``size_sigma=0`` (a detector
with exact metric output, e.g. oracle landmarks) keeps the detector's size. With depth the sensor then fixes
the size (step 3); the fused size is what an edge-on view's coarse depth bound is centred on.

**Depth-lifted joints** (:func:`lift_joints_to_depth`, fitting targets): placement moves the detector's
hand-centred joints as one rigid body, so their articulation keeps the detector's depths, which for MediaPipe are
poor along the viewing ray for bent fingers (on synthetic RGB-D grasps the fingertips sat 2-4 cm too close to the
camera while the knuckles were right). The depth image measures single joints instead: the skin seen at a
joint's landmark lies in front of the joint's centre by ``SKIN_DEPTH_M`` over a knuckle (on the side facing
the camera) or the finger's radius around a PIP, divided by the sine of the angle between the viewing ray and the
bone ending at the joint (a round limb seen obliquely: the ray meets its surface earlier; capped at
``1 / _MIN_BONE_SINE``). The bone, not the palm's normal as in step 3, sets the angle: the detector's palm
tilt is poor (on synthetic grasps the normal-based offsets came out 18 mm where 12-15 mm were measured).
A sample is kept only where it agrees with the placed hand within ``LIFT_GATE_M`` (not the object in front,
not the background beside a finger). Only the wrist, MCPs and PIPs are lifted: a curled finger's DIP and tip
hide behind its own proximal phalanx, so the skin at their landmarks is a few centimetres in front of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .camera import PinholeCamera
from .hand_model import MEDIAPIPE_PARENTS, NUM_JOINTS, HandSide
from .hand_model.wrist_frame import wrist_frame_from_joints

_MAX_LM_ITERATIONS = 30
_STEP_TOL = 1e-10
# stop once an iteration lowers the robust cost by less than this fraction (well below pixel noise)
_COST_RTOL = 1e-6
_MIN_DEPTH_SAMPLES = 2
# Joints used with depth (product order: index/middle/ring/pinky MCP) and how deep each joint centre lies
# under the dorsal / palmar skin, metres (adult hand).
DEPTH_JOINTS = (5, 9, 13, 17)
SKIN_DEPTH_M = {
    "dorsal": (0.011, 0.011, 0.011, 0.010),
    "palmar": (0.017, 0.018, 0.018, 0.016),
}
# Below this |cos| between the viewing ray and the palm normal the palm is seen nearly edge-on: the ray
# grazes the hand's side or other fingers, and meets skin about EDGE_ON_SKIN_DEPTH_M (along the ray) before
# the knuckle's centre, whatever the exact angle.
_MIN_VIEW_COSINE = 0.35
EDGE_ON_SKIN_DEPTH_M = 0.03
# Relative accuracy of that edge-on prediction (measured on synthetic renders with exact landmarks).
EDGE_ON_SCALE_TOLERANCE = 0.1
_MAD_TO_SIGMA = 1.4826
# Palm size: the summed lengths of these joint pairs (wrist to index, middle and little MCP, index to little
# MCP), rigid whatever the fingers do. The average adult hand's (the open model's rest palm, about 0.30 m)
# and the relative spread of adult hand sizes (hand length and breadth vary by about 5-8 % between adults).
PALM_EDGES = ((0, 5), (0, 9), (0, 17), (5, 17))


def palm_size_m(joints: np.ndarray) -> float:
    """Summed lengths of the ``PALM_EDGES`` of (21, 3) joints in product order, metres."""
    a, b = np.array(PALM_EDGES).T
    return float(np.linalg.norm(joints[a] - joints[b], axis=1).sum())


# palm_size_m of the open hand model's rest skeleton (the average adult hand; test_placement checks it). A literal:
# computing it here would import the model, which pulls in torch, into this torch-free module.
MEAN_PALM_SIZE_M = 0.30122713525597905
HAND_SIZE_SIGMA = 0.07
# Palm tilt (step 4): how deep the line from the wrist joint to a knuckle lies under the skin midway (over the
# metacarpal), metres: thin on the back (bone, tendon), padded on the palm; the open hand model's mesh has
# 10 / 19 mm there. Disagreements within PALM_DEPTH_TOLERANCE_M are that model's own accuracy (posed hands bulge
# by a few mm) and change nothing; beyond PALM_DEPTH_GATE_M a sample is not the palm (a curled finger over it,
# background, an object).
MID_PALM_SKIN_DEPTH_M = {"dorsal": 0.010, "palmar": 0.019}
PALM_DEPTH_TOLERANCE_M = 0.01
PALM_DEPTH_GATE_M = 0.03
# Depth-lifted joints (module notes): the fingers' PIPs, the radius of an adult finger there (half its
# dorso-palmar thickness), the smallest ray-to-phalanx sine used, and the gate against the placed hand.
LIFT_PIP_JOINTS = (6, 10, 14, 18)
FINGER_RADIUS_M = 0.009
_MIN_BONE_SINE = 0.5
LIFT_GATE_M = 0.04
# The wrist: the skin at a detector's wrist landmark (the wrist crease, or the forearm just above it) lies about
# this far in front of the model's wrist joint (on synthetic grasps 20-29 mm along z, 5-95 %); it is gated
# against the knuckles instead (within WRIST_REACH_M of their centroid), as the placed wrist itself can be off by
# centimetres (a palm tilt the detector got wrong).
WRIST_RADIUS_M = 0.022
WRIST_REACH_M = 0.12


@dataclass(frozen=True, eq=False)
class HandPlacement:
    """A hand placed in the camera's optical frame.

    joints_cam_m: (21, 3) metres, product joint order. side: which hand. wrist_pose: (4, 4) T_camera_wrist
    (ARCHITECTURE.md, Conventions: wrist frame), computed on first use (the fit that follows does not need it).
    rotation, translation: the rigid map from the input local joints (before ``scale``) to the camera.
    scale: 1 without depth; with depth, how much larger the hand is than the (size-fused) local joints said.
    size_scale: the size fusion's factor on the input local joints (1 with ``size_sigma=0``); rotation and
    translation map the input local joints times size_scale.
    reprojection_error_px: mean pixel distance between projected joints and the landmarks used.
    depth_inliers: landmarks whose depth agreed (0 when no depth was used).
    """

    joints_cam_m: np.ndarray
    side: HandSide
    rotation: np.ndarray
    translation: np.ndarray
    scale: float
    reprojection_error_px: float
    depth_inliers: int
    size_scale: float = 1.0

    @cached_property
    def wrist_pose(self) -> np.ndarray:
        return wrist_frame_from_joints(self.joints_cam_m, self.side)


def place_hand(
    camera: PinholeCamera,
    landmarks_px: np.ndarray,
    local_joints_m: np.ndarray,
    side: HandSide | str,
    *,
    depth_m: np.ndarray | None = None,
    refine_rotation: bool = True,
    initial_rotation: np.ndarray | None = None,
    huber_px: float = 3.0,
    size_sigma: float = 0.0,
    max_iterations: int = _MAX_LM_ITERATIONS,
) -> HandPlacement:
    """Place one hand metrically in the camera frame (see the module notes for the method).

    landmarks_px: (21, 2) pixels of the (distorted) image; NaN rows are ignored (at least 4 must be finite).
    local_joints_m: (21, 3) metric hand-centred joints, camera-aligned up to ``initial_rotation`` (identity).
    depth_m: optional (H, W) depth in metres aligned to the colour image of ``camera``'s size.
    huber_px: residual beyond which a landmark's weight falls off (robust to a few bad landmarks).
    size_sigma: relative uncertainty of local_joints_m's metric size (module notes: hand size); 0 trusts it.
    max_iterations: cap on the 6-DoF refinement's steps (a caller that refines the pose again may stop early).
    """
    pixels = np.asarray(landmarks_px, dtype=np.float64)
    local = np.asarray(local_joints_m, dtype=np.float64)
    if pixels.shape != (NUM_JOINTS, 2):
        raise ValueError(f"landmarks_px must have shape ({NUM_JOINTS}, 2), got {pixels.shape}")
    if local.shape != (NUM_JOINTS, 3) or not np.all(np.isfinite(local)):
        raise ValueError(f"local_joints_m must be finite with shape ({NUM_JOINTS}, 3), got {local.shape}")
    if huber_px <= 0:
        raise ValueError(f"huber_px must be positive, got {huber_px}")
    if not (np.isfinite(size_sigma) and size_sigma >= 0):
        raise ValueError(f"size_sigma must be >= 0, got {size_sigma}")
    size_scale = fused_size_scale(local, size_sigma)
    local = local * size_scale
    rotation = np.eye(3) if initial_rotation is None else np.asarray(initial_rotation, dtype=np.float64)
    if rotation.shape != (3, 3) or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6):
        raise ValueError("initial_rotation must be a 3x3 rotation matrix")
    normalised = camera.undistort_points(pixels)
    valid = np.all(np.isfinite(normalised), axis=1)
    if np.count_nonzero(valid) < 4:
        raise ValueError(f"need at least 4 finite landmarks to place a hand, got {np.count_nonzero(valid)}")
    xy, points = normalised[valid], local[valid]
    translation = solve_translation(xy, points @ rotation.T)
    focal = np.array([camera.fx, camera.fy])
    if refine_rotation:
        rotation, translation = _refine_pose(xy, points, rotation, translation, focal, huber_px, max_iterations)
    joints = local @ rotation.T + translation
    if np.any(joints[valid, 2] <= 0):
        raise ValueError("hand placement failed: joints ended up behind the camera (inconsistent landmarks)")
    scale, inliers = 1.0, 0
    if depth_m is not None:
        scale, inliers = _depth_scale(camera, pixels, joints, depth_m, HandSide.parse(side))
        joints = joints * scale
        if inliers:
            joints = _tilt_palm_to_depth(pixels, joints, depth_m, HandSide.parse(side))
    error = np.linalg.norm(camera.project(joints[valid]) - pixels[valid], axis=1).mean()
    return HandPlacement(
        joints_cam_m=joints,
        side=HandSide.parse(side),
        rotation=rotation,
        translation=translation,
        scale=float(scale),
        reprojection_error_px=float(error),
        depth_inliers=int(inliers),
        size_scale=size_scale,
    )


def fused_size_scale(local_joints_m: np.ndarray, size_sigma: float) -> float:
    """Factor taking the local joints' palm size to its fusion with the average hand's (module notes)."""
    size = palm_size_m(local_joints_m)
    if size_sigma == 0 or not size > 0:
        return 1.0
    w_detector, w_prior = 1.0 / size_sigma**2, 1.0 / HAND_SIZE_SIGMA**2
    fused = (w_detector * np.log(size) + w_prior * np.log(MEAN_PALM_SIZE_M)) / (w_detector + w_prior)
    return float(np.exp(fused) / size)


def solve_translation(normalised_xy: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Least-squares t with ``(x_n, y_n) ≈ ((P + t)_x, (P + t)_y) / (P + t)_z`` for camera-aligned points P.

    Each point gives two equations linear in t: ``tx - x_n tz = x_n Z - X`` and ``ty - y_n tz = y_n Z - Y``.
    """
    x, y = normalised_xy[:, 0], normalised_xy[:, 1]
    n = x.size
    a = np.zeros((2 * n, 3))
    a[:n, 0], a[n:, 1] = 1.0, 1.0
    a[:n, 2], a[n:, 2] = -x, -y
    b = np.concatenate([x * points[:, 2] - points[:, 0], y * points[:, 2] - points[:, 1]])
    t, *_ = np.linalg.lstsq(a, b, rcond=None)
    if not t[2] + points[:, 2].mean() > 0:
        raise ValueError("hand placement failed: the landmarks put the hand behind the camera")
    return t


def _rodrigues(omega: np.ndarray) -> np.ndarray:
    """Rotation matrix of an axis-angle vector."""
    angle = math.sqrt(omega[0] * omega[0] + omega[1] * omega[1] + omega[2] * omega[2])
    if angle < 1e-12:
        return np.eye(3)
    k = omega / angle
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(angle) * cross + (1.0 - math.cos(angle)) * (cross @ cross)


def _residuals(xy, points, rotation, translation, focal):
    """Pixel-scaled reprojection residuals (N, 2), their norms (N,), the rotated points and the camera points."""
    rotated = points @ rotation.T
    cam = rotated + translation
    residual = (cam[:, :2] / cam[:, 2:3] - xy) * focal
    return residual, np.sqrt(np.einsum("ij,ij->i", residual, residual)), rotated, cam


def _huber_cost(norms: np.ndarray, delta: float) -> float:
    """Sum of Huber losses of residual norms (quadratic up to delta pixels, linear beyond)."""
    return float(np.sum(np.where(norms <= delta, norms**2, 2.0 * delta * norms - delta**2)))


def _refine_pose(xy, points, rotation, translation, focal, huber_px, iterations=_MAX_LM_ITERATIONS):
    """Levenberg-Marquardt with Huber IRLS weights on (left-multiplied rotation increment, translation).

    Per point, the rows of the Jacobian are d(pixel)/d(ω, t) = D [-[Rp]×, I] with D = d(x/z, y/z)/d(cam) scaled by
    the focal lengths; written out column by column (a dozen whole-array operations per step, not batched 2x3 and
    3x3 products)."""
    residual, norms, rotated, cam = _residuals(xy, points, rotation, translation, focal)
    cost = _huber_cost(norms, huber_px)
    damping = 1e-3
    for _ in range(iterations):
        weights = np.where(norms <= huber_px, 1.0, huber_px / np.maximum(norms, 1e-12))
        inv_z = 1.0 / cam[:, 2]
        x_z, y_z = cam[:, 0] * inv_z, cam[:, 1] * inv_z
        su, sv = focal[0] * inv_z, focal[1] * inv_z
        r0, r1, r2 = rotated[:, 0], rotated[:, 1], rotated[:, 2]
        # du/dcam = su (1, 0, -x/z), dv/dcam = sv (0, 1, -y/z); dcam/dω = -[r]× has the columns
        # ω_x → (0, -r2, r1), ω_y → (r2, 0, -r0), ω_z → (-r1, r0, 0); dcam/dt = I
        zero = np.zeros_like(su)
        jac = np.stack([np.column_stack([-su * x_z * r1, su * (r2 + x_z * r0), -su * r1, su, zero, -su * x_z]),
                        np.column_stack([-sv * (r2 + y_z * r1), sv * y_z * r0, sv * r0, zero, sv, -sv * y_z])])
        weighted = jac * weights[:, None]
        hessian = np.einsum("kni,knj->ij", weighted, jac)
        gradient = np.einsum("kni,nk->i", weighted, residual)
        diagonal = np.diag(hessian) + 1e-12
        while True:
            step = -np.linalg.solve(hessian + damping * np.diag(diagonal), gradient)
            new_rotation = _rodrigues(step[:3]) @ rotation
            new_translation = translation + step[3:]
            new_residual, new_norms, new_rotated, new_cam = _residuals(xy, points, new_rotation, new_translation, focal)
            new_cost = _huber_cost(new_norms, huber_px)
            if new_cam[:, 2].min() > 0 and new_cost <= cost:
                break
            damping *= 10.0
            if damping > 1e8:
                return rotation, translation
        converged = float(step @ step) < _STEP_TOL**2 or cost - new_cost <= _COST_RTOL * cost
        rotation, translation = new_rotation, new_translation
        residual, norms, rotated, cam, cost = new_residual, new_norms, new_rotated, new_cam, new_cost
        damping = max(damping / 10.0, 1e-7)
        if converged:
            break
    return rotation, translation


def sample_depth(depth_m: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Median of the valid depths (finite, > 0) in the 3x3 window around each pixel; NaN where none or outside."""
    height, width = depth_m.shape
    out = np.full(len(pixels), np.nan)
    finite = np.all(np.isfinite(pixels), axis=1)
    cols = np.full(len(pixels), -1, dtype=np.int64)
    rows = np.full(len(pixels), -1, dtype=np.int64)
    cols[finite] = np.round(pixels[finite, 0]).astype(np.int64)
    rows[finite] = np.round(pixels[finite, 1]).astype(np.int64)
    inside = finite & (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    if not np.any(inside):
        return out
    offsets = np.arange(-1, 2)
    window_rows = np.clip(rows[inside, None, None] + offsets[None, :, None], 0, height - 1)
    window_cols = np.clip(cols[inside, None, None] + offsets[None, None, :], 0, width - 1)
    values = depth_m[window_rows, window_cols].reshape(-1, 9).astype(np.float64)
    values[~(np.isfinite(values) & (values > 0))] = np.inf
    # median of the valid values: sorted, the invalid (inf) last; np.nanmedian costs ~10x more on these rows
    values.sort(axis=1)
    count = np.count_nonzero(np.isfinite(values), axis=1)
    rows = np.arange(len(values))
    low, high = values[rows, np.maximum(count - 1, 0) // 2], values[rows, np.minimum(count // 2, 8)]
    out[inside] = np.where(count > 0, 0.5 * (low + high), np.nan)
    return out


def predicted_skin_depth(joints: np.ndarray, side: HandSide) -> tuple[np.ndarray, np.ndarray]:
    """Depth (z, metres) at which the camera should see the skin over each of the ``DEPTH_JOINTS``, and
    which of them are seen nearly edge-on (their prediction is coarse).

    The viewing ray to a joint crosses the skin before the joint centre: by the anatomical skin depth
    on the side of the palm facing the camera, divided by the cosine between the ray and the palm normal;
    by ``EDGE_ON_SKIN_DEPTH_M`` when the palm is seen nearly edge-on.
    """
    palm = joints[list(DEPTH_JOINTS)]
    dorsal = wrist_frame_from_joints(joints, side)[:3, 2]
    rays = palm / np.linalg.norm(palm, axis=1, keepdims=True)
    facing = rays @ dorsal  # < 0: the back of the hand faces the camera
    skin = np.where(facing < 0, SKIN_DEPTH_M["dorsal"], SKIN_DEPTH_M["palmar"])
    edge_on = np.abs(facing) < _MIN_VIEW_COSINE
    along_ray = np.where(edge_on, EDGE_ON_SKIN_DEPTH_M, skin / np.maximum(np.abs(facing), 1e-9))
    return palm[:, 2] - along_ray * rays[:, 2], edge_on


def lift_joints_to_depth(
    camera: PinholeCamera,
    landmarks_px: np.ndarray,
    joints_cam_m: np.ndarray,
    depth_m: np.ndarray,
    side: HandSide | str,
    *,
    gate_m: float = LIFT_GATE_M,
) -> tuple[np.ndarray, np.ndarray]:
    """Wrist, knuckles and PIPs moved onto the depth measured at their landmarks (module notes: depth lifting).

    joints_cam_m: (21, 3) a placed hand (e.g. :attr:`HandPlacement.joints_cam_m`), product order; depth_m aligned
    to the colour image of ``camera``'s size. Returns the joints with the lifted ones replaced, each on the
    viewing ray through its landmark, and a (21,) bool mask of the lifted joints (none where the depth is missing,
    disagrees with the placed hand by more than ``gate_m``). A palm seen edge-on is not left out as in step 3: the
    detector's palm tilt is too poor to tell, and the gate rejects the knuckles hidden behind another.
    """
    pixels = np.asarray(landmarks_px, dtype=np.float64)
    joints = np.asarray(joints_cam_m, dtype=np.float64)
    depth = np.asarray(depth_m)
    if pixels.shape != (NUM_JOINTS, 2) or joints.shape != (NUM_JOINTS, 3):
        raise ValueError(f"need ({NUM_JOINTS}, 2) landmarks and ({NUM_JOINTS}, 3) joints")
    if depth.shape != (camera.height, camera.width):
        raise ValueError(
            f"depth must be aligned to the colour image: shape {(camera.height, camera.width)}, got {depth.shape}"
        )
    rows = np.array([0, *DEPTH_JOINTS, *LIFT_PIP_JOINTS])
    rays = camera.unproject(pixels[rows])
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    # distance along each ray from the skin to the joint's centre: the skin depth over the knuckles (on the side
    # facing the camera) or the finger's radius, over the sine of the ray's angle to the bone ending at the joint
    dorsal = wrist_frame_from_joints(joints, side)[:3, 2]
    facing = joints[list(DEPTH_JOINTS)] @ dorsal  # < 0: the back of the hand faces the camera
    radius = np.concatenate([[WRIST_RADIUS_M], np.where(facing < 0, SKIN_DEPTH_M["dorsal"], SKIN_DEPTH_M["palmar"]),
                             np.full(len(LIFT_PIP_JOINTS), FINGER_RADIUS_M)])
    parents = np.asarray(MEDIAPIPE_PARENTS)[rows]
    parents[0] = 9  # the wrist's "bone": the hand's axis, which the forearm continues
    bone = joints[rows] - joints[parents]
    bone /= np.maximum(np.linalg.norm(bone, axis=1, keepdims=True), 1e-9)
    sine = np.linalg.norm(np.cross(bone, rays), axis=1)
    behind_skin = radius / np.maximum(sine, _MIN_BONE_SINE)
    measured = sample_depth(depth, pixels[rows])
    with np.errstate(invalid="ignore"):
        lifted = rays * (measured / rays[:, 2] + behind_skin)[:, None]
        keep = np.isfinite(measured) & (np.abs(lifted[:, 2] - joints[rows, 2]) <= gate_m)
        knuckles = lifted[1:5][keep[1:5]] if np.count_nonzero(keep[1:5]) >= 2 else joints[list(DEPTH_JOINTS)]
        keep[0] = np.isfinite(measured[0]) and np.linalg.norm(lifted[0] - knuckles.mean(axis=0)) <= WRIST_REACH_M
    out = joints.copy()
    out[rows[keep]] = lifted[keep]
    mask = np.zeros(NUM_JOINTS, bool)
    mask[rows[keep]] = True
    return out, mask


def _tilt_palm_to_depth(pixels: np.ndarray, joints: np.ndarray, depth_m: np.ndarray, side: HandSide) -> np.ndarray:
    """Correct the wrist's depth from the palm's skin midway between it and the knuckles (module notes, step 4)."""
    mcps = list(DEPTH_JOINTS)
    mid = 0.5 * (joints[0] + joints[mcps])
    measured = sample_depth(depth_m, 0.5 * (pixels[0] + pixels[mcps]))
    dorsal = wrist_frame_from_joints(joints, side)[:3, 2]
    rays = mid / np.linalg.norm(mid, axis=1, keepdims=True)
    facing = rays @ dorsal
    skin = np.where(facing < 0, MID_PALM_SKIN_DEPTH_M["dorsal"], MID_PALM_SKIN_DEPTH_M["palmar"])
    predicted = mid[:, 2] - skin / np.maximum(np.abs(facing), _MIN_VIEW_COSINE) * rays[:, 2]
    delta = measured - predicted
    with np.errstate(invalid="ignore"):
        delta = delta[(np.abs(facing) >= _MIN_VIEW_COSINE) & (np.abs(delta) <= PALM_DEPTH_GATE_M)]
    if delta.size < 2:
        return joints
    median = float(np.median(delta))
    shift = 2.0 * np.sign(median) * max(abs(median) - PALM_DEPTH_TOLERANCE_M, 0.0)
    out = joints.copy()
    out[0] *= (joints[0, 2] + shift) / joints[0, 2]
    return out


def _depth_scale(camera, pixels, joints, depth_m, side):
    """Robust ratio of measured to predicted skin depth over the knuckles, and how many agreed."""
    depth = np.asarray(depth_m)
    if depth.shape != (camera.height, camera.width):
        raise ValueError(
            f"depth must be aligned to the colour image: shape {(camera.height, camera.width)}, got {depth.shape}"
        )
    measured = sample_depth(depth, pixels[list(DEPTH_JOINTS)])
    predicted, edge_on = predicted_skin_depth(joints, side)
    ratios = measured / predicted
    finite = np.isfinite(ratios)
    ratios, edge_on = ratios[finite], edge_on[finite]
    if ratios.size < _MIN_DEPTH_SAMPLES:
        return 1.0, 0
    median = np.median(ratios)
    spread = _MAD_TO_SIGMA * np.median(np.abs(ratios - median))
    # never reject tighter than 2 % of the distance: skin depths vary that much between hands
    inliers = np.abs(ratios - median) <= max(3.0 * spread, 0.02 * median)
    if np.count_nonzero(inliers) < _MIN_DEPTH_SAMPLES:
        return 1.0, 0
    scale = float(np.mean(ratios[inliers]))
    if np.mean(edge_on[inliers]) > 0.5:
        # Edge-on skin depth only bounds the size: keep the landmarks' own metric size where it lies within.
        scale = float(np.clip(1.0, scale * (1.0 - EDGE_ON_SCALE_TOLERANCE), scale * (1.0 + EDGE_ON_SCALE_TOLERANCE)))
    return scale, int(np.count_nonzero(inliers))

"""The project's own open hand model: a procedural, watertight, skinned hand mesh.

Used whenever the license-gated MANO files are absent (README, Hand models). Same interface
as MANO: 16x3 axis-angle pose in MANO joint order (row 0 = global wrist orientation),
a shape vector, a side, and 21 output joints in the product (MediaPipe) order.

Frames and conventions
----------------------
* Rest pose: a flat right hand in the wrist frame of ARCHITECTURE.md, Conventions, metres. Origin at the
  wrist joint, +x toward the middle-finger MCP, +z out of the back of the hand (dorsal),
  +y = z × x, which for the right hand points radially, toward the thumb.
* Kinematics as in MANO: every row of ``pose`` is an axis-angle expressed in the rest
  pose's world axes and composed along the chain, ``G_j = G_parent · [R(θ_j) | t_j - t_parent]``;
  vertices are skinned with ``G_j · [I | -t_j]`` (linear blend skinning).
* Left hand = mirror image of the right hand across the wrist frame's y = 0 plane
  (the x–z plane). Its frame is still x distal and z dorsal, so y = z × x points ulnar
  (toward the little finger). Its pose rows are literal rotations in that mirrored frame,
  which makes ``forward(p, side="left")`` equal to the right hand posed with
  :func:`mirror_pose` ``(p)`` and then reflected (y → -y). Since ``mirror_pose`` maps
  (ax, ay, az) → (-ax, ay, -az), ``forward(mirror_pose(p), side="left")`` is the exact mirror
  image of ``forward(p, side="right")``; :func:`local_joint_axes` bakes this in so that a
  pose written in local (flexion, abduction, twist) angles means the same motion on both sides.
  Left faces have reversed winding so normals still point outward.
* Local joint axes (:func:`local_joint_axes`): per joint three columns, flexion, abduction,
  twist. Flexion > 0 curls the finger toward the palm; abduction > 0 moves it toward the
  thumb side; twist is about the bone. :meth:`OpenHandModel.joint_limits` bounds these local
  angles; :meth:`OpenHandModel.clamp_pose` converts, clamps and converts back.

Proportions
-----------
Segment lengths are fractions of hand length (wrist crease to middle fingertip) from
Buchholz, Armstrong & Goldstein (1992), "Anthropometric data for describing the kinematics
of the human hand", Ergonomics 35(3):261-273, Table of kinematic segment lengths
(metacarpal / proximal / middle / distal, the thumb without a middle phalanx). Hand length
0.185 m; knuckle spacing and palm breadth (~0.085 m) follow average adult anthropometry.

Shape parameters (all relative changes, 0 = the average hand, +0.1 = 10% larger)
--------------------------------------------------------------------------------
0 overall scale (about the wrist) · 1 palm length · 2 palm width · 3 palm thickness ·
4 finger thickness (all five digits) · 5..9 length of thumb, index, middle, ring, little finger
(thumb from its CMC joint, fingers from the MCP joint to the tip). Parameters 1..9 are linear
blend shapes precomputed at construction; the scale multiplies the result:
``v(β) = (1 + β0) · (v0 + Σ_{k≥1} β_k D_k)`` and likewise for joints, so everything is
differentiable in torch.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .base import HandModelOutput, HandSide, batched_inputs, caller_faces, to_caller
from .joint_order import MANO_PARENTS, model_to_mediapipe

HAND_LENGTH_M = 0.185

# Buchholz et al. 1992: kinematic segment lengths as fractions of hand length.
# Fingers: (metacarpal, proximal, middle, distal); thumb: (metacarpal, proximal, distal).
SEGMENT_RATIOS: dict[str, tuple[float, ...]] = {
    "thumb": (0.251, 0.196, 0.158),
    "index": (0.374, 0.265, 0.143, 0.097),
    "middle": (0.373, 0.277, 0.170, 0.108),
    "ring": (0.336, 0.259, 0.165, 0.107),
    "pinky": (0.295, 0.206, 0.117, 0.093),
}

# Fingers in the MANO chain order and the first pose joint of each chain.
_CHAIN_FINGERS: tuple[str, ...] = ("index", "middle", "pinky", "ring", "thumb")
_CHAIN_START: dict[str, int] = {"index": 1, "middle": 4, "pinky": 7, "ring": 10, "thumb": 13}
# Tips are appended in this order (joint_order.TIP_FINGER_ORDER), model rows 16..20.
_TIP_FINGERS: tuple[str, ...] = ("thumb", "index", "middle", "ring", "pinky")

SHAPE_PARAM_NAMES: tuple[str, ...] = (
    "scale",
    "palm_length",
    "palm_width",
    "palm_thickness",
    "finger_thickness",
    "thumb_length",
    "index_length",
    "middle_length",
    "ring_length",
    "pinky_length",
)

_MIRROR = np.array([1.0, -1.0, 1.0])
_POSE_MIRROR = np.array([-1.0, 1.0, -1.0])


@dataclass(frozen=True)
class _FingerSpec:
    """Rest-pose layout of one digit: base (CMC) point, metacarpal and phalanx directions, radii."""

    cmc: tuple[float, float, float]
    metacarpal_dir_deg: tuple[float, float]  # (azimuth in the palm plane from +x, elevation toward +z)
    phalanx_dirs_deg: tuple[tuple[float, float], ...]
    radius_base: float
    radius_tip: float


# Right hand, wrist frame. Azimuths fan the digits slightly apart so the flat hand shows gaps
# between fingers; the middle metacarpal lies on +x so its MCP defines the frame's x axis.
_FINGER_SPECS: dict[str, _FingerSpec] = {
    "index": _FingerSpec((0.013, 0.012, 0.0), (8.0, 0.0), ((6.0, 0.0),) * 3, 0.0100, 0.0080),
    "middle": _FingerSpec((0.013, 0.0, 0.0), (0.0, 0.0), ((0.0, 0.0),) * 3, 0.0102, 0.0082),
    "ring": _FingerSpec((0.015, -0.011, 0.0), (-7.0, 0.0), ((-7.0, 0.0),) * 3, 0.0097, 0.0077),
    "pinky": _FingerSpec((0.017, -0.021, 0.0), (-14.0, 0.0), ((-17.0, 0.0),) * 3, 0.0088, 0.0070),
    "thumb": _FingerSpec((0.021, 0.020, -0.009), (48.0, -8.0), ((36.0, -4.0), (28.0, 0.0)), 0.0118, 0.0098),
}

# Thumb pad faces palmar and toward the fingers: its palmar normal is the palm's, rolled about
# the thumb axis by this angle (degrees, positive = toward the ulnar side).
THUMB_PRONATION_DEG = 55.0

_DEG = np.pi / 180.0


def _unit(az_deg: float, el_deg: float) -> np.ndarray:
    """Unit vector from an azimuth in the x–y plane and an elevation toward +z."""
    az, el = az_deg * _DEG, el_deg * _DEG
    return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


def rest_skeleton() -> np.ndarray:
    """(21, 3) rest joints of the average right hand in model order (16 pose joints, 5 tips).

    Cheap (no mesh), so named poses and fitting priors can use the skeleton without building
    the surface. The five tips here are skeletal end points; the model's output tips are
    surface vertices at the same places.
    """
    joints = np.zeros((21, 3))
    for finger in _CHAIN_FINGERS:
        spec = _FINGER_SPECS[finger]
        ratios = SEGMENT_RATIOS[finger]
        start = _CHAIN_START[finger]
        if finger == "thumb":
            # Thumb chain: CMC (thumb1), MCP (thumb2), IP (thumb3), tip.
            points = [np.array(spec.cmc)]
            dirs = [spec.metacarpal_dir_deg, *spec.phalanx_dirs_deg]
            for ratio, d in zip(ratios, dirs, strict=True):
                points.append(points[-1] + ratio * HAND_LENGTH_M * _unit(*d))
        else:
            # Finger chain: MCP (1), PIP (2), DIP (3), tip; the metacarpal lies in the palm.
            mcp = np.array(spec.cmc) + ratios[0] * HAND_LENGTH_M * _unit(*spec.metacarpal_dir_deg)
            points = [mcp]
            for ratio, d in zip(ratios[1:], spec.phalanx_dirs_deg, strict=True):
                points.append(points[-1] + ratio * HAND_LENGTH_M * _unit(*d))
        joints[start : start + 3] = points[:3]
        joints[16 + _TIP_FINGERS.index(finger)] = points[3]
    return joints


def _tip_row(finger: str) -> int:
    return 16 + _TIP_FINGERS.index(finger)


def _child_of(joint: int) -> int:
    """Model-order row of the joint's child along its finger (tips for the last phalanx)."""
    for finger in _CHAIN_FINGERS:
        start = _CHAIN_START[finger]
        if start <= joint < start + 3:
            return joint + 1 if joint < start + 2 else _tip_row(finger)
    raise ValueError(f"joint {joint} has no single child")


def _rotate_about(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    return v * np.cos(angle) + np.cross(axis, v) * np.sin(angle) + axis * np.dot(axis, v) * (1 - np.cos(angle))


def _right_local_axes(joints: np.ndarray) -> np.ndarray:
    wrist = joints[0]
    palmar = np.cross(joints[1] - wrist, joints[7] - wrist)  # index MCP × pinky MCP: palmar for a right hand
    palmar /= np.linalg.norm(palmar)
    distal = joints[4] - wrist
    axes = np.zeros((16, 3, 3))
    # Root: flexion about the radial axis (wrist flexion), abduction about the dorsal axis, twist about x.
    twist0 = distal / np.linalg.norm(distal)
    flex0 = np.cross(twist0, palmar)
    flex0 /= np.linalg.norm(flex0)
    axes[0] = np.stack([flex0, np.cross(twist0, flex0), twist0], axis=1)
    for j in range(1, 16):
        bone = joints[_child_of(j)] - joints[j]
        twist = bone / np.linalg.norm(bone)
        normal = palmar
        if j >= 13:
            normal = _rotate_about(palmar, twist, -THUMB_PRONATION_DEG * _DEG)
        flex = np.cross(twist, normal)
        flex /= np.linalg.norm(flex)
        axes[j] = np.stack([flex, np.cross(twist, flex), twist], axis=1)
    return axes


def local_joint_axes(rest_joints: np.ndarray | None = None, side: HandSide | str = HandSide.RIGHT) -> np.ndarray:
    """(16, 3, 3) per-joint local axes as columns (flexion, abduction, twist); pose_j = A_j @ angles_j.

    Built from a hand's rest joints (21 rows, model order; default: the open model's
    skeleton of that side) so the same recipe serves MANO's rest joints too. Flexion > 0 curls
    toward the palm and abduction > 0 moves toward the thumb on both sides: the left axes are
    the right ones mapped by :func:`mirror_pose` (a left hand is mirrored to a right hand first).
    """
    side = HandSide.parse(side)
    if rest_joints is None:
        rest_joints = rest_skeleton()
        if side is HandSide.LEFT:
            rest_joints = rest_joints * _MIRROR
    rest_joints = np.asarray(rest_joints, dtype=np.float64)
    if rest_joints.shape != (21, 3):
        raise ValueError(f"rest_joints must be (21,3) in model order, got {rest_joints.shape}")
    if side is HandSide.RIGHT:
        return _right_local_axes(rest_joints)
    return _POSE_MIRROR[None, :, None] * _right_local_axes(rest_joints * _MIRROR)


def mirror_pose(pose: Any) -> Any:
    """Mirror a pose across the wrist frame's y = 0 plane: each axis-angle (ax, ay, az) → (-ax, ay, -az).

    ``forward(mirror_pose(p), side="left")`` is the reflection of ``forward(p, side="right")``.
    Works on numpy arrays and torch tensors of shape (..., 3).
    """
    if isinstance(pose, torch.Tensor):
        return pose * pose.new_tensor(_POSE_MIRROR)
    return np.asarray(pose) * _POSE_MIRROR


# Local-angle limits (radians) as (flexion, abduction, twist) lower / upper bounds. The root
# (global orientation) is unbounded. Finger rows are MCP, PIP, DIP; thumb rows CMC, MCP, IP.
_FINGER_LIMITS = (
    ((-0.45, -0.40, -0.25), (1.65, 0.40, 0.25)),
    ((-0.10, -0.12, -0.15), (1.95, 0.12, 0.15)),
    ((-0.25, -0.12, -0.15), (1.55, 0.12, 0.15)),
)
_THUMB_LIMITS = (
    ((-0.70, -0.60, -0.70), (1.20, 0.90, 0.70)),
    ((-0.35, -0.25, -0.40), (1.10, 0.25, 0.40)),
    ((-0.45, -0.15, -0.25), (1.45, 0.15, 0.25)),
)


def anatomical_joint_limits() -> tuple[np.ndarray, np.ndarray]:
    """(16, 3) lower / upper local-angle bounds in MANO row order; model-independent, so MANO fitting uses them too."""
    lower = np.full((16, 3), -np.inf)
    upper = np.full((16, 3), np.inf)
    for finger in _CHAIN_FINGERS:
        start = _CHAIN_START[finger]
        table = _THUMB_LIMITS if finger == "thumb" else _FINGER_LIMITS
        for k, (lo, hi) in enumerate(table):
            lower[start + k] = lo
            upper[start + k] = hi
    return lower, upper


# ----------------------------------------------------------------------------------------------
# Surface: a signed-distance function of smoothly unioned parts, meshed with surface nets.
# ----------------------------------------------------------------------------------------------


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: blends two distance fields over a band of width ~k."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b * (1 - h) + a * h - k * h * (1 - h)


def _sd_cone(p: np.ndarray, a: np.ndarray, b: np.ndarray, ra: float, rb: float) -> tuple[np.ndarray, np.ndarray]:
    """Approximate distance to a tapered capsule a→b (radius ra→rb), and the axial parameter."""
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0.0, 1.0)
    closest = a + t[..., None] * ab
    return np.linalg.norm(p - closest, axis=-1) - (ra + (rb - ra) * t), t


def _sd_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _sd_cone(p, a, b, 0.0, 0.0)[0]


def _sd_polygon_2d(q: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Exact signed distance to a convex counter-clockwise polygon in 2D (negative inside)."""
    edges = np.roll(poly, -1, axis=0) - poly
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1) / np.linalg.norm(edges, axis=1, keepdims=True)
    rel = q[:, None, :] - poly[None]
    inside = np.max(np.einsum("nkd,kd->nk", rel, normals), axis=1)
    t = np.clip(np.einsum("nkd,kd->nk", rel, edges) / np.sum(edges**2, axis=1), 0, 1)
    outside = np.min(np.linalg.norm(q[:, None, :] - (poly[None] + t[..., None] * edges[None]), axis=-1), axis=1)
    return np.where(inside > 0, outside, inside)


class _HandSDF:
    """Signed distance (approximate, negative inside) of the rest right hand."""

    def __init__(self, joints: np.ndarray) -> None:
        self.joints = joints
        mcp = {f: joints[_CHAIN_START[f]] for f in ("index", "middle", "ring", "pinky")}
        cmc_thumb = joints[13]
        # Palm outline (CCW seen from the back of the hand), a little inside the skin: the slab is
        # rounded by its edge radius below.
        self.palm_poly = np.array(
            [
                [0.002, -0.025],
                [mcp["pinky"][0] - 0.004, mcp["pinky"][1] - 0.004],
                [mcp["ring"][0] + 0.001, mcp["ring"][1] - 0.002],
                [mcp["middle"][0] + 0.001, 0.0],
                [mcp["index"][0] - 0.001, mcp["index"][1] + 0.003],
                [cmc_thumb[0] + 0.010, cmc_thumb[1] + 0.004],
                [0.002, 0.021],
            ]
        )
        self.palm_z = (-0.019, 0.010)  # palmar / dorsal faces before rounding
        self.palm_round = 0.009
        self.forearm = (np.array([-0.032, 0.0, -0.003]), np.array([0.004, 0.0, -0.003]))
        self.forearm_radius = (0.022, 0.021)

    def palm(self, p: np.ndarray) -> np.ndarray:
        r = self.palm_round
        d2 = _sd_polygon_2d(p[:, :2], self.palm_poly)
        zc = 0.5 * (self.palm_z[0] + self.palm_z[1])
        half = 0.5 * (self.palm_z[1] - self.palm_z[0])
        dz = np.abs(p[:, 2] - zc) - (half - r)
        outside = np.linalg.norm(np.stack([np.maximum(d2, 0), np.maximum(dz, 0)], axis=1), axis=1)
        return outside + np.minimum(np.maximum(d2, dz), 0) - r

    def __call__(self, p: np.ndarray) -> np.ndarray:
        j = self.joints
        body = self.palm(p)
        # Forearm stub, flattened (wider than thick) by squashing y.
        q = p * np.array([1.0, 0.78, 1.0])
        arm, _ = _sd_cone(q, *self.forearm, *self.forearm_radius)
        body = _smin(body, arm, 0.012)
        # Thenar eminence: a thick capsule along the thumb metacarpal, blended into the palm.
        thenar, _ = _sd_cone(p, j[13] + np.array([-0.006, -0.006, 0.0]), j[14], 0.0150, 0.0118)
        body = _smin(body, thenar, 0.012)
        result = np.full(len(p), np.inf)
        for finger in _CHAIN_FINGERS:
            spec = _FINGER_SPECS[finger]
            start = _CHAIN_START[finger]
            first = start + 1 if finger == "thumb" else start
            base = j[first]
            tip = j[_tip_row(finger)]
            # Each phalanx is a tapered capsule; the chain is a hard union (bones meet end to end).
            pts = [j[k] for k in range(first, start + 3)] + [tip]
            total = np.linalg.norm(pts[-1] - pts[0])
            dist = np.full(len(p), np.inf)
            walked = 0.0
            for a, b in itertools.pairwise(pts):
                seg = np.linalg.norm(b - a)
                ra = spec.radius_base + (spec.radius_tip - spec.radius_base) * walked / total
                rb = spec.radius_base + (spec.radius_tip - spec.radius_base) * (walked + seg) / total
                end = b
                if b is tip:  # the rounded cap ends at the tip point
                    end = b - (b - a) / seg * rb
                if finger != "thumb" and a is base:  # start a little proximal: the knuckle
                    a = a - (b - a) / seg * 0.004
                d, _ = _sd_cone(p, a, end, ra, rb)
                dist = np.minimum(dist, d)
                walked += seg
            result = np.minimum(result, _smin(body, dist, 0.0085 if finger != "thumb" else 0.010))
        return result


# Edge offsets of the 12 cube edges (corner a, corner b) with corners indexed by (dx, dy, dz) bits.
_CORNERS = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)])
_CUBE_EDGES = np.array(
    [(a, b) for a in range(8) for b in range(a + 1, 8) if np.abs(_CORNERS[a] - _CORNERS[b]).sum() == 1]
)


def _simple_configs() -> np.ndarray:
    """(256,) bool: cube sign patterns that surface nets meshes as one manifold disc.

    A pattern is simple when the inside corners are connected along cube edges, the outside
    corners too, and no cube face carries a checkerboard (diagonal) pattern.
    """
    faces = [[c for c in range(8) if _CORNERS[c][axis] == side] for axis in range(3) for side in (0, 1)]
    simple = np.zeros(256, dtype=bool)
    for config in range(256):
        inside = [(config >> c) & 1 == 1 for c in range(8)]

        def connected(flag: bool, inside: list[bool] = inside) -> bool:
            members = [c for c in range(8) if inside[c] == flag]
            if not members:
                return True
            seen, stack = {members[0]}, [members[0]]
            while stack:
                c = stack.pop()
                for a, b in _CUBE_EDGES:
                    other = b if a == c else a if b == c else None
                    if other is not None and inside[other] == flag and other not in seen:
                        seen.add(other)
                        stack.append(other)
            return len(seen) == len(members)

        checker = False
        for face in faces:
            a, b, c, d = face  # corner order 0,1,2,3 in a face: diagonals are (a,d) and (b,c)
            checker |= inside[a] == inside[d] and inside[b] == inside[c] and inside[a] != inside[b]
        simple[config] = connected(True) and connected(False) and not checker
    return simple


def _remove_ambiguities(field: np.ndarray, h: float, max_iter: int = 50) -> np.ndarray:
    """Nudge the weakest corner of every ambiguous cell across the level until every cell is simple.

    Ambiguous cells appear where the surface has a saddle at grid scale (creases, narrow gaps);
    meshing them as-is would give non-manifold edges or vertices.
    """
    simple = _simple_configs()
    field = field.copy()
    weights = 1 << np.arange(8)
    cs = tuple(n - 1 for n in field.shape)
    for _ in range(max_iter):
        corners = np.stack([field[dx : dx + cs[0], dy : dy + cs[1], dz : dz + cs[2]] for dx, dy, dz in _CORNERS], -1)
        config = ((corners < 0) * weights).sum(-1)
        bad = np.argwhere(~simple[config])
        if len(bad) == 0:
            return field
        weakest = np.argmin(np.abs(corners[tuple(bad.T)]), axis=1)
        target = bad + _CORNERS[weakest]
        values = field[tuple(target.T)]
        field[tuple(target.T)] = np.where(values < 0, 1e-3 * h, -1e-3 * h)
    raise RuntimeError("could not make the sampled hand field manifold")


def _surface_nets(sdf: _HandSDF, lo: np.ndarray, hi: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Mesh the zero level of ``sdf`` on a grid of spacing ``h``: one vertex per cell, quads per crossing edge.

    Returns (V, 3) vertices and (F, 3) faces wound counter-clockwise from outside (the field is
    negative inside). Quads are split along their shorter diagonal.
    """
    axes = [np.arange(lo[i], hi[i] + h, h) for i in range(3)]
    shape = tuple(len(a) for a in axes)
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    field = _remove_ambiguities(sdf(grid.reshape(-1, 3)).reshape(shape), h)
    inside = field < 0
    cell_shape = tuple(n - 1 for n in shape)
    # Cell corner values (C, 8) and the cells whose corners disagree.
    corner_vals = np.stack(
        [field[dx : dx + cell_shape[0], dy : dy + cell_shape[1], dz : dz + cell_shape[2]] for dx, dy, dz in _CORNERS],
        axis=-1,
    )
    signs = corner_vals < 0
    active = signs.any(-1) & ~signs.all(-1)
    cell_ids = -np.ones(cell_shape, dtype=np.int64)
    cells = np.argwhere(active)
    cell_ids[tuple(cells.T)] = np.arange(len(cells))
    # Vertex per active cell: mean of the linear zero crossings on its edges.
    vals = corner_vals[active]
    va, vb = vals[:, _CUBE_EDGES[:, 0]], vals[:, _CUBE_EDGES[:, 1]]
    crossing = (va < 0) != (vb < 0)
    t = np.where(crossing, va / np.where(crossing, va - vb, 1.0), 0.0)
    pa, pb = _CORNERS[_CUBE_EDGES[:, 0]], _CORNERS[_CUBE_EDGES[:, 1]]
    local = pa[None] + t[..., None] * (pb - pa)[None]
    local = (local * crossing[..., None]).sum(1) / crossing.sum(1, keepdims=True)
    verts = lo + (cells + local) * h
    quads = []
    for axis in range(3):
        b_ax, c_ax = (axis + 1) % 3, (axis + 2) % 3
        sl0 = [slice(None)] * 3
        sl1 = [slice(None)] * 3
        sl0[axis] = slice(0, -1)
        sl1[axis] = slice(1, None)
        flips = inside[tuple(sl0)] != inside[tuple(sl1)]
        idx = np.argwhere(flips)
        # Edges on the grid boundary cannot have all four neighbouring cells; the field is positive there.
        ok = np.all((idx[:, [b_ax, c_ax]] > 0) & (idx[:, [b_ax, c_ax]] < np.array(shape)[[b_ax, c_ax]] - 1), axis=1)
        idx = idx[ok]
        outward_pos = inside[tuple(idx.T)]  # inside at the low end: surface normal along +axis
        ring = []
        for db, dc in ((-1, -1), (0, -1), (0, 0), (-1, 0)):
            c = idx.copy()
            c[:, b_ax] += db
            c[:, c_ax] += dc
            ring.append(cell_ids[tuple(c.T)])
        ring = np.stack(ring, axis=1)
        ring[~outward_pos] = ring[~outward_pos][:, ::-1]
        quads.append(ring)
    quads = np.concatenate(quads)
    if (quads < 0).any():
        raise RuntimeError("surface nets produced a quad with a missing cell")
    d02 = np.linalg.norm(verts[quads[:, 0]] - verts[quads[:, 2]], axis=1)
    d13 = np.linalg.norm(verts[quads[:, 1]] - verts[quads[:, 3]], axis=1)
    split02 = d02 <= d13
    tri_a = np.where(split02[:, None], quads[:, [0, 1, 2]], quads[:, [0, 1, 3]])
    tri_b = np.where(split02[:, None], quads[:, [0, 2, 3]], quads[:, [1, 2, 3]])
    return verts, np.concatenate([tri_a, tri_b])


def _project_to_surface(sdf: _HandSDF, verts: np.ndarray, steps: int = 4) -> np.ndarray:
    """Newton steps along the numerical gradient so vertices sit on the zero level."""
    eps = 1e-4
    offsets = np.eye(3) * eps
    for _ in range(steps):
        f = sdf(verts)
        grad = np.stack([(sdf(verts + o) - sdf(verts - o)) / (2 * eps) for o in offsets], axis=1)
        verts = verts - (f / np.maximum(np.sum(grad**2, axis=1), 1e-12))[:, None] * grad
    return verts


def _vertex_neighbours(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.unique(np.concatenate([edges, edges[:, ::-1]]), axis=0)
    return edges[:, 0], edges[:, 1]


def _smooth(values: np.ndarray, src: np.ndarray, dst: np.ndarray, n: int, iterations: int, alpha: float) -> np.ndarray:
    """Umbrella smoothing of per-vertex values over the mesh graph (keeps fingers apart, unlike 3D blurs)."""
    degree = np.bincount(src, minlength=n).astype(np.float64)[:, None]
    for _ in range(iterations):
        mean = np.zeros_like(values)
        np.add.at(mean, src, values[dst])
        values = (1 - alpha) * values + alpha * mean / degree
    return values


def _build_mesh(joints: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    sdf = _HandSDF(joints)
    lo = np.array([-0.085, -0.080, -0.045])
    hi = np.array([0.205, 0.115, 0.035])
    # Offset the grid by a fraction of a voxel so no sample lands exactly on a symmetry plane.
    verts, faces = _surface_nets(sdf, lo + 0.37 * voxel, hi, voxel)
    verts = _project_to_surface(sdf, verts)
    src, dst = _vertex_neighbours(faces)
    # Relax the surface-nets staircase a little, then pull back onto the surface.
    verts = _smooth(verts, src, dst, len(verts), iterations=3, alpha=0.5)
    verts = _project_to_surface(sdf, verts, steps=3)
    return verts, faces


# ----------------------------------------------------------------------------------------------
# Skinning weights and blend shapes
# ----------------------------------------------------------------------------------------------


def _bones(joints: np.ndarray) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Segments that each pose joint moves: the palm fan for the root, the phalanx for the others."""
    segs: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(16)]
    wrist = joints[0]
    segs[0] = [(wrist + np.array([-0.05, 0.0, 0.0]), wrist)]
    segs[0] += [(wrist, joints[_CHAIN_START[f]]) for f in ("index", "middle", "ring", "pinky")]
    segs[0] += [(wrist, joints[13])]
    for j in range(1, 16):
        segs[j] = [(joints[j], joints[_child_of(j)])]
    return segs


def _skinning_weights(verts: np.ndarray, faces: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """(V, 16) smooth, normalised weights.

    Each vertex picks its nearest bone; weight goes to that bone, its parent and its children,
    falling off with how far the vertex lies beyond each bone's ends along the bone (so the
    blend zone is centred on the joint), then is smoothed over the mesh graph.
    """
    n = len(verts)
    radial = np.zeros((n, 16))
    overshoot = np.zeros((n, 16))
    for j, segs in enumerate(_bones(joints)):
        best_r = np.full(n, np.inf)
        best_o = np.full(n, np.inf)
        for a, b in segs:
            ab = b - a
            length = np.linalg.norm(ab)
            s = (verts - a) @ ab / length
            o = np.maximum(np.maximum(-s, s - length), 0.0)
            r = _sd_segment(verts, a, b)
            best_r = np.minimum(best_r, r)
            best_o = np.minimum(best_o, o)
        radial[:, j] = best_r
        overshoot[:, j] = best_o
    nearest = np.argmin(radial, axis=1)
    parents = np.array(MANO_PARENTS)
    allowed = np.zeros((n, 16), dtype=bool)
    allowed[np.arange(n), nearest] = True
    has_parent = parents[nearest] >= 0
    allowed[np.arange(n)[has_parent], parents[nearest][has_parent]] = True
    allowed |= parents[None, :] == nearest[:, None]
    sigma = 0.0065
    weights = np.where(allowed, np.exp(-((overshoot / sigma) ** 2)), 0.0)
    weights /= weights.sum(1, keepdims=True)
    src, dst = _vertex_neighbours(faces)
    weights = _smooth(weights, src, dst, n, iterations=4, alpha=0.5)
    weights[weights < 1e-4] = 0.0
    return weights / weights.sum(1, keepdims=True)


def _finger_of_joint() -> np.ndarray:
    owner = np.full(16, -1)
    for finger in _CHAIN_FINGERS:
        owner[_CHAIN_START[finger] : _CHAIN_START[finger] + 3] = _TIP_FINGERS.index(finger)
    return owner


def _blend_shapes(verts: np.ndarray, joints21: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear displacement fields (S, V, 3) and (S, 21, 3) for shape parameters 1..9 (row 0, scale, is zero)."""
    n_shape = len(SHAPE_PARAM_NAMES)
    dv = np.zeros((n_shape, len(verts), 3))
    dj = np.zeros((n_shape, 21, 3))
    owner = _finger_of_joint()
    w_palm = weights[:, 0]
    # Rigid translation each digit receives when the palm stretches: that of its base joint.
    bases = {f: _CHAIN_START[f] for f in _CHAIN_FINGERS}

    def digit_rows(finger: str) -> list[int]:
        start = _CHAIN_START[finger]
        return [start, start + 1, start + 2, _tip_row(finger)]

    for k, axis in ((1, 0), (2, 1)):
        # Palm length / width: stretch the palm region along x / y about the wrist, move digits rigidly.
        coord = verts[:, axis] if axis == 1 else np.maximum(verts[:, 0], 0.0)
        dv[k, :, axis] = w_palm * coord
        for finger, base in bases.items():
            shift = joints21[base, axis]
            w_f = weights[:, owner == _TIP_FINGERS.index(finger)].sum(1)
            dv[k, :, axis] += w_f * shift
            dj[k, digit_rows(finger), axis] = shift
    # Palm thickness: scale the palm-weighted region along z about the palm's mid plane.
    dv[3, :, 2] = w_palm * verts[:, 2]
    # Finger thickness and lengths: per phalanx, radial offset from and axial position along the bone.
    for j in range(1, 16):
        finger = _TIP_FINGERS[owner[j]]
        a, b = joints21[j], joints21[_child_of(j)]
        axis = (b - a) / np.linalg.norm(b - a)
        s = (verts - a) @ axis
        radial = (verts - a) - s[:, None] * axis
        dv[4] += weights[:, j, None] * radial
        base = joints21[bases[finger]]
        k = 5 + _TIP_FINGERS.index(finger)
        dv[k] += weights[:, j, None] * ((a - base)[None] + np.maximum(s, 0.0)[:, None] * axis)
    for finger in _CHAIN_FINGERS:
        base = joints21[bases[finger]]
        rows = digit_rows(finger)
        dj[5 + _TIP_FINGERS.index(finger), rows] = joints21[rows] - base
    return dv, dj


def _batch_rodrigues(rotvec: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle → (..., 3, 3) rotation, with finite values and gradients at zero."""
    theta2 = (rotvec * rotvec).sum(-1, keepdim=True)
    small = theta2 < 1e-8
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / (theta * theta))
    x, y, z = rotvec.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*rotvec.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + a[..., None] * k + b[..., None] * (k @ k)


# Joints grouped by depth in the kinematic tree, so the chain composes in three batched steps: row k of
# level d + 1 is the child of row k of level d, and level 0's parent is the root.
_LEVELS = np.array([(1, 4, 7, 10, 13), (2, 5, 8, 11, 14), (3, 6, 9, 12, 15)])
_LEVEL_PARENTS = np.array([MANO_PARENTS[j] for j in _LEVELS.ravel()])
# Pose joint j sits at row _LEVEL_ROW[j] of (root, level 0, level 1, level 2) stacked.
_LEVEL_ROW = np.argsort(np.concatenate([[0], _LEVELS.ravel()]))


class OpenHandModel:
    """Procedural, watertight, skinned hand (see the module docstring for every convention)."""

    name = "open_hand_v1"

    def __init__(self, voxel_size: float = 0.0045) -> None:
        """Build mesh, skinning weights and blend shapes once; ``voxel_size`` sets the mesh resolution (m)."""
        joints21 = rest_skeleton()
        verts, faces = _build_mesh(joints21, voxel_size)
        weights = _skinning_weights(verts, faces, joints21)
        # Output fingertips: the surface vertex farthest along the distal phalanx of each digit.
        tips = []
        dominant = np.argmax(weights, axis=1)
        for finger in _TIP_FINGERS:
            distal = _CHAIN_START[finger] + 2
            axis = joints21[_tip_row(finger)] - joints21[distal]
            score = np.where(dominant == distal, (verts - joints21[distal]) @ axis, -np.inf)
            tips.append(int(np.argmax(score)))
        self.tip_vertex_ids = np.array(tips, dtype=np.int64)
        joints21 = joints21.copy()
        joints21[16:] = verts[self.tip_vertex_ids]
        dv, dj = _blend_shapes(verts, joints21, weights)
        self.num_vertices = len(verts)
        self.num_shape_params = len(SHAPE_PARAM_NAMES)
        self.shape_param_names = SHAPE_PARAM_NAMES
        right_faces = faces.astype(np.int64)
        # The mirrored left surface needs reversed winding to keep its normals outward.
        self._faces = {HandSide.RIGHT: right_faces, HandSide.LEFT: np.ascontiguousarray(right_faces[:, ::-1])}
        # Rest vertices and pose joints coordinate-major, (3, V + 16) flattened, so that one matmul shapes them
        # both and the skinning runs along contiguous vertex rows (tiny per-vertex 3x3 products are slow in torch).
        self._np = {
            "rest": np.concatenate([verts, joints21[:16]]).T.reshape(-1),
            "blend": np.concatenate([dv[1:], dj[1:, :16]], axis=1).transpose(0, 2, 1).reshape(len(dv) - 1, -1),
            "weights_t": weights.T,
        }
        self._cache: dict[tuple[torch.dtype, torch.device], dict[str, torch.Tensor]] = {}
        self._lower, self._upper = anatomical_joint_limits()
        self._axes = {s: local_joint_axes(None, s) for s in HandSide}

    def faces(self, side: HandSide | str) -> np.ndarray:
        """(F, 3) int64 faces, outward counter-clockwise; the left hand's winding is reversed by the mirror."""
        return self._faces[HandSide.parse(side)].copy()

    def joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """(16, 3) lower and upper bounds (radians) on local (flexion, abduction, twist) angles; root row ±inf."""
        return self._lower.copy(), self._upper.copy()

    def joint_axes(self, side: HandSide | str = HandSide.RIGHT) -> np.ndarray:
        """(16, 3, 3) local axes (columns flexion, abduction, twist) of this model's joints for ``side``."""
        return self._axes[HandSide.parse(side)].copy()

    def pose_from_local(self, angles: Any, side: HandSide | str = HandSide.RIGHT) -> Any:
        """Axis-angle pose (..., 16, 3) from local (flexion, abduction, twist) angles (..., 16, 3)."""
        axes = self._axes[HandSide.parse(side)]
        if isinstance(angles, torch.Tensor):
            return torch.einsum("jab,...jb->...ja", angles.new_tensor(axes), angles)
        return np.einsum("jab,...jb->...ja", axes, np.asarray(angles, dtype=np.float64))

    def local_from_pose(self, pose: Any, side: HandSide | str = HandSide.RIGHT) -> Any:
        """Local (flexion, abduction, twist) angles (..., 16, 3) of an axis-angle pose (..., 16, 3)."""
        axes = self._axes[HandSide.parse(side)]
        if isinstance(pose, torch.Tensor):
            return torch.einsum("jba,...jb->...ja", pose.new_tensor(axes), pose)
        return np.einsum("jba,...jb->...ja", axes, np.asarray(pose, dtype=np.float64))

    def clamp_pose(self, pose: Any, side: HandSide | str = HandSide.RIGHT) -> Any:
        """Project a pose (..., 16, 3) into the joint limits (per local component), for fitting."""
        local = self.local_from_pose(pose, side)
        if isinstance(local, torch.Tensor):
            clamped = torch.clamp(local, local.new_tensor(self._lower), local.new_tensor(self._upper))
        else:
            clamped = np.clip(local, self._lower, self._upper)
        return self.pose_from_local(clamped, side)

    def _tensors(self, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
        key = (dtype, device)
        if key not in self._cache:
            self._cache[key] = {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in self._np.items()}
            indices = {"tips": self.tip_vertex_ids, "levels": _LEVELS.ravel(), "level_parents": _LEVEL_PARENTS}
            indices["level_row"] = _LEVEL_ROW
            self._cache[key].update({k: torch.as_tensor(v, device=device) for k, v in indices.items()})
        return self._cache[key]

    def forward(
        self,
        pose: Any,
        shape: Any | None = None,
        side: HandSide | str = HandSide.RIGHT,
        transl: Any | None = None,
    ) -> HandModelOutput:
        """Pose the hand (see :class:`~.base.HandModel`); numpy in → numpy float32 out, torch in → torch out."""
        side = HandSide.parse(side)
        inputs = batched_inputs(pose, shape, transl, self.num_shape_params)
        pose_t, beta, offset, wants_numpy = inputs.pose, inputs.shape, inputs.transl, inputs.wants_numpy
        batch = pose_t.shape[0]
        buf = self._tensors(pose_t.dtype, pose_t.device)
        left = side is HandSide.LEFT
        if left:
            pose_t = mirror_pose(pose_t)

        # Shaped rest surface and joints.
        scale = (1 + beta[:, :1])[:, :, None]
        rest_t = torch.addmm(buf["rest"], beta[:, 1:], buf["blend"]).reshape(batch, 3, -1) * scale
        rest_v_t, rest_j = rest_t[:, :, : self.num_vertices], rest_t[:, :, self.num_vertices :].transpose(1, 2)

        rot = _batch_rodrigues(pose_t)  # (B, 16, 3, 3)
        level_rot = rot[:, buf["levels"]].reshape(batch, 3, 5, 3, 3)
        level_offset = (rest_j[:, buf["levels"]] - rest_j[:, buf["level_parents"]]).reshape(batch, 3, 5, 3, 1)
        g_rot, g_t = [rot[:, :1]], [rest_j[:, :1]]
        for depth in range(3):
            g_t.append(g_t[-1] + (g_rot[-1] @ level_offset[:, depth])[..., 0])
            g_rot.append(g_rot[-1] @ level_rot[:, depth])
        g_rot_t = torch.cat(g_rot, 1)[:, buf["level_row"]]  # (B, 16, 3, 3)
        g_t_t = torch.cat(g_t, 1)[:, buf["level_row"]]  # (B, 16, 3): posed joint positions
        skin_t = g_t_t - (g_rot_t @ rest_j[..., None])[..., 0]
        # Linear blend skinning, coordinate-major: per vertex the weighted [G_j columns | translation], (B, 12, V).
        transforms = torch.cat([g_rot_t.transpose(2, 3), skin_t[:, :, None]], 2).reshape(batch, 16, 12)
        blend = (transforms.transpose(1, 2) @ buf["weights_t"]).reshape(batch, 4, 3, -1)
        verts_t = (blend[:, :3] * rest_v_t[:, :, None]).sum(1) + blend[:, 3]  # (B, 3, V)
        joints = torch.cat([g_t_t, verts_t[:, :, buf["tips"]].transpose(1, 2)], 1)
        if left:
            mirror = verts_t.new_tensor(_MIRROR)
            verts_t = verts_t * mirror[:, None]
            joints = joints * mirror
        verts = (verts_t + offset[:, :, None]).transpose(1, 2)
        joints = model_to_mediapipe(joints) + offset[:, None]
        return HandModelOutput(
            vertices=to_caller(verts, wants_numpy),
            joints=to_caller(joints, wants_numpy),
            faces=caller_faces(self._faces[side], wants_numpy, pose_t),
        )

    __call__ = forward

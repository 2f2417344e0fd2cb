"""MANO behind the product's hand-model interface (README, Hand models).

MANO's files are license-gated: the user downloads them from https://mano.is.tue.mpg.de
and points ``model_dir`` at them. They are read with the restricted loader in
:mod:`.safe_pickle` and handed to smplx's MANO layer as an already-loaded data struct
(``smplx.MANO(data_struct=...)``), so smplx never opens or unpickles the file itself.

Parameterisation: pose is (B, 16, 3) axis-angle in MANO's joint order; row 0 is the
global wrist orientation, rows 1-15 the full 45-D finger articulation (no PCA). With
``flat_hand_mean=True`` (the default) a zero pose is the flat, open hand; with False,
MANO's mean hand pose is added to the articulation (smplx's convention).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import smplx
import torch
from smplx.utils import Struct

from .base import HandModelOutput, HandSide, batched_inputs, caller_faces, to_caller
from .joint_order import NUM_POSE_JOINTS, model_to_mediapipe
from .safe_pickle import load_mano_npz, load_mano_pickle

# Fingertip vertices (thumb, index, middle, ring, pinky) used by smplx and HaMeR.
MANO_TIP_VERTEX_IDS: tuple[int, int, int, int, int] = (744, 320, 443, 554, 671)
# The alternative choice made by HGGT.
HGGT_TIP_VERTEX_IDS: tuple[int, int, int, int, int] = (745, 317, 445, 556, 673)

# Keys the layer reads from a MANO file (the files carry a few more, e.g. bs_style).
MANO_REQUIRED_KEYS: tuple[str, ...] = (
    "v_template",
    "f",
    "J_regressor",
    "weights",
    "posedirs",
    "shapedirs",
    "kintree_table",
    "hands_components",
    "hands_mean",
)

# Folders below model_dir also searched, matching smplx.create's layout and the MANO download's.
_SEARCH_SUBDIRS: tuple[str, ...] = ("", "mano", "models")


def _file_stem(side: HandSide) -> str:
    return f"MANO_{side.value.upper()}"


def find_mano_files(model_dir: str | Path) -> dict[HandSide, Path]:
    """Locate ``MANO_<SIDE>.pkl`` (preferred) or ``.npz`` for both sides, or say where to put which file."""
    root = Path(model_dir).expanduser()
    found: dict[HandSide, Path] = {}
    for side in (HandSide.RIGHT, HandSide.LEFT):
        names = [f"{_file_stem(side)}{suffix}" for suffix in (".pkl", ".npz")]
        path = next((root / sub / n for sub in _SEARCH_SUBDIRS for n in names if (root / sub / n).is_file()), None)
        if path is not None:
            found[side] = path
    missing = [f"{_file_stem(side)}.pkl" for side in (HandSide.RIGHT, HandSide.LEFT) if side not in found]
    if missing:
        raise FileNotFoundError(
            f"MANO model files not found: {' and '.join(missing)} (or .npz) expected in {root} "
            "(or its mano/ or models/ subfolder). MANO is license-gated: register and download it from "
            "https://mano.is.tue.mpg.de, then copy MANO_RIGHT.pkl and MANO_LEFT.pkl (from mano_v*/models/) there; "
            "or use the open hand model (name 'open'), which needs no files."
        )
    return found


def load_mano_file(path: str | Path) -> dict[str, np.ndarray]:
    """Load a MANO file safely (no code execution) and check it has what the layer needs."""
    path = Path(path)
    data = load_mano_npz(path) if path.suffix == ".npz" else load_mano_pickle(path)
    missing = [key for key in MANO_REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(f"{path} is not a MANO model file: missing {', '.join(missing)}")
    return data


def outward_faces(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Return faces wound counter-clockwise seen from outside (flipped if the file's winding is inward).

    The sign of the volume enclosed by the triangles (measured from the mesh centroid,
    so the open wrist contributes little) tells the winding: positive means outward normals.
    """
    faces = np.asarray(faces, dtype=np.int64)
    corners = np.asarray(vertices, dtype=np.float64)[faces]
    corners -= np.asarray(vertices, dtype=np.float64).mean(axis=0)
    signed_volume = np.einsum("fi,fi->f", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6.0
    return faces if signed_volume >= 0 else np.ascontiguousarray(faces[:, [0, 2, 1]])


def _build_layer(
    path: Path, data: dict[str, np.ndarray], side: HandSide, flat_hand_mean: bool, num_betas: int
) -> smplx.MANO:
    """smplx MANO layer from already-loaded arrays; it holds buffers only, every input is passed per call."""
    # smplx prints a warning to stdout for every model with fewer than 300 shape
    # coefficients, which MANO always has; keep the product's stdout clean.
    with contextlib.redirect_stdout(io.StringIO()):
        layer = smplx.MANO(
            model_path=str(path),
            is_rhand=side is HandSide.RIGHT,
            data_struct=Struct(**data),
            use_pca=False,
            flat_hand_mean=flat_hand_mean,
            num_betas=num_betas,
            create_global_orient=False,
            create_hand_pose=False,
            create_betas=False,
            create_transl=False,
        )
    return layer.eval().requires_grad_(False)


def fix_left_shapedirs(left: torch.nn.Module, right: torch.nn.Module) -> bool:
    """Correct the left model's shape basis along x when it was not mirrored (smplx issue #48).

    The left hand is the right hand mirrored across its y-z plane, so the x part of each
    shape direction must be the negative of the right hand's. Widely used MANO_LEFT files
    ship the right hand's x part unchanged, so changing the shape moves left-hand vertices
    the wrong way along x. When the two x parts (nearly) coincide — summed absolute
    difference below 1 — negate the left's. Returns whether the fix was applied.
    """
    with torch.no_grad():
        if torch.sum(torch.abs(left.shapedirs[:, 0, :] - right.shapedirs[:, 0, :])) < 1:
            left.shapedirs[:, 0, :] *= -1
            return True
    return False


class ManoHandModel:
    """MANO (user-supplied files) as a :class:`~.base.HandModel`, posed with smplx."""

    name = "mano"

    def __init__(
        self,
        model_dir: str | Path,
        flat_hand_mean: bool = True,
        num_shape_params: int = 10,
        tip_vertex_ids: Sequence[int] = MANO_TIP_VERTEX_IDS,
    ) -> None:
        paths = find_mano_files(model_dir)
        data = {side: load_mano_file(path) for side, path in paths.items()}
        right_v = data[HandSide.RIGHT]["v_template"]
        available = data[HandSide.RIGHT]["shapedirs"].shape[-1]
        if not 1 <= num_shape_params <= available:
            raise ValueError(f"num_shape_params must be in 1..{available} for these MANO files, got {num_shape_params}")
        if len(tip_vertex_ids) != 5 or not all(0 <= int(i) < right_v.shape[0] for i in tip_vertex_ids):
            raise ValueError(f"tip_vertex_ids must be 5 vertex indices below {right_v.shape[0]}, got {tip_vertex_ids}")
        self.num_vertices = int(right_v.shape[0])
        self.num_shape_params = int(num_shape_params)
        self.flat_hand_mean = bool(flat_hand_mean)
        self.tip_vertex_ids = tuple(int(i) for i in tip_vertex_ids)
        self.source_files = paths
        self._tip_index = torch.tensor(self.tip_vertex_ids, dtype=torch.long)
        self._layers = {
            side: _build_layer(paths[side], data[side], side, self.flat_hand_mean, self.num_shape_params)
            for side in HandSide
        }
        self.left_shapedirs_fixed = fix_left_shapedirs(self._layers[HandSide.LEFT], self._layers[HandSide.RIGHT])
        self._faces = {side: outward_faces(data[side]["v_template"], data[side]["f"]) for side in HandSide}

    def faces(self, side: HandSide | str) -> np.ndarray:
        """(F, 3) int64 faces of that side, counter-clockwise seen from outside."""
        return self._faces[HandSide.parse(side)].copy()

    def _layer(self, side: HandSide, like: torch.Tensor) -> torch.nn.Module:
        """The side's layer on the caller's device and float type (moved once, then reused)."""
        layer = self._layers[side]
        if layer.shapedirs.device != like.device or layer.shapedirs.dtype != like.dtype:
            layer.to(device=like.device, dtype=like.dtype)
        return layer

    def forward(
        self,
        pose: Any,
        shape: Any | None = None,
        side: HandSide | str = HandSide.RIGHT,
        transl: Any | None = None,
    ) -> HandModelOutput:
        """Pose MANO; see :meth:`.base.HandModel.forward` for shapes and the numpy/torch contract."""
        side = HandSide.parse(side)
        inputs = batched_inputs(pose, shape, transl, self.num_shape_params)
        pose_t, batch = inputs.pose, inputs.pose.shape[0]
        out = self._layer(side, pose_t)(
            betas=inputs.shape,
            global_orient=pose_t[:, 0],
            hand_pose=pose_t[:, 1:NUM_POSE_JOINTS].reshape(batch, 3 * (NUM_POSE_JOINTS - 1)),
            transl=inputs.transl,
        )
        tips = out.vertices[:, self._tip_index.to(out.vertices.device)]
        joints = model_to_mediapipe(torch.cat([out.joints, tips], dim=1))
        return HandModelOutput(
            vertices=to_caller(out.vertices, inputs.wants_numpy),
            joints=to_caller(joints, inputs.wants_numpy),
            faces=caller_faces(self._faces[side], inputs.wants_numpy, pose_t),
        )

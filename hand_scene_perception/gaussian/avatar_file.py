"""Avatar files: one hand's learnt Gaussians, saved atomically and loaded safely (``torch.load(weights_only=True)``).

A file holds the format name and version, the hand model's name, the side, the mesh's vertex and face counts, the
Gaussians' barycentric sampling and the representation's weights. Loading rebuilds the avatar on the given hand
model's mesh and refuses a file of another format or version, another model or side, another mesh, or a sampling
that does not match the model's (each with what was expected), so a node never renders a hand on the wrong mesh.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.files import atomic_write
from ..core.hand_model import HandModel, HandSide
from .mesh_gaussians import MeshGaussians

AVATAR_FORMAT = "hand_scene_perception.gaussian_avatar"
AVATAR_VERSION = 1
AVATAR_SUFFIX = ".avatar.pt"


def save_avatar(path: str | Path, avatar: MeshGaussians, side: HandSide) -> None:
    """Write ``avatar`` (of ``side``) to ``path`` atomically: readers see the old file or the new one."""
    with atomic_write(path) as handle:
        torch.save({
            "format": AVATAR_FORMAT, "version": AVATAR_VERSION, "model_name": avatar.model_name,
            "side": HandSide.parse(side).value, "num_vertices": int(avatar.vertex_embeddings.shape[0]),
            "num_faces": int(avatar.faces.shape[0]), "per_face": avatar.per_face, "weights": avatar.state_dict(),
        }, handle)  # fmt: skip


def load_weights_file(path: Path, file_format: str, version: int, what: str, remedy: str) -> dict:
    """The dict a file of ours holds, read with ``torch.load(weights_only=True)`` (tensors, numbers, strings: no
    code runs), checked to be ``file_format`` at ``version``; ValueError naming the file, ``what`` it is not (with
    its article: "an avatar file"), and ``remedy`` for another version."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, corrupted or not a torch file: torch raises several kinds
        raise ValueError(f"{path} cannot be read as {what} ({type(error).__name__}: {error})") from None
    if not isinstance(saved, dict) or saved.get("format") != file_format:
        raise ValueError(f"{path} is not {what} (written by `hand-scene fit gaussian`)")
    if saved.get("version") != version:
        raise ValueError(f"{path} is {what} of version {saved.get('version')}; this package reads version "
                         f"{version}: {remedy}")  # fmt: skip
    return saved


def load_avatar(path: str | Path, model: HandModel) -> tuple[MeshGaussians, HandSide]:
    """The avatar in ``path`` and its side, rebuilt on ``model``'s mesh; ValueError naming the file and the reason
    when it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no avatar file at {path}")
    saved = load_weights_file(path, AVATAR_FORMAT, AVATAR_VERSION, "an avatar file", "fit the avatar again")
    side = HandSide.parse(saved["side"])
    if saved["model_name"] != model.name:
        raise ValueError(f"{path} was fitted on the {saved['model_name']!r} hand model, not {model.name!r}: load it "
                         f"with that model (--hand-model / hand_model)")  # fmt: skip
    faces = model.faces(side)
    if (saved["num_vertices"], saved["num_faces"]) != (model.num_vertices, len(faces)):
        raise ValueError(f"{path} has a mesh of {saved['num_vertices']} vertices and {saved['num_faces']} faces; the "
                         f"{model.name} model has {model.num_vertices} and {len(faces)}")  # fmt: skip
    rest = model.forward(np.zeros((16, 3), np.float32), side=side).vertices[0]
    avatar = MeshGaussians(faces, np.asarray(rest, np.float64), model.name, per_face=int(saved["per_face"]))
    weights = saved["weights"]
    for name in ("faces", "barycentric"):
        if name not in weights or not torch.equal(weights[name], getattr(avatar, name)):
            raise ValueError(f"{path}: its {name} differ from the {model.name} {side.value} mesh's; it was fitted on "
                             f"another mesh or sampling")  # fmt: skip
    try:
        avatar.load_state_dict(weights)
    except RuntimeError as error:  # missing or misshaped weights
        raise ValueError(f"{path}: its weights do not fit the avatar ({error})") from None
    return avatar, side

"""Posed Gaussians as a 3DGS PLY file, the layout common splat viewers open.

The layout (one vertex element, float32 properties in this order): x y z, nx ny nz (unused, zero), f_dc_0..2 (the
colour as degree-0 spherical-harmonic coefficients: colour = 0.5 + SH_C0 · f_dc), opacity (a logit), scale_0..2
(natural logarithms of the standard deviations), rot_0..3 (a quaternion w x y z; viewers normalise it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..core.ply import write_vertex_ply
from .mesh_gaussians import Gaussians

# The degree-0 spherical harmonic, 1 / (2 sqrt(pi)): colour = 0.5 + SH_C0 * f_dc.
SH_C0 = 0.28209479177387814
_OPACITY_RANGE = (1e-6, 1.0 - 1e-6)  # a finite logit at either end


def write_splat_ply(path: str | Path, gaussians: Gaussians, comment: str = "hand_scene_perception gaussian hand"
                    ) -> None:  # fmt: skip
    """Write one posed set (no batch dimensions: index a batch first) to ``path`` atomically."""
    if gaussians.positions.dim() != 2 or gaussians.colors.dim() != 2:
        raise ValueError(f"one set of Gaussians, not a batch: positions are {tuple(gaussians.positions.shape)}")
    with torch.no_grad():
        positions, rotations = _numpy(gaussians.positions), _numpy(gaussians.rotations)
        scales, colors = _numpy(gaussians.scales), _numpy(gaussians.colors)
        opacities = np.clip(_numpy(gaussians.opacities), *_OPACITY_RANGE)
    if not all(np.all(np.isfinite(values)) for values in (positions, rotations, scales, colors, opacities)):
        raise ValueError("the Gaussians hold NaN or infinite values (a NaN pose?): nothing written")
    columns = [*zip("xyz", positions.T, strict=True),
               *((name, np.zeros(len(positions))) for name in ("nx", "ny", "nz")),
               *((f"f_dc_{k}", (colors[:, k] - 0.5) / SH_C0) for k in range(3)),
               ("opacity", np.log(opacities / (1.0 - opacities))),
               *((f"scale_{k}", np.log(scales[:, k])) for k in range(3)),
               *((f"rot_{k}", rotations[:, k]) for k in range(4))]  # fmt: skip
    write_vertex_ply(path, [(name, np.asarray(values, np.float32)) for name, values in columns], comment)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy()

"""One thread for the maths libraries' own pools (OpenBLAS, OpenMP, torch) in the package's processes.

Why: the per-frame maths is many tiny matrices (a hand mesh has 778 vertices), where a library's thread pool only
adds overhead, and the pipeline already runs the detector and the odometry on their own threads beside it. Worse, a
pool's workers stall when those threads hold the cores: with torch's default intra-op pool (two threads on 2 cores)
the ego pipeline's tracking stage (one hand model forward pass per hand) took ~30 ms instead of ~2.5 ms on about a
third of the demo's frames, and its offline stream ran at 29-30 fps instead of 39-43 (two hands, RGB-D 640x480).
A user's own OMP_NUM_THREADS / OPENBLAS_NUM_THREADS is kept.
"""

from __future__ import annotations

import os
import sys

_POOL_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def use_single_threaded_math() -> None:
    """Set the pools to one thread unless the environment says otherwise. The variables take effect for libraries
    loaded afterwards (call it before numpy's import where possible); torch, if already loaded, is set directly."""
    chosen_by_user = "OMP_NUM_THREADS" in os.environ
    for name in _POOL_VARIABLES:
        os.environ.setdefault(name, "1")
    torch = sys.modules.get("torch")
    if torch is not None and not chosen_by_user:
        torch.set_num_threads(1)

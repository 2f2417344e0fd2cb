"""Choose a hand model by name (configuration and CLI use this, not the classes).

Torch-free to import (the models are imported when built), so listing the names stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import HandModel

HAND_MODEL_NAMES: tuple[str, ...] = ("open", "mano")


def create_hand_model(name: str = "open", mano_dir: str | Path | None = None) -> HandModel:
    """Build the named hand model: "open" (no files needed) or "mano" (user-supplied files in mano_dir).

    Implementations are imported here, on demand, so that importing the package needs
    neither smplx (MANO) nor the open model's assets.
    """
    key = str(name).strip().lower()
    if key == "open":
        from .open_model import OpenHandModel

        return OpenHandModel()
    if key == "mano":
        if mano_dir is None or not str(mano_dir).strip():
            raise ValueError(
                "hand model 'mano' needs mano_dir: the folder holding MANO_RIGHT.pkl and MANO_LEFT.pkl "
                "(downloaded from https://mano.is.tue.mpg.de after registering); or use the 'open' model"
            )
        from .mano import ManoHandModel

        return ManoHandModel(mano_dir)
    raise ValueError(f"unknown hand model {name!r}; choose one of: {', '.join(HAND_MODEL_NAMES)}")

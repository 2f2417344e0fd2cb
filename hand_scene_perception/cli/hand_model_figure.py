"""`hand-scene hand-model-figure`: the hand model in a few poses, as a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import (
    add_hand_model_arguments,
)


def run_hand_model_figure(args: argparse.Namespace) -> int:
    """Render the configured hand model in a few poses, both sides, to a PNG."""
    from ..core.hand_model import create_hand_model
    from ..synth.hand_model_figure import render_hand_model_figure

    model = create_hand_model(args.hand_model, mano_dir=args.mano_dir)
    path = render_hand_model_figure(args.out / "hand_model.png", model=model)
    print(f"hand-model-figure: wrote {path} ({model.name}: open palm, fist and pinch, right and left hands)")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Register the command and its arguments."""
    figure = commands.add_parser("hand-model-figure", help="render the hand model in a few poses to a PNG")
    figure.add_argument("--out", type=Path, default=Path("outputs"), help="output folder (default: outputs)")
    add_hand_model_arguments(figure)
    figure.set_defaults(handler=run_hand_model_figure)


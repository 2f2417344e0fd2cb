"""The `hand-scene` command: one entry point for demos, offline runs, evaluation and benchmarks.

Sub-commands import their heavy dependencies lazily so `hand-scene --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__


def run_demo(args: argparse.Namespace) -> int:
    """Render the configured hand model in a few poses, both sides, to a PNG."""
    from .core.hand_model import create_hand_model
    from .synth.hand_model_figure import render_hand_model_figure

    model = create_hand_model(args.hand_model, mano_dir=args.mano_dir)
    path = render_hand_model_figure(args.out / "hand_model.png", model=model)
    print(f"demo: wrote {path} ({model.name}: open palm, fist and pinch, right and left hands)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with one sub-command per job."""
    parser = argparse.ArgumentParser(prog="hand-scene", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the main job on the embedded default and write outputs/")
    demo.add_argument("--out", type=Path, default=Path("outputs"), help="output folder (default: outputs)")
    demo.add_argument("--hand-model", choices=("open", "mano"), default="open",
                      help="hand model: the package's open model (default) or MANO (needs --mano-dir)")
    demo.add_argument("--mano-dir", type=Path, default=None, help="folder holding MANO_RIGHT/LEFT .pkl or .npz")
    demo.set_defaults(handler=run_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen sub-command; user errors exit 2 with a message, not a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"hand-scene {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

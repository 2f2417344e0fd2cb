"""The `hand-scene` command: one entry point for demos, offline runs, evaluation and benchmarks.

One module per sub-command (its arguments and its handler); each imports its heavy dependencies lazily so
`hand-scene --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..core.threads import use_single_threaded_math
from . import (
    bench,
    convert_gt,
    demo,
    detect,
    eval,
    fit,
    hand_model_figure,
    launch,
    process,
    record,
    replay,
    run,
    video2bag,
)

COMMANDS = (demo, hand_model_figure, detect, run, fit, eval, convert_gt, bench, video2bag, replay, record, process,
            launch)


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with one sub-command per job."""
    parser = argparse.ArgumentParser(prog="hand-scene", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen sub-command; user errors exit 2 with a message, not a traceback."""
    use_single_threaded_math()  # before numpy's import, which building the parser already does
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if args.command == "launch":  # ros2-launch-style NAME:=VALUE items may follow options too (argparse stops at them)
        args.arguments += [item for item in extras if ":=" in item]
        extras = [item for item in extras if ":=" not in item]
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    try:
        return args.handler(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"hand-scene {args.command}: error: {error}", file=sys.stderr)
        return 2


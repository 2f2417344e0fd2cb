"""The `hand-scene` command line (cli/main.py builds the parser; one module per sub-command)."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]

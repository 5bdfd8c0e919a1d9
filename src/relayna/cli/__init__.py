"""The ``relayna`` command line (``relayna --help``)."""

from relayna.cli._main import build_parser, main

__all__ = ["build_parser", "main"]

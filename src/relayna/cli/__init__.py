"""The ``relayna`` command line (``relayna --help``)."""

from relayna.cli._cmd_worker import main_worker
from relayna.cli._main import build_parser, main

__all__ = ["build_parser", "main", "main_worker"]

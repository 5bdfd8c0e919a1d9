"""Run the ``relayna`` command in-process and capture what it printed.

Import as ``from _cli_run import run_cli`` (tests/ is on sys.path: rootdir conftest).
"""

from __future__ import annotations

import pytest

from relayna.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``relayna *argv``."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err

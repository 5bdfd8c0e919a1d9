"""Documented usage type-checks under mypy --strict (users run it on their code)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TYPING = Path(__file__).resolve().parents[1] / "typing"


def test_documented_usage_passes_mypy_strict() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(TYPING)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

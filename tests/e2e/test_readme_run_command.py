"""The README's first command works with only the base install (no extras).

It builds a fresh virtualenv, installs relayna with plain `pip install -e .`
as the README says, starts `relayna dev`, runs a task through it, and stops
it with Ctrl-C. This catches a runtime dependency that only the dev extras
happened to bring in.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from services import free_port  # scripts/ is on sys.path (tests/conftest.py)

from _dev_process import relayna_dev  # tests/ is on sys.path (rootdir conftest)

ROOT = Path(__file__).resolve().parents[2]


def test_readme_names_the_commands_this_test_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(
        r"python3 -m venv \.venv && \.venv/bin/pip install -e \. && \.venv/bin/relayna dev", readme
    )
    assert "\nscripts/test\n" in readme


def test_base_install_runs_relayna_dev(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", "-e", str(ROOT)],
        check=True,
        timeout=600,
    )
    port = free_port()
    with relayna_dev([str(venv / "bin/relayna"), "dev", "--port", str(port)], port,
                     start_timeout=60) as base:  # fmt: skip
        task_id = httpx.post(f"{base}/tasks", json={"payload": {"steps": 1}}, timeout=10).json()[
            "task_id"
        ]
        deadline = time.monotonic() + 30
        status = None
        while status != "completed" and time.monotonic() < deadline:
            time.sleep(0.2)
            resp = httpx.get(f"{base}/status/{task_id}", timeout=10)
            status = resp.json()["event"]["status"] if resp.status_code == 200 else None
        assert status == "completed"

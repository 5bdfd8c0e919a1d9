"""The README's first command works on a fresh virtualenv without the dev extras.

It builds a fresh virtualenv and installs relayna with plain `pip install -e .`
(no extras, no Studio), starts `relayna dev` on asyncio and on trio, runs a
task through it, and stops it with Ctrl-C: this catches a runtime dependency
that only the dev extras happened to bring in, and `relayna dev` without
relayna-studio says how to install it. The getting-started page's own service
runs from the same install (`relayna serve myservice:app --backend trio`, a
task followed live to `completed`). Then `pip install -e ./studio` completes
the README's command, and `relayna dev` lands a newcomer in Studio.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from services import free_port  # scripts/ is on sys.path (tests/conftest.py)

from _dev_process import relayna_dev  # tests/ is on sys.path (rootdir conftest)

# Tens of seconds per test: the slow tier (its own step of .ci/run; see tests/conftest.py).
pytestmark = pytest.mark.slow_tier

ROOT = Path(__file__).resolve().parents[2]


def test_readme_names_the_commands_this_test_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(
        r"python3 -m venv \.venv && \.venv/bin/pip install -e \. -e \./studio "
        r"&& \.venv/bin/relayna dev\n",
        readme,
    )
    assert "http://127.0.0.1:8001/tasks/search?service_id=demo" in readme
    assert "\nscripts/test\n" in readme


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the README's plain ``pip install -e .`` (no extras)."""
    venv = tmp_path_factory.mktemp("readme") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", "-e", str(ROOT)],
        check=True,
        timeout=600,
    )
    return venv


def _wait_completed(base: str, task_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    event: dict[str, object] = {}
    while event.get("status") != "completed" and time.monotonic() < deadline:
        time.sleep(0.2)
        resp = httpx.get(f"{base}/status/{task_id}", timeout=10)
        event = resp.json()["event"] if resp.status_code == 200 else {}
    return event


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_base_install_runs_relayna_dev(base_venv: Path, backend: str) -> None:
    port = free_port()
    argv = [str(base_venv / "bin/relayna"), "dev", "--port", str(port), "--backend", backend]
    output: list[str] = []
    with relayna_dev(argv, port, start_timeout=60, output=output) as base:
        task_id = httpx.post(f"{base}/tasks", json={"payload": {"steps": 1}}, timeout=10).json()[
            "task_id"
        ]
        assert _wait_completed(base, task_id).get("status") == "completed"
    # No Studio in this install: relayna dev says how to add it, and runs without it.
    assert any("pip install -e ./studio" in line for line in output), output
    assert not any("Studio: http" in line for line in output), output


def _getting_started_service() -> str:
    """The ``myservice.py`` block of docs/getting-started.md, as written there."""
    page = (ROOT / "docs" / "getting-started.md").read_text()
    blocks = re.findall(r"```python\n(# myservice\.py\n.*?)```", page, flags=re.S)
    assert len(blocks) == 1, "getting-started.md has one myservice.py block"
    return blocks[0]


def test_getting_started_service_runs_on_trio_with_live_status(
    base_venv: Path, tmp_path: Path
) -> None:
    """The newcomer's path: the page's 20-line service, `relayna serve` on trio, a
    task submitted as the page does, its statuses followed over SSE to the end."""
    code = _getting_started_service()
    assert len(code.strip().splitlines()) <= 25
    (tmp_path / "myservice.py").write_text(code)
    port = free_port()
    argv = [str(base_venv / "bin/relayna"), "serve", "myservice:app", "--backend", "trio",
            "--port", str(port)]  # fmt: skip
    with relayna_dev(
        argv, port, ready="relayna serve:", cwd=str(tmp_path), start_timeout=60
    ) as base:
        with httpx.Client(base_url=base, timeout=30) as http:
            assert "report.render" in http.get("/").text
            posted = http.post(
                "/tasks", json={"task_type": "report.render", "payload": {"pages": 2}}
            )
            assert posted.status_code == 202, posted.text
            with http.stream("GET", posted.json()["events_url"]) as stream:
                statuses = [
                    json.loads(line[5:])["status"]
                    for line in stream.iter_lines()
                    if line.startswith("data:") and '"status"' in line
                ]
    assert statuses == ["processing", "running", "running", "completed"]


def test_the_readme_command_lands_a_newcomer_in_studio(base_venv: Path) -> None:
    """``pip install -e . -e ./studio``: relayna dev prints Studio's task list and serves it."""
    subprocess.run(
        [str(base_venv / "bin/pip"), "install", "-q", "--disable-pip-version-check",
         "-e", str(ROOT), "-e", str(ROOT / "studio")],
        check=True, timeout=600,
    )  # fmt: skip
    port, studio_port = free_port(), free_port()
    argv = [str(base_venv / "bin/relayna"), "dev", "--port", str(port),
            "--studio-port", str(studio_port)]  # fmt: skip
    output: list[str] = []
    with relayna_dev(argv, port, start_timeout=60, output=output):
        [line] = [line for line in output if "Studio: http" in line]
        url = line.split("Studio: ", 1)[1].split()[0]
        assert url == f"http://127.0.0.1:{studio_port}/tasks/search?service_id=demo"
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200
        assert '<div id="root">' in page.text
        services = httpx.get(f"http://127.0.0.1:{studio_port}/studio/services", timeout=10).json()
        assert [s["service_id"] for s in services["services"]] == ["demo"]

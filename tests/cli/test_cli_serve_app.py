"""``relayna serve module:app`` discovers a relayna.App (issue 24, item 4)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from services import free_port  # scripts/ is on sys.path (tests/conftest.py)

from _dev_process import relayna_dev  # tests/ is on sys.path (rootdir conftest)

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_serve_runs_an_app_with_its_worker_on_memory(backend: str) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "relayna.cli", "serve", "cli_app:app",
            "--port", str(port), "--backend", backend]  # fmt: skip
    output: list[str] = []
    with relayna_dev(argv, port, ready="relayna serve:", output=output, cwd=str(HERE)) as base:
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/readyz").json()["status"] == "ready"
            assert "cli.echo" in http.get("/").text
            posted = http.post("/tasks", json={"task_type": "cli.echo", "payload": {"n": 1}})
            assert posted.status_code == 202, posted.text
            task_id = posted.json()["task_id"]
            with http.stream("GET", f"/events/{task_id}") as stream:
                body = stream.read().decode()
    assert '"status":"completed"' in body
    assert '"result":{"echo":{"n":1}}' in body
    ready = [line for line in output if "relayna serve:" in line]
    assert len(ready) == 1
    assert "worker on" in ready[0]


def test_serve_options_for_an_app_are_refused_for_a_plain_asgi_app(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from relayna.cli import main

    monkeypatch.chdir(HERE)
    with pytest.raises(SystemExit) as exited:
        main(["serve", "cli_app:plain_asgi", "--worker"])
    assert exited.value.code == 2
    assert "are for a relayna.App" in capsys.readouterr().err

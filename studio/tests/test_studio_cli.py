"""The relayna-studio command: help on every option, token create/list/revoke on the real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import anyio
import pytest

from relayna.transport import open_store
from relayna_studio import TokenStore


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relayna_studio", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_describes_every_command() -> None:
    for args in (["--help"], ["serve", "--help"], ["token", "create", "--help"]):
        out = run(*args, env={})
        assert out.returncode == 0
        assert "usage" in out.stdout
    create = run("token", "create", "--help", env={}).stdout
    for option in ("--role", "--name", "--service-id"):
        assert option in create


def test_missing_or_bad_configuration_is_exit_2() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYNA_STUDIO_")}
    out = subprocess.run(
        [sys.executable, "-m", "relayna_studio", "token", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "RELAYNA_STUDIO_REDIS_URL" in out.stderr
    bad = run(
        "token", "list", env={"RELAYNA_STUDIO_REDIS_URL": "redis://x", "RELAYNA_STUDIO_AUTH": "no"}
    )
    assert bad.returncode == 2
    assert "RELAYNA_STUDIO_AUTH" in bad.stderr


def test_token_lifecycle_on_redis(redis_url: str) -> None:
    prefix = f"cli:{uuid.uuid4().hex[:8]}"
    env = {"RELAYNA_STUDIO_REDIS_URL": redis_url, "RELAYNA_STUDIO_AUTH_PREFIX": prefix}
    created = run("token", "create", "--role", "operator", "--name", "on-call", env=env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("rst_")
    assert token not in created.stderr

    async def check() -> str | None:
        async with open_store(redis_url) as store:
            principal = await TokenStore(store, prefix).authenticate(token)
            return None if principal is None else principal.role

    assert anyio.run(check) == "operator"
    listed = run("token", "list", env=env)
    assert "on-call" in listed.stdout
    assert token[21:] not in listed.stdout
    token_id = token[4:20]
    assert run("token", "revoke", token_id, env=env).returncode == 0
    assert anyio.run(check) is None
    assert run("token", "revoke", token_id, env=env).returncode == 1
    bad = run("token", "create", "--role", "ingest", "--name", "x", env=env)
    assert bad.returncode == 2


@pytest.mark.parametrize("role", ["root", ""])
def test_unknown_role_is_a_usage_error(role: str) -> None:
    out = run(
        "token",
        "create",
        "--role",
        role,
        "--name",
        "x",
        env={"RELAYNA_STUDIO_REDIS_URL": "memory://"},
    )
    assert out.returncode == 2


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_serve_answers_and_stops_on_sigterm(backend: str) -> None:
    import signal

    import httpx

    env = {
        **os.environ,
        "RELAYNA_STUDIO_REDIS_URL": "memory://",
        "RELAYNA_STUDIO_AUTH": "off",
        "RELAYNA_STUDIO_HEALTH_REFRESH_INTERVAL_SECONDS": "off",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relayna_studio",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--backend",
            backend,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "serving on http://127.0.0.1:" in line, line
        url = line.split("serving on ")[1].split()[0]
        response = httpx.get(f"{url}/studio/services", timeout=10)
        assert response.status_code == 200
        assert response.json() == {"count": 0, "services": []}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

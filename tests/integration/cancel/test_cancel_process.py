"""Cancellation across processes on RabbitMQ + Redis: ``relayna worker`` killed with
SIGKILL while a cancel is sent (applied after the redelivery), and ``relayna cancel``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import relayna
from _cancel_support import statuses  # tests/ is on sys.path
from relayna.app import TaskHandle

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis]

HERE = Path(__file__).resolve().parent


def _env(unique: str, amqp_url: str, redis_url: str) -> dict[str, str]:
    return dict(
        os.environ,
        RELAYNA_TEST_CANCEL_UNIQUE=unique,
        RELAYNA_BROKER_URL=amqp_url,
        RELAYNA_STORE_URL=redis_url,
        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    )


CODE = "import sys; from relayna.cli import main; sys.exit(main(sys.argv[1:]))"


def _spawn(env: dict[str, str], backend: str) -> subprocess.Popen[bytes]:
    argv = ["worker", "cancel_worker_app:app", "--store-url", env["RELAYNA_STORE_URL"]]
    argv += ["--backend", backend, "--log-level", "WARNING", "--drain-timeout", "1"]
    return subprocess.Popen([sys.executable, "-c", CODE, *argv], env=env, stderr=subprocess.PIPE)


@asynccontextmanager
async def worker(env: dict[str, str], backend: str) -> AsyncIterator[subprocess.Popen[bytes]]:
    """``relayna worker cancel_worker_app:app --store-url ...`` until the block ends."""
    proc = _spawn(env, backend)
    try:
        assert proc.stderr is not None
        while True:
            line = await anyio.to_thread.run_sync(proc.stderr.readline)
            if not line:
                raise AssertionError(f"worker exited early with {proc.wait()}")
            if b"relayna worker ready" in line:
                break
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        await anyio.to_thread.run_sync(proc.wait)


async def cli(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    done = await anyio.run_process(
        [sys.executable, "-c", CODE, "cancel", *argv], env=env, check=False
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def running_in(handle: TaskHandle) -> int:
    """Wait for the handler's ``running`` status; the pid of the worker that runs it."""
    async with handle.events() as events:
        async for event in events:
            if event["status"] == "running":
                return int(event["meta"]["pid"])
    raise AssertionError("the task ended before it ran")


@pytest.fixture
def app_env(unique: str, amqp_url: str, redis_url: str) -> tuple[relayna.App, dict[str, str]]:
    env = _env(unique, amqp_url, redis_url)
    app = relayna.App(name=f"ck-{unique}", broker=amqp_url, store=redis_url, prefetch=2)
    app.task("slow")(lambda ctx, payload: None)  # the same task type as the worker's app
    return app, env


async def test_a_cancel_sent_while_the_worker_is_killed_is_applied_after_redelivery(
    anyio_backend: str, app_env: tuple[relayna.App, dict[str, str]]
) -> None:
    app, env = app_env
    with anyio.fail_after(90):
        async with app.open():  # publisher + status hub in this process; workers elsewhere
            async with worker(env, anyio_backend) as first:
                handle = await app.publish("slow")
                assert await running_in(handle) == first.pid
                first.send_signal(signal.SIGKILL)  # no drain, no ack: the broker requeues it
                await anyio.to_thread.run_sync(first.wait)
                code, out, err = await cli(env, handle.task_id, "--reason", "killed worker")
                assert code == 0, err
                assert "cancel requested (killed worker)" in out
            async with worker(env, anyio_backend):
                event = await handle.wait()
            assert (event["status"], event["message"]) == ("cancelled", "killed worker")
            assert event["meta"]["phase"] == "before_start"
            # the handler ran once (in the killed worker), never after the redelivery
            assert statuses(await handle.history()).count("running") == 1


async def test_relayna_cancel_stops_a_running_task_and_reports_what_it_found(
    anyio_backend: str, app_env: tuple[relayna.App, dict[str, str]]
) -> None:
    app, env = app_env
    with anyio.fail_after(90):
        async with app.open(), worker(env, anyio_backend) as proc:
            handle = await app.publish("slow")
            assert await running_in(handle) == proc.pid
            code, out, _ = await cli(env, handle.task_id, "--json")
            assert code == 0
            assert _json(out) == {
                "task_id": handle.task_id,
                "state": "requested",
                "reason": "cancelled",
                "status": None,
            }
            event = await handle.wait()
            assert (event["status"], event["meta"]["phase"]) == ("cancelled", "running")
            code, _, err = await cli(env, handle.task_id)
            assert (code, err.strip()) == (
                1,
                f"relayna: task {handle.task_id} already ended: cancelled",
            )
            code, _, err = await cli(env, "no-such-task")
            assert (code, err.strip()) == (1, "relayna: no task no-such-task")
            for bad in (["bad id"], [handle.task_id, "--reason", "x" * 501]):
                code, _, err = await cli(env, *bad)
                assert code == 2, err


def _json(text: str) -> Any:
    return json.loads(text)

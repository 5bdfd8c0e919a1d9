"""``relayna worker`` on the real RabbitMQ + Redis: lifecycle statuses by default
(a task it handles reaches ``completed``), the ready line once, ``--log-format
json``, and an App discovered as ``module:app``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from relayna_test_app import make_app

from relayna.api import RelaynaRuntime, RuntimeConfig, open_relayna_runtime
from relayna.app import TaskFailed
from relayna.dlq import DLQQuery, DLQStore
from relayna.rabbitmq import open_relayna_client
from relayna.transport import Broker

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis]

HERE = Path(__file__).resolve().parent


class _Proc:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def wait_ready(self) -> None:
        assert self.proc.stderr is not None
        while True:
            line = await anyio.to_thread.run_sync(self.proc.stderr.readline)
            if not line:
                raise AssertionError(f"worker exited ({self.proc.wait()}):\n{''.join(self.lines)}")
            self.lines.append(line)
            if "relayna worker ready" in line:
                return

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        _, rest = self.proc.communicate(timeout=60)
        self.lines.extend(rest.splitlines(keepends=True))
        return self.proc.returncode


@contextmanager
def _worker(*argv: str, unique: str, backend: str) -> Iterator[_Proc]:
    env = dict(
        os.environ,
        RELAYNA_TEST_WORKER_UNIQUE=unique,
        RELAYNA_TEST_APP_UNIQUE=unique,
        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "relayna.cli", "worker", *argv, "--backend", backend],
        env=env,
        cwd=HERE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield _Proc(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@asynccontextmanager
async def _hub(topology: Any, broker: Broker, redis_url: str) -> AsyncIterator[RelaynaRuntime]:
    config = RuntimeConfig(store_url=redis_url, topology=topology, broker_url=broker.url)
    async with open_relayna_runtime(config, broker=broker) as runtime:
        yield runtime


async def _final_status(runtime: RelaynaRuntime, task_id: str) -> dict[str, Any]:
    while True:
        event = await runtime.status.latest(task_id)
        if event is not None and event["status"] in {"completed", "failed"}:
            return event
        await anyio.sleep(0.02)


async def test_a_task_the_cli_worker_handles_reaches_completed(
    broker: Broker, topology: Any, amqp_url: str, redis_url: str, unique: str, anyio_backend: str
) -> None:
    with _worker(
        "relayna_test_worker_app:handler",
        "--topology",
        "relayna_test_worker_app:topology",
        "--broker-url",
        amqp_url,
        "--log-format",
        "json",
        unique=unique,
        backend=anyio_backend,
    ) as worker:
        with anyio.fail_after(60):
            await worker.wait_ready()
            async with (
                _hub(topology, broker, redis_url) as runtime,
                open_relayna_client(topology, broker) as client,
            ):
                await client.publish_task({"task_id": f"t-{unique}", "payload": {"sleep": 0.01}})
                final = await _final_status(runtime, f"t-{unique}")
                history = [e["status"] for e in await runtime.status.history(f"t-{unique}")]
        code = worker.stop()
    assert final["status"] == "completed"
    assert history[::-1] == ["processing", "started", "done", "completed"]
    assert code == 0
    ready = [line for line in worker.lines if "relayna worker ready" in line]
    assert len(ready) == 1, worker.lines
    records = [json.loads(line) for line in worker.lines if line.strip()]  # every line is JSON
    assert any(r["message"].startswith("relayna worker ready") for r in records)
    assert {r["level"] for r in records} <= {"INFO", "WARNING"}


async def test_the_worker_discovers_an_app(
    amqp_url: str, redis_url: str, unique: str, anyio_backend: str
) -> None:
    app = make_app(amqp_url, redis_url, unique)
    with _worker("relayna_test_app:app", unique=unique, backend=anyio_backend) as worker:
        with anyio.fail_after(60):
            await worker.wait_ready()
            async with app.open():
                retried = await app.tasks["report.render"].publish({"pages": 4, "fail_first": True})
                doubled = await app.publish("report.sync", {"n": 21})
                failing = await app.publish("report.render", {"fail_always": True})
                assert await retried.result() == {"pages": 4, "attempt": 1}
                assert await doubled.result() == {"value": 42}
                with pytest.raises(TaskFailed):
                    await failing.result()
                statuses = [e["status"] for e in await retried.history()]
                # no --store-url: the App's own (Redis) store holds the dead letter's record
                dlq = DLQStore(app.runtime.store)
                page = await dlq.list_records(DLQQuery(task_id=failing.task_id))
                assert [r.reason for r in page.records] == ["handler_error"]
                assert page.records[0].source_queue_name == f"it-app-{unique}.tasks"
        assert worker.stop() == 0
    async with app.open() as opened:  # remove what the test declared
        broker = opened.runtime.broker
        assert broker is not None
        for queue in (".tasks", ".tasks.retry", ".tasks.dlq", ".status"):
            await broker.delete_queue(f"it-app-{unique}{queue}")
    assert statuses == ["processing", "retrying", "processing", "running", "completed"]

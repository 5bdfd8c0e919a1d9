"""``relayna worker`` as a process: SIGTERM drains, a second SIGTERM requeues and exits 1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from relayna.rabbitmq import open_relayna_client
from relayna.transport import Broker

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq]

HERE = Path(__file__).resolve().parent
CODE = "import sys; from relayna.consumer import main_worker; sys.exit(main_worker(sys.argv[1:]))"


def _spawn(unique: str, argv: list[str]) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        RELAYNA_TEST_WORKER_UNIQUE=unique,
        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    )
    return subprocess.Popen([sys.executable, *argv], env=env, stderr=subprocess.PIPE)


def _start(amqp_url: str, unique: str, backend: str, drain: float) -> subprocess.Popen[bytes]:
    return _spawn(
        unique,
        [
            "-c",
            CODE,
            "relayna_test_worker_app:handler",
            "--topology",
            "relayna_test_worker_app:topology",
            "--broker-url",
            amqp_url,
            "--prefetch",
            "4",
            "--backend",
            backend,
            "--drain-timeout",
            str(drain),
            "--log-level",
            "WARNING",
            "--no-lifecycle-statuses",  # the test counts the handler's own statuses
        ],
    )


async def _wait_ready(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stderr is not None
    while True:
        line = await anyio.to_thread.run_sync(proc.stderr.readline)
        if not line:
            raise AssertionError(f"worker exited early with {proc.wait()}")
        if b"relayna worker ready" in line:
            return


async def _wait_exit(proc: subprocess.Popen[bytes]) -> int:
    while proc.poll() is None:  # noqa: ASYNC110 - polling a child process
        await anyio.sleep(0.05)
    return proc.returncode


async def _depth(broker: Broker, queue: str) -> int:
    return (await broker.inspect_queue(queue)).message_count


@pytest.mark.parametrize("second_signal", [False, True], ids=["drain", "second-signal"])
async def test_sigterm_drains_in_flight_tasks(
    broker: Broker,
    topology: Any,
    amqp_url: str,
    unique: str,
    anyio_backend: str,
    second_signal: bool,
) -> None:
    proc = _start(amqp_url, unique, anyio_backend, drain=20)
    try:
        with anyio.fail_after(60):
            await _wait_ready(proc)
            async with open_relayna_client(topology, broker) as client:
                await client.publish_tasks(
                    [{"task_id": f"w{i}", "payload": {"sleep": 1.5}} for i in range(8)]
                )
                while await _depth(broker, topology.status_queue) < 4:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
                proc.send_signal(signal.SIGTERM)
                if second_signal:
                    await anyio.sleep(0.3)
                    proc.send_signal(signal.SIGTERM)
                code = await _wait_exit(proc)
            statuses = await _depth(broker, topology.status_queue)
            tasks = await _depth(broker, topology.tasks_queue)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    if second_signal:
        assert code == 1
        assert statuses == 4  # started, never finished
        assert tasks == 8  # 4 requeued + 4 never delivered: nothing lost
    else:
        assert code == 0
        assert statuses == 8  # 4 started + 4 done: no new delivery after SIGTERM
        assert tasks == 4


@pytest.mark.redis
async def test_relayna_worker_records_dead_letters_in_the_store(
    broker: Broker, topology: Any, amqp_url: str, redis_url: str, unique: str, anyio_backend: str
) -> None:
    from relayna.dlq import DLQQuery, DLQStore
    from relayna.transport import open_store

    proc = _spawn(
        unique,
        [
            "-m",
            "relayna.cli",
            "worker",
            "relayna_test_worker_app:failing_handler",
            "--topology",
            "relayna_test_worker_app:topology",
            "--broker-url",
            amqp_url,
            "--store-url",
            redis_url,
            "--max-retries",
            "0",
            "--retry-delay-ms",
            "100",
            "--backend",
            anyio_backend,
        ],
    )
    task_id = f"dead-{unique}"
    try:
        with anyio.fail_after(60):
            await _wait_ready(proc)
            async with open_relayna_client(topology, broker) as client:
                await client.publish_task({"task_id": task_id})
            async with open_store(redis_url) as store:
                dlq = DLQStore(store)
                while not (records := (await dlq.list_records(DLQQuery(task_id=task_id))).records):  # noqa: ASYNC110 - another process writes
                    await anyio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            assert await _wait_exit(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    [record] = records
    assert record.reason == "handler_error"
    assert record.exception_message == f"cannot handle {task_id}"
    assert record.queue_name == topology.tasks_queue + ".dlq"

"""``relayna worker --metrics-port``: a worker process serves /metrics from its own
task group and stops serving when it exits (real RabbitMQ, both backends)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from relayna.rabbitmq import open_relayna_client
from relayna.transport import Broker

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq]

HERE = Path(__file__).resolve().parent


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return -1.0


def _start(amqp_url: str, unique: str, backend: str) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        RELAYNA_TEST_WORKER_UNIQUE=unique,
        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relayna.cli",
            "worker",
            "relayna_test_worker_app:handler",
            "--topology",
            "relayna_test_worker_app:topology",
            "--broker-url",
            amqp_url,
            "--backend",
            backend,
            "--metrics-port",
            "0",
            "--consumer-name",
            "metered",
            "--log-level",
            "WARNING",
        ],
        env=env,
        stderr=subprocess.PIPE,
    )


async def test_worker_serves_metrics_and_stops_with_the_worker(
    broker: Broker, topology: Any, amqp_url: str, unique: str, anyio_backend: str
) -> None:
    proc = _start(amqp_url, unique, anyio_backend)
    try:
        with anyio.fail_after(60):
            assert proc.stderr is not None
            url = ""
            while not url:
                line = (await anyio.to_thread.run_sync(proc.stderr.readline)).decode()
                assert line, f"worker exited early with {proc.wait()}"
                if line.startswith("relayna worker metrics: "):
                    url = line.split(": ", 1)[1].strip()
            async with open_relayna_client(topology, broker) as client:
                await client.publish_tasks(
                    [{"task_id": f"m{i}", "payload": {"sleep": 0}} for i in range(5)]
                )
            async with httpx.AsyncClient(timeout=5) as http:
                while True:
                    response = await http.get(url)
                    assert response.status_code == 200
                    assert response.headers["content-type"].startswith("text/plain")
                    if _metric(response.text, "relayna_tasks_acked_total") == 5:
                        break
                    await anyio.sleep(0.05)
                assert 'consumer="metered"' in response.text
                proc.send_signal(signal.SIGTERM)
                while proc.poll() is None:  # noqa: ASYNC110 - polling a child process
                    await anyio.sleep(0.05)
                assert proc.returncode == 0
                with pytest.raises(httpx.ConnectError):
                    await http.get(url)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

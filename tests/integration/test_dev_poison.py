"""``relayna dev`` on real RabbitMQ + Redis survives the reported poison (issue 26).

A task and a status event whose timestamps are valid ISO-8601 but cannot be
converted to UTC used to raise ``OverflowError`` out of the codec: the worker
and the hub died, ``relayna dev`` exited, every restart re-read the same
message and died again, and ``/history`` answered 500 for the stream's whole
retention. Here both are injected before and while the service runs; it keeps
serving, a good task completes, ``/history`` answers 200 (the bad event
skipped and counted) and bad ``start_offset`` values get a 422.
"""

from __future__ import annotations

import anyio
import httpx
import orjson
import pytest
from services import free_port

from relayna.devserver import DevConfig, demo_topology, run_dev
from relayna.transport import Properties, open_broker

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis]

OUT_OF_RANGE = "0001-01-01T00:00:00+05:00"
JSON = Properties(content_type="application/json")


async def _wait_terminal(client: httpx.AsyncClient, task_id: str) -> list[str]:
    statuses: list[str] = []
    async with client.stream("GET", f"/events/{task_id}") as resp:
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if line.startswith("data:"):
                data = orjson.loads(line[5:])
                if "status" in data:
                    statuses.append(data["status"])
    return statuses


async def test_dev_survives_unconvertible_timestamps_and_history_answers(
    amqp_url: str, redis_url: str, unique: str
) -> None:
    prefix = f"relayna.poison.{unique}"
    topology = demo_topology(prefix)
    config = DevConfig(
        port=free_port(),
        broker_url=amqp_url,
        store_url=redis_url,
        prefix=prefix,
        step_seconds=0.01,
        retry_delay_ms=100,
        drain_timeout=5,
    )
    bad_status = orjson.dumps({"task_id": "bad", "status": "running", "timestamp": OUT_OF_RANGE})
    bad_task = orjson.dumps(
        {"task_id": "bad-task", "task_type": "demo.process", "created_at": OUT_OF_RANGE}
    )
    shutdown = anyio.Event()
    with anyio.fail_after(90):
        async with open_broker(amqp_url) as injector, anyio.create_task_group() as tg:
            url = (await tg.start(run_dev, config, shutdown)).rstrip("/")
            # One of each in the stream / queue while the service runs.
            await injector.publish("", topology.status_queue, bad_status, JSON)
            await injector.publish("", topology.tasks_queue, bad_task, JSON)
            async with httpx.AsyncClient(base_url=url, timeout=20) as client:
                resp = await client.post("/tasks", json={"payload": {"steps": 1}})
                assert resp.status_code == 202, resp.text
                good = resp.json()["task_id"]
                assert (await _wait_terminal(client, good))[-1] == "completed"
                # The poison task still ends: failed, from its body's task id.
                assert (await _wait_terminal(client, "bad-task"))[-1] == "failed"
                history = await client.get(
                    "/history", params={"start_offset": "first", "max_seconds": 10}
                )
                assert history.status_code == 200, history.text
                body = history.json()
                assert body["skipped"] >= 1
                assert good in {e["task_id"] for e in body["events"]}
                for offset in ("1969-12-31T23:59:59Z", "-1", OUT_OF_RANGE, str(2**63)):
                    refused = await client.get("/history", params={"start_offset": offset,
                                                                   "max_seconds": 1})  # fmt: skip
                    assert refused.status_code == 422, (offset, refused.text)
            shutdown.set()

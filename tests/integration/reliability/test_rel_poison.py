"""D9/T11 (library half): poison and always-failing tasks in a worker process, real RabbitMQ.

100 always-failing tasks with ``max_retries=2`` → exactly 3 attempts each
(attempts 0, 1, 2 in the executions ledger) and 100 DLQ copies with reason
``handler_error``; 20 malformed messages → 20 DLQ copies with their reason,
handler never called; worker RSS flat across the batch (measured after a
warm-up of successful tasks, so first-use allocations are not counted).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import Any

import anyio
import pytest
from _harness import (
    Worker,
    delete_topology,
    drain_queue,
    open_ledger,
    rss_kib,
    start_worker,
    stop_workers,
    wait_for,
    worker_env,
)
from _worker_app import ledger_prefix, make_topology

from relayna.contracts import headers as h
from relayna.rabbitmq import open_relayna_client
from relayna.transport import Properties, open_broker

pytestmark = [pytest.mark.anyio, pytest.mark.rabbitmq, pytest.mark.redis, pytest.mark.slow]

N_FAILING = 100
MAX_RETRIES = 2
WARMUP = 60
RSS_TOLERANCE_KIB = 6 * 1024

JSON = "application/json"

# (body, properties, expected DLQ reason): the bad-input list of RELIABILITY (3).
MALFORMED: list[tuple[bytes, dict[str, Any], str]] = [
    (b"\xff\xfe\x00 not utf-8", {}, "decode_error"),
    (b'{"task_id":', {}, "invalid_json"),
    (b"[]", {}, "schema"),
    (b"42", {}, "schema"),
    (b"null", {}, "schema"),
    (b'{"payload": {}}', {}, "schema"),
    (b'{"task_id": ""}', {}, "schema"),
    (b'{"task_id": "a\\r\\nb"}', {}, "schema"),
    (b'{"task_id": "a*b"}', {}, "schema"),
    (b'{"task_id": "a b"}', {}, "schema"),
    (b'{"task_id": "' + b"x" * 10_000 + b'"}', {}, "schema"),
    (b'{"task_id": "a", "task_id": "b"}', {}, "schema"),
    (b"[" * 100_000, {}, "too_deep"),
    (b'{"task_id": "big", "payload": {"x": "' + b"y" * (1_100_000) + b'"}}', {}, "too_large"),
    (
        b'{"task_id": "pickled"}',
        {"content_type": "application/x-python-pickle"},
        "unsupported_content_type",
    ),
    (b'{"task_id": "gz"}', {"content_encoding": "gzip"}, "unsupported_content_type"),
    (b'{"task_id": "att1"}', {"headers": {h.RETRY_ATTEMPT: "abc"}}, "invalid_header"),
    (b'{"task_id": "att2"}', {"headers": {h.RETRY_ATTEMPT: -1}}, "invalid_header"),
    # (a NaN float header cannot travel: RabbitMQ's table parser closes the connection)
    (b'{"task_id": "att3"}', {"headers": {h.RETRY_ATTEMPT: "NaN"}}, "invalid_header"),
    (b'{"task_id": "att4"}', {"headers": {h.RETRY_ATTEMPT: 2**62}}, "invalid_header"),
]


async def test_poison_and_failing_tasks_end_in_the_dlq_with_bounded_attempts(
    amqp_url: str, redis_url: str, unique: str, anyio_backend: str
) -> None:
    assert len(MALFORMED) == 20
    topo = make_topology(unique)
    env = worker_env(
        unique=unique,
        amqp_url=amqp_url,
        redis_url=redis_url,
        backend=anyio_backend,
        REL_PREFETCH=16,
        REL_MAX_RETRIES=MAX_RETRIES,
        REL_RETRY_DELAY_MS=200,
    )
    failing = [f"f{i}" for i in range(N_FAILING)]
    dlq = f"{topo.tasks_queue}.dlq"
    worker: Worker | None = None
    started = time.monotonic()
    async with (
        open_broker(amqp_url) as broker,
        open_ledger(redis_url, ledger_prefix(unique)) as ledger,
    ):
        try:
            with anyio.fail_after(100):
                async with open_relayna_client(topo, broker) as client:
                    worker = start_worker(env)
                    await worker.wait_ready()
                    await client.publish_tasks(
                        [{"task_id": f"w{i}", "payload": {}} for i in range(WARMUP)]
                    )

                    async def warm() -> bool:
                        return await ledger.effect_count() >= WARMUP

                    await wait_for(warm, 30, "warm-up")
                    rss_before = rss_kib(worker.pid)
                    await client.publish_tasks(
                        [{"task_id": t, "payload": {"mode": "fail"}} for t in failing]
                    )
                    for body, props, _ in MALFORMED:
                        await client.publish_raw(
                            "",
                            topo.tasks_queue,
                            body,
                            Properties(
                                content_type=props.get("content_type", JSON),
                                content_encoding=props.get("content_encoding"),
                                headers=props.get("headers", {}),
                                delivery_mode=2,
                            ),
                            check_size=False,
                        )

                    async def dead_lettered() -> bool:
                        return (await broker.inspect_queue(dlq)).message_count >= N_FAILING + 20

                    await wait_for(dead_lettered, 60, "DLQ copies", interval=0.2)
                    await anyio.sleep(0.5)  # nothing more may arrive
                    rss_after = rss_kib(worker.pid)
                    copies = await drain_queue(broker, dlq, N_FAILING + 20, limit=20)
                    extra = (await broker.inspect_queue(dlq)).message_count
                    depth = sum(
                        [
                            (await broker.inspect_queue(q)).message_count
                            for q in (topo.tasks_queue, f"{topo.tasks_queue}.retry")
                        ]
                    )
                    [code] = await stop_workers([worker])
            executions = await ledger.executions()
            stats = worker.stats()
        finally:
            if worker is not None:
                worker.cleanup()
            await delete_topology(broker, topo)
    elapsed = time.monotonic() - started

    attempts: dict[str, list[int]] = defaultdict(list)
    for e in executions:
        attempts[e["t"]].append(e["a"])
    reasons: Counter[str] = Counter()
    by_task: dict[str, dict[str, Any]] = {}
    malformed_reasons: list[str] = []
    for d in copies:
        hdrs = dict(d.properties.headers)
        reason = str(hdrs.get(h.FAILURE_REASON))
        reasons[reason] += 1
        task_id = hdrs.get(h.TASK_ID)
        if reason == "handler_error":
            by_task[str(task_id)] = hdrs
        else:
            malformed_reasons.append(reason)
    report = {
        "elapsed": round(elapsed, 1),
        "dlq": dict(reasons),
        "attempt_histogram": dict(Counter(len(attempts[t]) for t in failing)),
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "rss_growth_kib": rss_after - rss_before,
        "worker_stats": stats,
    }
    print(f"\n[reliability poison {anyio_backend}] {report}")
    assert code == 0
    assert extra == 0, report
    assert depth == 0, report
    # exactly 3 attempts each, in order, and one DLQ copy each
    assert all(sorted(attempts[t]) == [0, 1, 2] for t in failing), report
    assert sorted(by_task) == sorted(failing), report
    assert all(int(hd[h.RETRY_ATTEMPT]) == MAX_RETRIES for hd in by_task.values())
    assert all(hd.get("relayna-exception-type") == "RuntimeError" for hd in by_task.values())
    # malformed: each with its reason, no handler call for any of them
    assert sorted(malformed_reasons) == sorted(r for _, _, r in MALFORMED), report
    ran = {e["t"] for e in executions}
    assert ran == set(failing) | {f"w{i}" for i in range(WARMUP)}, report
    assert stats["poison"] == dict(Counter(r for _, _, r in MALFORMED)), report
    assert rss_after - rss_before < RSS_TOLERANCE_KIB, report

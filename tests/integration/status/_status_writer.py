"""A status writer program: what the hub does, at a fixed rate, in its own process.

``python _status_writer.py REDIS_URL BACKEND PREFIX MAX_HISTORY TASKS EVENTS RATE``
opens the store, prints ``ready``, waits for a line on stdin, then writes
event ``n`` of every task (one ``write_many`` round trip per tick) at ``RATE``
ticks per second, ``EVENTS`` ticks; the last event of a task has status
``completed``. A write that fails with StoreError is retried (as the hub
retries) until it is stored, so the history ends up complete whatever the
faults. Prints the number of retried round trips at the end.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio

from relayna.errors import StoreError
from relayna.status import StatusStore, StatusStoreConfig
from relayna.transport import open_store

__all__ = ["event", "task_ids"]


def task_ids(count: int) -> list[str]:
    return [f"t7-{i}" for i in range(count)]


def event(task_id: str, n: int, total: int) -> dict[str, Any]:
    status = "completed" if n == total - 1 else "running"
    return {"task_id": task_id, "event_id": f"{task_id}-{n}", "status": status, "n": n}


async def write_all(status: StatusStore, events: list[dict[str, Any]]) -> int:
    """Write ``events`` in one round trip; retry the failed ones. Returns retries."""
    retries = 0
    while events:
        try:
            results: list[bool | StoreError] = list(await status.write_many(events))
        except StoreError as exc:
            results = [exc] * len(events)  # retrying is safe (dedupe marker written last)
        events = [e for e, r in zip(events, results, strict=True) if isinstance(r, StoreError)]
        if events:
            retries += 1
            await anyio.sleep(0.02)
    return retries


async def _main(
    url: str, config: StatusStoreConfig, tasks: list[str], total: int, rate: float
) -> None:
    async with open_store(url) as store:
        status = StatusStore(store, config)
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        t0 = anyio.current_time()
        retries = 0
        for n in range(total):
            retries += await write_all(status, [event(t, n, total) for t in tasks])
            await anyio.sleep_until(t0 + (n + 1) / rate)
        print(retries, flush=True)


if __name__ == "__main__":
    url, backend, prefix, max_history, tasks, events, rate = sys.argv[1:8]
    anyio.run(
        _main,
        url,
        StatusStoreConfig(prefix=prefix, max_history=int(max_history)),
        task_ids(int(tasks)),
        int(events),
        float(rate),
        backend=backend,
    )

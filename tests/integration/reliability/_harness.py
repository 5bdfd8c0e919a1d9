"""Process, ledger and queue helpers shared by the reliability tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from relayna.transport import Broker, Store, open_store

HERE = Path(__file__).resolve().parent
LEDGER_DB = 5
MAIN_WORKER = (
    "import sys; from relayna.consumer import main_worker; sys.exit(main_worker(sys.argv[1:]))"
)


def ledger_url(redis_url: str) -> str:
    """The same Redis, another database: the ledgers are never faulted."""
    base, _, _db = redis_url.rstrip("/").rpartition("/")
    return f"{base}/{LEDGER_DB}"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


class Worker:
    """One worker subprocess; stderr goes to a file (never a pipe that could fill)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        fd, name = tempfile.mkstemp(prefix="relayna-rel-worker-", suffix=".log")
        os.close(fd)  # only the path is used: an open fd per worker would leak
        self.log = Path(name)
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                argv, env=env, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def ready(self) -> bool:
        return self.proc.poll() is None and "ready" in self.text()

    def ready_for(self) -> float:
        """Seconds since the worker reported ``ready <pid> <time>`` (-1: not ready)."""
        if self.proc.poll() is not None:
            return -1.0
        for line in self.text().splitlines():
            if line.startswith("ready "):
                return time.time() - float(line.split()[2])
        return -1.0

    async def wait_ready(self, marker: str = "ready") -> None:
        while marker not in self.text():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"worker exited early ({self.proc.returncode}):\n{self.text()[-3000:]}"
                )
            await anyio.sleep(0.05)

    async def wait_exit(self) -> int:
        while self.proc.poll() is None:  # noqa: ASYNC110 - polling a child process
            await anyio.sleep(0.05)
        return self.proc.returncode

    def stats(self) -> dict[str, Any]:
        for line in self.text().splitlines():
            if line.startswith("stats "):
                return dict(json.loads(line[6:]))
        return {}

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def cleanup(self) -> None:
        self.kill()
        self.log.unlink(missing_ok=True)


def worker_env(
    *, unique: str, amqp_url: str, redis_url: str, backend: str, **extra: str | int
) -> dict[str, str]:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        REL_UNIQUE=unique,
        REL_AMQP_URL=amqp_url,
        REL_STORE_URL=redis_url,
        REL_LEDGER_URL=ledger_url(redis_url),
        REL_BACKEND=backend,
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_worker(env: dict[str, str]) -> Worker:
    return Worker([sys.executable, "-m", "_worker_app"], env)


async def stop_workers(workers: list[Worker], limit: float = 30) -> list[int]:
    for w in workers:
        w.signal(signal.SIGTERM)
    with anyio.fail_after(limit):
        return [await w.wait_exit() for w in workers]


class Ledger:
    """Reads the executions/effects ledgers written by ``_worker_app.handler``."""

    def __init__(self, store: Store, prefix: str) -> None:
        self.store = store
        self.prefix = prefix

    async def executions(self) -> list[dict[str, Any]]:
        raw = await self.store.lrange(f"{self.prefix}:executions", 0, -1)
        return [json.loads(r) for r in raw]

    async def effects(self) -> dict[str, int]:
        raw = await self.store.hgetall(f"{self.prefix}:effects")
        return {k.decode(): int(v) for k, v in raw.items()}

    async def effect_count(self) -> int:
        return len(await self.store.hgetall(f"{self.prefix}:effects"))

    async def dup_effects(self) -> dict[str, int]:
        raw = await self.store.hgetall(f"{self.prefix}:dup_effects")
        return {k.decode(): int(v) for k, v in raw.items()}

    async def clear(self) -> None:
        for name in ("executions", "effects", "dup_effects", "starts", "ends"):
            await self.store.delete(f"{self.prefix}:{name}")


@asynccontextmanager
async def open_ledger(redis_url: str, prefix: str) -> AsyncIterator[Ledger]:
    async with open_store(ledger_url(redis_url)) as store:
        ledger = Ledger(store, prefix)
        await ledger.clear()
        try:
            yield ledger
        finally:
            with anyio.CancelScope(shield=True):
                await ledger.clear()


def check_oracle(
    produced: set[str], executions: list[dict[str, Any]], effects: dict[str, int]
) -> dict[str, Any]:
    """The Jepsen-style taxonomy at the effect level (RELIABILITY C.3)."""
    runs = Counter(e["t"] for e in executions)
    first_deliveries = Counter(e["t"] for e in executions if not e["r"])
    return {
        "produced": len(produced),
        "ok": sum(1 for t in produced if effects.get(t) == 1),
        "lost": sorted(produced - set(effects))[:20],
        "lost_count": len(produced - set(effects)),
        "duplicated_effects": {t: n for t, n in effects.items() if n > 1},
        "unexpected": sorted((set(effects) | set(runs)) - produced)[:20],
        "executions": len(executions),
        "duplicate_executions": sum(n - 1 for n in runs.values() if n > 1),
        "tasks_run_more_than_once": sum(1 for n in runs.values() if n > 1),
        # R2/R3: a task published once reaches a consumer with redelivered=false at most once.
        "duplicate_without_redelivered": sorted(t for t, n in first_deliveries.items() if n > 1),
        "redelivered_executions": sum(1 for e in executions if e["r"]),
        "ran_after_completed": sorted({e["t"] for e in executions if e["done"]}),
    }


async def drain_queue(broker: Broker, queue: str, expected: int, limit: float) -> list[Any]:
    """Consume ``expected`` messages of ``queue`` (acked) and return their deliveries."""
    got: list[Any] = []
    with anyio.fail_after(limit):
        async with broker.consume(queue, prefetch=min(max(expected, 1), 500)) as consumer:
            if expected == 0:
                return got
            async for delivery in consumer:
                got.append(delivery)
                await delivery.ack()
                if len(got) >= expected:
                    break
    return got


async def wait_for(
    predicate: Any, limit: float, what: str, interval: float = 0.1, describe: Any = None
) -> float:
    """Poll ``await predicate()`` until true; returns the seconds it took."""
    started = time.monotonic()
    deadline = started + limit
    while not await predicate():
        if time.monotonic() > deadline:
            detail = await describe() if describe is not None else ""
            raise AssertionError(f"timed out after {limit}s waiting for {what}\n{detail}")
        await anyio.sleep(interval)
    return time.monotonic() - started


async def wait_progress(
    count: Any, target: int, what: str, *, stall: float, interval: float = 0.2, describe: Any = None
) -> float:
    """Poll ``await count()`` until it reaches ``target``; returns the seconds it took.

    A hang guard, not a speed bound: it fails only when the count has not
    moved for ``stall`` seconds, so a slow (loaded) machine takes longer but
    passes, and a stuck run fails ``stall`` seconds after its last progress.
    """
    started = last_change = time.monotonic()
    last = -1
    while (value := await count()) < target:
        now = time.monotonic()
        if value != last:
            last, last_change = value, now
        elif now - last_change > stall:
            detail = await describe() if describe is not None else ""
            raise AssertionError(
                f"no progress towards {what} for {stall:g}s (at {value}/{target})\n{detail}"
            )
        await anyio.sleep(interval)
    return time.monotonic() - started


async def delete_topology(broker: Broker, topo: Any, *extra_queues: str) -> None:
    with anyio.CancelScope(shield=True), anyio.move_on_after(20):
        for suffix in ("", ".retry", ".dlq"):
            await broker.delete_queue(topo.tasks_queue + suffix)
        for q in (topo.status_queue, *extra_queues):
            await broker.delete_queue(q)
        await broker.delete_exchange(topo.tasks_exchange)
        await broker.delete_exchange(topo.status_exchange)
        if topo.dead_letter_exchange:
            await broker.delete_exchange(topo.dead_letter_exchange)

"""Worker process of the reliability tests (``python -m _worker_app``, configured by environment).

The handler appends one record per execution to the *executions* ledger and
writes its effect through the task's relayna idempotency key into the
*effects* ledger. Both ledgers live in a separate Redis database that no test
faults. Payload ``mode``: ``ok`` (default; optional ``sleep``), ``fail``
(always raises) or ``crash`` (``os._exit(137)`` after the ledger write).

Environment::

    REL_UNIQUE         names of the topology and the Redis key prefixes
    REL_AMQP_URL       broker
    REL_STORE_URL      Redis for relayna's idempotency keys
    REL_LEDGER_URL     Redis (another db) for the ledgers
    REL_BACKEND        asyncio | trio
    REL_PREFETCH       default 8
    REL_MAX_RETRIES    retry policy (unset: none); REL_RETRY_DELAY_MS (default 200)
    REL_QUORUM         "1": quorum tasks queue; REL_DELIVERY_LIMIT: x-delivery-limit + DLX
    REL_BACKOFF_MAX    reconnect backoff cap in seconds (default: the consumer's default)

"ready <pid> <time>" is printed to stderr after consume-ok; "stats {json}" at exit.
SIGTERM drains and exits 0.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

import anyio

from relayna._supervise import Backoff
from relayna.consumer import Idempotency, LifecycleStatuses, RetryPolicy, TaskConsumer, TaskContext
from relayna.contracts import TaskEnvelope
from relayna.topology import SharedTasksSharedStatusTopology
from relayna.transport import Script, Store, open_store

# Effect through the idempotency key: applied once per key, duplicates counted.
_EFFECT_LUA = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', 900000) then
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  return 1
end
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
return 0
"""


EFFECT_SCRIPT = Script(name="tests.reliability.effect", lua=_EFFECT_LUA)


def make_topology(
    unique: str, *, quorum: bool = False, delivery_limit: int | None = None
) -> SharedTasksSharedStatusTopology:
    overrides: dict[str, Any] = {}
    if delivery_limit is not None:
        overrides["x-delivery-limit"] = delivery_limit
    return SharedTasksSharedStatusTopology(
        tasks_exchange=f"rel-tasks-{unique}",
        tasks_queue=f"rel-tasks-{unique}",
        tasks_routing_key="task",
        status_exchange=f"rel-status-{unique}",
        status_queue=f"rel-status-{unique}",
        status_use_streams=False,
        task_queue_type="quorum" if quorum else None,
        dead_letter_exchange=f"rel-dlx-{unique}" if delivery_limit is not None else None,
        task_queue_arguments_overrides=overrides,
    )


def ledger_prefix(unique: str) -> str:
    return f"rel:{unique}"


def idempotency_prefix(unique: str) -> str:
    return f"rel:{unique}:idem"


class _State:
    ledger: Store
    idempotency: Idempotency | None = None
    prefix: str = ""


_state = _State()


async def handler(task: TaskEnvelope, ctx: TaskContext) -> None:
    led = _state.ledger
    idem = _state.idempotency
    key = (idem.key_for(task) if idem is not None else None) or task.task_id
    # Must never be true: the consumer checks the key before calling the handler.
    already = await idem.is_completed(key) if idem is not None else False
    record = {
        "t": task.task_id,
        "pid": os.getpid(),
        "r": ctx.redelivered,
        "a": ctx.attempt,
        "done": already,
        "ts": time.time(),
    }
    await led.rpush(f"{_state.prefix}:executions", json.dumps(record))
    mode = task.payload.get("mode", "ok")
    if mode == "crash":
        os._exit(137)
    if mode == "fail":
        raise RuntimeError(f"{task.task_id} always fails")
    sleep = float(task.payload.get("sleep", 0))
    if sleep:
        await anyio.sleep(sleep)
    await led.run_script(
        EFFECT_SCRIPT,
        [
            f"{_state.prefix}:effect:{key}",
            f"{_state.prefix}:effects",
            f"{_state.prefix}:dup_effects",
        ],
        [str(os.getpid()), task.task_id],
    )


async def _main() -> int:
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    env = os.environ
    unique = env["REL_UNIQUE"]
    delivery_limit = int(env["REL_DELIVERY_LIMIT"]) if env.get("REL_DELIVERY_LIMIT") else None
    topology = make_topology(
        unique, quorum=env.get("REL_QUORUM") == "1", delivery_limit=delivery_limit
    )
    policy = (
        RetryPolicy(
            max_retries=int(env["REL_MAX_RETRIES"]),
            delay_ms=int(env.get("REL_RETRY_DELAY_MS", "200")),
        )
        if env.get("REL_MAX_RETRIES")
        else None
    )
    extra: dict[str, Any] = {}
    if env.get("REL_BACKOFF_MAX"):
        extra["backoff"] = Backoff(initial=0.2, maximum=float(env["REL_BACKOFF_MAX"]))
    async with AsyncExitStack() as stack:
        store = await stack.enter_async_context(open_store(env["REL_STORE_URL"]))
        _state.ledger = await stack.enter_async_context(open_store(env["REL_LEDGER_URL"]))
        _state.prefix = ledger_prefix(unique)
        _state.idempotency = Idempotency(
            store=store, ttl_seconds=900, prefix=idempotency_prefix(unique)
        )
        consumer = TaskConsumer(
            topology=topology,
            broker=env["REL_AMQP_URL"],
            handler=handler,
            prefetch=int(env.get("REL_PREFETCH", "8")),
            retry_policy=policy,
            statuses=LifecycleStatuses(enabled=True),
            idempotency=_state.idempotency,
            consumer_name=f"rel-worker-{os.getpid()}",
            **extra,
        )
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            async with anyio.create_task_group() as tg:
                await tg.start(consumer.run)
                print(f"ready {os.getpid()} {time.time()}", file=sys.stderr, flush=True)
                async for _ in signals:
                    break
                tg.cancel_scope.cancel()
        s = consumer.stats
        stats = {
            "received": s.received,
            "acked": s.acked,
            "retried": s.retried,
            "dead_lettered": s.dead_lettered,
            "duplicates_suppressed": s.duplicates_suppressed,
            "reconnects": s.reconnects,
            "effect_errors": s.effect_errors,
            "poison": dict(s.poison),
        }
        print(f"stats {json.dumps(stats)}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(_main, backend=os.environ.get("REL_BACKEND", "asyncio")))


# -- `relayna worker _worker_app:drain_handler --topology _worker_app:drain_topology` ---------

_sync_ledger: Any = None


def _ledger_sync() -> Any:
    global _sync_ledger
    if _sync_ledger is None:
        import redis  # the sync client: a tiny blocking RPUSH is fine for a test ledger

        _sync_ledger = redis.Redis.from_url(os.environ["REL_LEDGER_URL"])
    return _sync_ledger


def drain_topology() -> SharedTasksSharedStatusTopology:
    return make_topology(os.environ["REL_UNIQUE"])


async def drain_handler(task: TaskEnvelope, ctx: TaskContext) -> None:
    prefix = ledger_prefix(os.environ["REL_UNIQUE"])
    _ledger_sync().rpush(f"{prefix}:starts", json.dumps({"t": task.task_id, "ts": time.time()}))
    await anyio.sleep(float(task.payload.get("sleep", 1.0)))
    _ledger_sync().rpush(f"{prefix}:ends", json.dumps({"t": task.task_id, "ts": time.time()}))

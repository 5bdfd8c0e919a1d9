"""A workflow worker process for the fan-in kill test (``python -m _workflow_worker``).

It runs the stages ``b0``, ``b1``, ``b2`` (each hands off to ``join``, then
publishes the same hand-off again: a duplicate delivery) and the join (a
:class:`~relayna.topology.FanIn` of the three). The join handler's external
effect is one entry appended to ``{ledger}:effects`` (payloads and the pid)
at its end; its first caller anywhere stops before the effect, records its
pid in ``{ledger}:stuck`` and waits to be SIGKILLed by the test.

Environment: ``REL_UNIQUE``, ``REL_AMQP_URL``, ``REL_STORE_URL``, ``REL_BACKEND``.
It writes ``ready <pid> <time>`` to stderr once every stage consumes, and
exits 0 after SIGTERM (the consumers drain).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import Any

import anyio

from relayna.consumer import LeasePolicy
from relayna.contracts import WorkflowEnvelope
from relayna.topology import FanIn, SharedStatusWorkflowTopology, WorkflowStage
from relayna.transport import Store, open_broker, open_store
from relayna.workflow import (
    JoinedMessage,
    WorkflowContext,
    WorkflowStoreConfig,
    WorkflowWorkerRuntime,
)

BRANCHES = ("b0", "b1", "b2")
#: A dead worker's join guard expires after 2 s; live ones renew every 0.4 s.
LEASES = LeasePolicy(ttl=2.0, heartbeat_interval=0.4, conflict_delay=0.05)


def make_topology(unique: str) -> SharedStatusWorkflowTopology:
    def stage(name: str, *nexts: str, **kw: Any) -> WorkflowStage:
        return WorkflowStage(
            name,
            f"wfk-{unique}.{name}",
            (f"{name}.in",),
            f"{name}.in",
            allowed_next_stages=nexts,
            **kw,
        )

    return SharedStatusWorkflowTopology(
        workflow_exchange=f"wfk-{unique}",
        status_exchange=f"wfk-status-{unique}",
        status_queue=f"wfk-status-{unique}.q",
        status_use_streams=False,
        stages=(
            stage("split", *BRANCHES),
            *(stage(b, "join") for b in BRANCHES),
            stage("join", terminal=True, join=FanIn(expected=BRANCHES)),
        ),
    )


def state_config(unique: str) -> WorkflowStoreConfig:
    return WorkflowStoreConfig(prefix=f"wfk-{unique}")


def ledger(unique: str) -> str:
    return f"wfk-ledger-{unique}"


def handlers(store: Store, unique: str) -> dict[str, Any]:
    keys = ledger(unique)

    def branch(name: str) -> Any:
        async def handle(message: WorkflowEnvelope, ctx: WorkflowContext) -> None:
            out = await ctx.publish_to_stage("join", {"from": name, **message.payload})
            await ctx.client.publish_to_stage(out, "join")  # the same hand-off again

        return handle

    async def join(message: JoinedMessage, ctx: WorkflowContext) -> None:
        if await store.set(f"{keys}:stuck", str(os.getpid()), nx=True):
            await anyio.sleep_forever()  # the test SIGKILLs this process now
        effect = {"pid": os.getpid(), "branches": sorted(message.branches)}
        effect["payloads"] = sorted(json.dumps(p, sort_keys=True) for p in message.payloads)
        await store.rpush(f"{keys}:effects", json.dumps(effect))

    return {**{b: branch(b) for b in BRANCHES}, "join": join}


async def main() -> None:
    unique = os.environ["REL_UNIQUE"]
    topology = make_topology(unique)
    async with (
        open_broker(os.environ["REL_AMQP_URL"]) as broker,
        open_store(os.environ["REL_STORE_URL"]) as store,
        anyio.create_task_group() as tg,
    ):
        runtime = WorkflowWorkerRuntime(
            topology=topology,
            broker=broker,
            store=store,
            handlers=handlers(store, unique),
            consumer_name=f"wfk-{os.getpid()}",
            options={"lease_policy": LEASES, "state": state_config(unique), "prefetch": 4},
        )
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            await tg.start(runtime.run)
            print(f"ready {os.getpid()} {time.time()}", file=sys.stderr, flush=True)
            async for _ in signals:
                tg.cancel_scope.cancel()
                break


if __name__ == "__main__":
    anyio.run(main, backend=os.environ.get("REL_BACKEND", "asyncio"))

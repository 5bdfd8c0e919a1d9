"""Topologies and helpers shared by the workflow runtime tests (memory transports)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio

from relayna.consumer import LeasePolicy
from relayna.observability import MemoryObservationCollector
from relayna.rabbitmq import CancelStore
from relayna.topology import (
    ActionSchema,
    FanIn,
    PayloadSchema,
    SharedStatusWorkflowTopology,
    WorkflowStage,
)
from relayna.transport import Broker, Properties, Store
from relayna.workflow import WorkflowConsumer, WorkflowRuns, WorkflowStoreConfig

QUERY = PayloadSchema(name="query", required_fields=("q",), optional_fields=("lang",))
#: Fast guards for tests: a dead owner's guard expires after 1 s (renewed every
#: 0.2 s, so a live worker on a loaded machine keeps it).
FAST_LEASES = LeasePolicy(ttl=1.0, heartbeat_interval=0.2, conflict_delay=0.02)


def stage(unique: str, name: str, *nexts: str, **kw: Any) -> WorkflowStage:
    return WorkflowStage(
        name,
        f"wf-{unique}.{name}",
        (f"{name}.in",),
        f"{name}.in",
        allowed_next_stages=nexts,
        **kw,
    )


def workflow(unique: str, *stages: WorkflowStage) -> SharedStatusWorkflowTopology:
    return SharedStatusWorkflowTopology(
        workflow_exchange=f"wf-{unique}",
        status_exchange=f"wf-status-{unique}",
        status_queue=f"wf-status-{unique}.q",
        status_use_streams=False,
        stages=stages,
    )


def planner_docsearch(unique: str, **docsearch: Any) -> SharedStatusWorkflowTopology:
    """The original's two-stage hand-off: planner (search action) -> docsearch (terminal)."""
    return workflow(
        unique,
        stage(
            unique,
            "planner",
            "docsearch",
            produced_actions=(ActionSchema(action="search", payload=QUERY),),
        ),
        stage(
            unique,
            "docsearch",
            accepted_actions=(ActionSchema(action="search", payload=QUERY),),
            terminal=True,
            **docsearch,
        ),
    )


def fan_in_topology(unique: str, branches: int = 3) -> SharedStatusWorkflowTopology:
    names = [f"b{i}" for i in range(branches)]
    return workflow(
        unique,
        stage(unique, "split", *names),
        *(stage(unique, n, "join") for n in names),
        stage(unique, "join", terminal=True, join=FanIn(expected=tuple(names))),
    )


class Stack:
    """Consumers started in one task group, with one observation collector."""

    def __init__(self, topology: SharedStatusWorkflowTopology, broker: Broker, store: Store):
        self.topology = topology
        self.broker = broker
        self.store = store
        self.collector = MemoryObservationCollector()
        self.consumers: list[WorkflowConsumer] = []
        # one key prefix per topology (per test): the real Redis outlives a test
        self.state = WorkflowStoreConfig(prefix=f"state-{topology.workflow_exchange}")
        self.runs = WorkflowRuns(store, topology, broker=broker, config=self.state)
        self._tg: Any = None

    def consumer(self, stage: str, handler: Callable[..., Any], **kw: Any) -> WorkflowConsumer:
        options: dict[str, Any] = {
            "consumer_name": f"{stage}-{len(self.consumers)}",
            "observation_sink": self.collector,
            "lease_policy": FAST_LEASES,
            "state": self.state,
            "drain_timeout": 1.0,
            **kw,
        }
        consumer = WorkflowConsumer(
            topology=self.topology,
            broker=self.broker,
            stage=stage,
            handler=handler,
            store=self.store,
            **options,
        )
        self.consumers.append(consumer)
        return consumer

    def events(self, kind: str) -> list[Any]:
        return [e for e in self.collector.events if type(e).__name__ == kind]


@asynccontextmanager
async def started(stack: Stack) -> AsyncIterator[Stack]:
    async with AsyncExitStack() as exits:
        tg = await exits.enter_async_context(anyio.create_task_group())
        for consumer in stack.consumers:
            await tg.start(consumer.run)
        try:
            yield stack
        finally:
            tg.cancel_scope.cancel()


async def wait_for(predicate: Callable[[], Any], *, limit: float = 10.0) -> None:
    with anyio.fail_after(limit):
        while not await _call(predicate):  # noqa: ASYNC110 - polling a test condition
            await anyio.sleep(0.01)


async def _call(predicate: Callable[[], Any]) -> Any:
    result = predicate()
    if hasattr(result, "__await__"):
        return await result
    return result


async def drain(
    broker: Broker, queue: str, *, limit: float = 2.0
) -> list[tuple[bytes, Properties]]:
    """Every message now in ``queue`` (acked)."""
    out: list[tuple[bytes, Properties]] = []
    info = await broker.inspect_queue(queue)
    if info.message_count == 0:
        return out
    with anyio.fail_after(limit):
        async with broker.consume(queue, prefetch=info.message_count) as consumer:
            async for delivery in consumer:
                out.append((delivery.body, delivery.properties))
                await delivery.ack()
                if len(out) == info.message_count:
                    break
    return out


class Cancellable(Stack):
    """A stack whose consumers apply cancels (keys under a per-test prefix)."""

    def __init__(self, topology: SharedStatusWorkflowTopology, broker: Broker, store: Store):
        super().__init__(topology, broker, store)
        self.cancels = CancelStore(store, prefix=f"c-{topology.workflow_exchange}")
        self.runs = WorkflowRuns(
            store, topology, broker=broker, config=self.state, cancels=self.cancels
        )

    def consumer(self, stage: str, handler: Any, **kw: Any) -> WorkflowConsumer:
        kw.setdefault("cancels", self.cancels)
        kw.setdefault("deadline_tolerance", 0.0)
        return super().consumer(stage, handler, **kw)


@asynccontextmanager
async def running(*consumers: WorkflowConsumer) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        for consumer in consumers:
            await tg.start(consumer.run)
        yield
        tg.cancel_scope.cancel()

"""``WorkflowWorkerRuntime``: several stages' consumers in one task group."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import attrs
from anyio.abc import TaskStatus

from relayna.consumer import HandlerT
from relayna.errors import ConfigurationError
from relayna.rabbitmq import StatusTopology
from relayna.transport import Broker, Store

from ._consumer import WorkflowConsumer

__all__ = ["WorkflowWorkerRuntime"]


@attrs.define(eq=False, kw_only=True)
class WorkflowWorkerRuntime:
    """Run one :class:`WorkflowConsumer` per stage in ``handlers``.

    ::

        runtime = WorkflowWorkerRuntime(
            topology=topology, broker=url, store=store,
            handlers={"planner": plan, "writer": write},
            options={"observation_sink": sink},
        )
        async with anyio.create_task_group() as tg:
            await tg.start(runtime.run)

    Args:
        handlers: stage name -> handler.
        options: keyword arguments for every consumer (``retry_policy``,
            ``observation_sink``, ``dlq_recorder``, ``drain_timeout``,
            ``lease_policy``, ``state``, ``cancels`` ...).
        stage_options: per stage, keyword arguments that override ``options``.
        consumer_name: consumers are named ``{consumer_name}.{stage}``.
    """

    topology: StatusTopology
    broker: Broker | str
    handlers: Mapping[str, HandlerT]
    store: Store | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    stage_options: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    consumer_name: str = "relayna-workflow"
    consumers: list[WorkflowConsumer] = attrs.field(init=False, factory=list)

    def __attrs_post_init__(self) -> None:
        if not self.handlers:
            raise ConfigurationError("a workflow worker runtime needs at least one stage handler")
        unknown = set(self.stage_options) - set(self.handlers)
        if unknown:
            raise ConfigurationError(
                f"stage_options for stages without a handler: {sorted(unknown)}"
            )
        for stage, handler in self.handlers.items():
            kwargs: dict[str, Any] = {
                "consumer_name": f"{self.consumer_name}.{stage}",
                **self.options,
                **self.stage_options.get(stage, {}),
            }
            self.consumers.append(
                WorkflowConsumer(
                    topology=self.topology,
                    broker=self.broker,
                    stage=stage,
                    handler=handler,
                    store=self.store,
                    **kwargs,
                )
            )

    def consumer(self, stage: str) -> WorkflowConsumer:
        for consumer in self.consumers:
            if consumer.stage == stage:
                return consumer
        raise KeyError(stage)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Start every stage's consumer (each after its consume-ok), then report ready.

        Cancellation drains every stage (see :meth:`WorkflowConsumer.run`); a
        stage that fails to start fails the whole runtime.
        """
        async with anyio.create_task_group() as tg:
            for consumer in self.consumers:
                await tg.start(consumer.run)
            task_status.started()

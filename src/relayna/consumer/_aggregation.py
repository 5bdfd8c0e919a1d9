"""``AggregationConsumer``: consume the aggregation shard queue(s).

Messages are :class:`~relayna.contracts.StatusEvent` s published with
``publish_aggregation_status`` (routing key ``agg.N``). Retry and DLQ
behave as for tasks; retry/DLQ statuses keep the event's ``meta`` (so the
``parent_task_id`` link survives). No lifecycle processing/completed statuses
and no manual retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from relayna.errors import ConfigurationError
from relayna.observability import (
    AggregationHandlerFailed,
    AggregationMessageAcked,
    AggregationMessageReceived,
)
from relayna.rabbitmq import AggregationTopology, RelaynaClient
from relayna.transport import Delivery

from ._base import ConsumerBase, HandlerT
from ._context import ManualRetryRequest
from ._decide import Ack, Failed, FailureAction, Poison, Succeeded
from ._inbound import parse_status
from ._settle import MessageInfo, Settler

__all__ = ["AggregationConsumer"]


@attrs.define(eq=False, kw_only=True)
class AggregationConsumer(ConsumerBase):
    """Consume ``shards`` of a sharded-aggregation topology.

    Args:
        handler: ``async def handler(event, ctx)`` with a :class:`StatusEvent`.
        shards: the shard numbers this consumer owns (queue and ``agg.N`` bindings
            are declared by :meth:`run`).
        queue: overrides the computed aggregation queue name.
    """

    handler: HandlerT
    shards: Sequence[int]
    queue: str | None = None
    consumer_name: str = "relayna-aggregation-consumer"
    failure_action: FailureAction = FailureAction.REJECT
    _aggregation = True
    _queue_name: str = attrs.field(init=False, default="")  # resolved once (hot path)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if not isinstance(self.topology, AggregationTopology):
            raise ConfigurationError(f"{type(self.topology).__name__} has no sharded aggregation")
        self.shards = tuple(self.shards)
        # validates the shards now
        self._queue_name = self.topology.aggregation_queue_name(self.shards, queue_name=self.queue)

    @property
    def queue_name(self) -> str:
        return self._queue_name

    async def _declare(self, client: RelaynaClient) -> None:
        assert isinstance(self.topology, AggregationTopology)
        await self.topology.aggregation_queue_plan(self.shards, queue_name=self.queue).apply(
            client.broker
        )
        await self._declare_dlq(client)

    async def _process(self, client: RelaynaClient, settler: Settler, delivery: Delivery) -> None:
        parsed = parse_status(
            delivery.body, delivery.properties, limits=self.limits, aliases=self.aliases
        )
        if isinstance(parsed, Poison):
            await self._poison(settler, delivery, parsed)
            return
        event = parsed.event
        with self._delivery_span(
            "relayna.consumer.aggregation_message",
            delivery,
            parsed.headers,
            event.task_id,
            event.correlation_id or event.task_id,
            parsed.attempt,
        ):
            await self._process_event(client, settler, delivery, parsed)

    async def _process_event(
        self, client: RelaynaClient, settler: Settler, delivery: Delivery, parsed: Any
    ) -> None:
        event = parsed.event
        parent = event.meta.get("parent_task_id")
        parent_id = parent if isinstance(parent, str) else None
        correlation_id = event.correlation_id or event.task_id
        info = MessageInfo(
            task_id=event.task_id,
            correlation_id=correlation_id,
            attempt=parsed.attempt,
            headers=parsed.headers,
            meta=dict(event.meta),
            parent_task_id=parent_id,
        )
        common: dict[str, Any] = {
            "consumer_name": self.consumer_name,
            "queue_name": self.queue_name,
            "task_id": event.task_id,
            "correlation_id": correlation_id,
            "retry_attempt": parsed.attempt,
            "parent_task_id": parent_id,
        }
        self._emit(AggregationMessageReceived(redelivered=delivery.redelivered, **common))
        ctx = self._context(
            client,
            delivery,
            task=None,
            task_id=event.task_id,
            correlation_id=correlation_id,
            attempt=parsed.attempt,
            headers=parsed.headers,
            allow_manual_retry=False,
        )
        outcome = await self._call_handler(self.handler, event, ctx)
        if isinstance(outcome, ManualRetryRequest):  # pragma: no cover - refused by the context
            outcome = Succeeded()
        if isinstance(outcome, Failed):
            self._emit(
                AggregationHandlerFailed(
                    exception_type=outcome.exception_type,
                    exception_message=outcome.exception_message,
                    **common,
                )
            )
        decision = self._decide(outcome, parsed.attempt, event.task_id, self.failure_action)
        if isinstance(decision, Ack):
            await delivery.ack()
            self.stats.acked += 1
            self._emit(AggregationMessageAcked(**common))
            return
        await settler.settle(
            delivery, decision, info, failure=outcome if isinstance(outcome, Failed) else None
        )

"""A public conformance checker for :class:`relayna.transport.Broker` adapters.

Each ``check_*`` coroutine takes an already-open broker, a name prefix unique
to the run (every queue and exchange a check declares starts with it) and a
:class:`BrokerCapabilities`, and raises :class:`AssertionError` when the
adapter breaks the contract. Checks delete what they declare, even when they
fail. They assert only what RabbitMQ 3.10+ really guarantees, so the same
suite runs against the native AMQP adapter, aiormq and the in-memory broker::

    async with open_broker(url) as broker:
        for check in BROKER_CHECKS:
            if check.applies(caps):
                await check.run(broker, f"{prefix}.{check.name}", caps)

or simply ``await check_broker(broker, prefix, caps)``.

Deliveries are read by a task that pumps the consumer into a memory object
stream, so waiting "for nothing to arrive" never cancels the adapter's
iterator.
"""

from __future__ import annotations

import anyio

from relayna.testing._broker_checks_core import (
    check_concurrent_confirms,
    check_declare,
    check_errors,
    check_exit_requeues,
    check_fanout_direct_routing,
    check_headers_routing,
    check_large_bodies,
    check_prefetch,
    check_requeue,
    check_round_trip,
    check_topic_routing,
    check_unroutable,
)
from relayna.testing._broker_checks_offsets import check_stream_offset_edges
from relayna.testing._broker_checks_queues import (
    check_dead_letter,
    check_delete_cancels_consumer,
    check_inspect_and_delete,
    check_max_length,
    check_message_expiration,
    check_priority,
    check_quorum_delivery_limit,
    check_single_active_consumer,
    check_stream_offsets,
    check_stream_timestamp,
    check_ttl_retry,
)
from relayna.testing._broker_support import BrokerCapabilities, BrokerCheck
from relayna.testing._broker_support import CheckFunction as CheckFunction
from relayna.transport import Broker

__all__ = ["BROKER_CHECKS", "BrokerCapabilities", "BrokerCheck", "check_broker"]

BROKER_CHECKS: tuple[BrokerCheck, ...] = (
    BrokerCheck("declare", check_declare),
    BrokerCheck("errors", check_errors),
    BrokerCheck("unroutable", check_unroutable),
    BrokerCheck("round_trip", check_round_trip),
    BrokerCheck("large_bodies", check_large_bodies),
    BrokerCheck("concurrent_confirms", check_concurrent_confirms),
    BrokerCheck("prefetch", check_prefetch),
    BrokerCheck("requeue", check_requeue),
    BrokerCheck("exit_requeues", check_exit_requeues),
    BrokerCheck("dead_letter", check_dead_letter),
    BrokerCheck("ttl_retry", check_ttl_retry),
    BrokerCheck("message_expiration", check_message_expiration),
    BrokerCheck("priority", check_priority, frozenset({"priorities"})),
    BrokerCheck("max_length", check_max_length),
    BrokerCheck("single_active_consumer", check_single_active_consumer),
    BrokerCheck(
        "quorum_delivery_limit",
        check_quorum_delivery_limit,
        frozenset({"quorum", "delivery_limit"}),
    ),
    BrokerCheck("stream_offsets", check_stream_offsets, frozenset({"streams"})),
    BrokerCheck("stream_timestamp", check_stream_timestamp, frozenset({"streams"})),
    BrokerCheck("stream_offset_edges", check_stream_offset_edges, frozenset({"streams"})),
    BrokerCheck("topic_routing", check_topic_routing),
    BrokerCheck("fanout_direct_routing", check_fanout_direct_routing),
    BrokerCheck("headers_routing", check_headers_routing),
    BrokerCheck("inspect_and_delete", check_inspect_and_delete),
    BrokerCheck("delete_cancels_consumer", check_delete_cancels_consumer),
)
"""Every check, in a sensible order. Run each with a fresh prefix."""


async def check_broker(broker: Broker, prefix: str, caps: BrokerCapabilities | None = None) -> None:
    """Run every applicable check in :data:`BROKER_CHECKS` (each under ``prefix.name``)."""
    caps = caps or BrokerCapabilities()
    for check in BROKER_CHECKS:
        if check.applies(caps):
            with anyio.fail_after(90):
                await check.run(broker, f"{prefix}.{check.name}", caps)

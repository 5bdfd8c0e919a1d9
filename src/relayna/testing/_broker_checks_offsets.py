"""Broker conformance: stream offset edge cases every adapter must agree on.

The contract is :func:`relayna.transport.check_stream_offset`: invalid offsets
raise :class:`~relayna.errors.ConfigurationError` before anything reaches the
broker, and the valid extremes behave as RabbitMQ 3.10+ does (a numeric
offset past the end waits for that offset; the epoch reads from the first
message; a future timestamp starts at the next message published).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from relayna.errors import ConfigurationError
from relayna.testing._broker_support import BrokerCapabilities, _consuming, _expect, _resources
from relayna.transport import MAX_STREAM_OFFSET, Broker

__all__ = ["INVALID_STREAM_OFFSETS", "check_stream_offset_edges"]

#: Offsets every adapter refuses with ConfigurationError.
INVALID_STREAM_OFFSETS: tuple[object, ...] = (
    -1,
    -(2**63),
    MAX_STREAM_OFFSET + 1,
    True,
    False,
    "",
    "First",
    "bogus",
    1.5,
    datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(1, 1, 1),  # naive: taken as UTC, before the epoch
    datetime(1970, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),  # 23:30 the day before
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),  # out of range in UTC
)


async def _refused(broker: Broker, queue: str, offset: Any) -> None:
    try:
        async with broker.consume(queue, prefetch=1, offset=offset):
            pass
    except ConfigurationError:
        return
    raise AssertionError(f"stream offset {offset!r} was accepted")


async def check_stream_offset_edges(broker: Broker, prefix: str, caps: BrokerCapabilities) -> None:
    """Invalid offsets are refused alike; extreme valid ones behave like RabbitMQ."""
    async with _resources(broker, prefix) as res:
        queue = await res.queue("s", **{"x-queue-type": "stream"})
        for i in range(3):
            await broker.publish("", queue, f"m{i}".encode())
        for offset in INVALID_STREAM_OFFSETS:
            await _refused(broker, queue, offset)
        async with _consuming(broker, queue, prefetch=10, offset=datetime(1970, 1, 1)) as inbox:
            got = await inbox.take(3)
            _expect([d.body for d in got] == [b"m0", b"m1", b"m2"], "the epoch reads from first")
        async with (
            _consuming(broker, queue, prefetch=10, offset=MAX_STREAM_OFFSET) as far,
            _consuming(broker, queue, prefetch=10, offset=10**6) as past_end,
            _consuming(
                broker, queue, prefetch=10, offset=datetime(9999, 1, 1, tzinfo=UTC)
            ) as future,
        ):
            await future.quiet(0.3)
            await broker.publish("", queue, b"later")
            delivery = await future.next()
            _expect(delivery.body == b"later", f"a future timestamp reads {delivery.body!r}")
            await delivery.ack()
            # A numeric offset past the end waits for that offset: "later"
            # (offset 3) is not delivered to either.
            await past_end.quiet(0.3)
            await far.quiet(0.05)

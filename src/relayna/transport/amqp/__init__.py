"""Native AMQP 0-9-1 client on anyio (runs on asyncio and trio).

A sans-IO protocol core (:mod:`._core`, :mod:`._channel_core`, :mod:`._frames`)
wrapped by a short anyio shell. See ``docs/amqp.md``.

::

    async with open_amqp_broker("amqp://guest:guest@localhost/") as broker:
        await broker.publish("", "tasks", b"hello")

    async with open_connection("amqp://localhost/%2F?heartbeat=30") as conn:
        async with conn.channel() as ch:
            ...
"""

from relayna.transport.amqp._broker_impl import AMQPBroker, open_amqp_broker
from relayna.transport.amqp._channel import AMQPConsumer, AMQPDelivery, Channel
from relayna.transport.amqp._connection import AMQPConnection, open_connection
from relayna.transport.amqp._url import AMQPParams, parse_amqp_url

__all__ = [
    "AMQPBroker",
    "AMQPConnection",
    "AMQPConsumer",
    "AMQPDelivery",
    "AMQPParams",
    "Channel",
    "open_amqp_broker",
    "open_connection",
    "parse_amqp_url",
]

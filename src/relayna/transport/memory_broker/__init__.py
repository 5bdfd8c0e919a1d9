"""The in-memory broker (``memory://``): a product feature, not a test fake.

``relayna dev`` and users' tests run on it. It implements the
:class:`~relayna.transport.Broker` contract with AMQP 0-9-1 semantics as
RabbitMQ has them (exchanges of all four types, TTL and dead-lettering,
priorities, length limits, quorum delivery limits, streams with offsets).
Every ``memory://`` URL opens a new private broker; components of one process
share it by passing the open :class:`MemoryBroker` object. See
``docs/memory-broker.md`` for what it cannot share with RabbitMQ.
"""

from relayna.transport.memory_broker._broker import MemoryBroker, open_memory_broker
from relayna.transport.memory_broker._consumer import MemoryConsumer, MemoryDelivery

__all__ = ["MemoryBroker", "MemoryConsumer", "MemoryDelivery", "open_memory_broker"]

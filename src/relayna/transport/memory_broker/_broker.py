"""The in-memory broker: AMQP 0-9-1 semantics as RabbitMQ has them, in one process.

Theory of operation: all broker state (exchanges, queues, consumers) is plain
data changed by synchronous methods; an operation never awaits in the middle,
so it is atomic with respect to other tasks. Each public coroutine checks for
cancellation first, does its work, then yields with a cancel-shielded
checkpoint (trio's convention for operations that completed). The only task
is the TTL timer (:mod:`._timers`), owned by the task group of
:func:`open_memory_broker`: it sleeps (on anyio's clock, so a mock clock works)
until the earliest message deadline and expires messages even when no
consumer is present. Routing is :mod:`._routing`; attaching and detaching
consumers, :mod:`._consume`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from typing import Any

import anyio
import anyio.lowlevel

from relayna._urls import redact_url
from relayna.errors import (
    AccessRefused,
    ConnectionLost,
    NotFound,
    PreconditionFailed,
    PublishNacked,
    UnroutableError,
    unwrap_groups,
)
from relayna.transport._broker import (
    BindingSpec,
    Consumer,
    ExchangeSpec,
    PeekedMessage,
    Properties,
    QueueInfo,
    QueueSpec,
    StreamOffset,
    check_stream_offset,
)
from relayna.transport.memory_broker._consume import AnyQueue, ConsumeContext, attach_consumer
from relayna.transport.memory_broker._consumer import MemoryConsumer
from relayna.transport.memory_broker._exchanges import (
    PREDECLARED,
    Exchange,
    check_exchange_equivalent,
    check_queue_equivalent,
)
from relayna.transport.memory_broker._message import (
    DeathReason,
    Message,
    copy_properties,
    is_cycle,
    parse_expiration,
    with_death,
)
from relayna.transport.memory_broker._queues import ClassicQueue, QueueBase, make_queue
from relayna.transport.memory_broker._routing import route
from relayna.transport.memory_broker._timers import ExpiryTimer

__all__ = ["MemoryBroker", "open_memory_broker"]


def _refused(text: str) -> AccessRefused:
    return AccessRefused(text, reply_code=403, reply_text=f"ACCESS_REFUSED - {text}")


def _not_found(text: str) -> NotFound:
    return NotFound(text, reply_code=404, reply_text=f"NOT_FOUND - {text}")


class MemoryBroker:
    """A private in-process broker implementing :class:`~relayna.transport.Broker`.

    Open it with :func:`open_memory_broker` (or ``open_broker("memory://")``).
    Every ``memory://`` URL opens a *new*, empty broker: components of one
    process share a broker by being handed the same open object.

    Besides the protocol it offers synchronous introspection helpers for
    tests: :meth:`queue_names`, :meth:`exchange_names`, :meth:`queue_depth`,
    :meth:`unacked_count`, :meth:`consumer_count`, :meth:`queue_bodies`,
    :meth:`bindings`.
    """

    def __init__(self, url: str = "memory://") -> None:
        self._url = redact_url(url)
        self._exchanges: dict[str, Exchange] = {spec.name: Exchange(spec) for spec in PREDECLARED}
        self._queues: dict[str, AnyQueue] = {}
        self._seq = 0
        self._tags = 0
        self._expiry = ExpiryTimer(self.next_seq)
        self._closed = False

    @property
    def url(self) -> str:
        return self._url

    @property
    def closed(self) -> bool:
        return self._closed

    # -- QueueCore ------------------------------------------------------------

    def now(self) -> float:
        return anyio.current_time()

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def schedule_expiry(self, deadline: float, queue: ClassicQueue) -> None:
        self._expiry.schedule(deadline, queue)

    def dead_letter(self, queue: ClassicQueue, message: Message, reason: DeathReason) -> None:
        if queue.dlx is None or self._closed:
            return
        if queue.dlx and queue.dlx not in self._exchanges:
            return  # RabbitMQ drops dead-letters to a missing exchange silently
        properties = with_death(message, queue=queue.name, reason=reason)
        keys = [queue.dlrk] if queue.dlrk is not None else list(message.routing_keys)
        dead = Message(message.body, properties, queue.dlx, keys)
        for target in route(self._exchanges, self._queues, queue.dlx, keys, properties.headers):
            if reason != "rejected" and is_cycle(target.name, properties.headers):
                continue
            target.enqueue(dead.copy())

    def queue_unused(self, queue: QueueBase) -> None:
        name = queue.name
        if self._queues.get(name) is queue:
            self._remove_queue(name)

    # -- lifecycle ------------------------------------------------------------

    def _close(self) -> None:
        self._closed = True
        for queue in self._queues.values():
            queue.close_consumers("closed")

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionLost("the in-memory broker is closed", url=self._url)

    # -- declarations ---------------------------------------------------------

    async def declare_exchange(self, spec: ExchangeSpec) -> None:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        if spec.name == "":
            raise _refused("operation not permitted on the default exchange")
        existing = self._exchanges.get(spec.name)
        if existing is not None:
            check_exchange_equivalent(existing.spec, spec)
        elif spec.name.startswith("amq."):
            raise _refused(f"exchange name {spec.name!r} contains reserved prefix 'amq.*'")
        else:
            self._exchanges[spec.name] = Exchange(spec)
        await anyio.lowlevel.cancel_shielded_checkpoint()

    async def declare_queue(self, spec: QueueSpec) -> QueueInfo:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        if spec.name == "":
            spec = QueueSpec(
                f"amq.gen-{uuid.uuid4().hex}",
                durable=spec.durable,
                exclusive=spec.exclusive,
                auto_delete=spec.auto_delete,
                arguments=spec.arguments,
            )
        existing = self._queues.get(spec.name)
        if existing is not None:
            check_queue_equivalent(existing.spec, spec)
            queue = existing
        elif spec.name.startswith("amq.") and not spec.name.startswith("amq.gen-"):
            raise _refused(f"queue name {spec.name!r} contains reserved prefix 'amq.*'")
        else:
            queue = self._queues[spec.name] = make_queue(self, spec)
        info = QueueInfo(queue.name, queue.depth, len(queue.consumers))
        await anyio.lowlevel.cancel_shielded_checkpoint()
        return info

    async def bind_queue(self, spec: BindingSpec) -> None:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        if spec.exchange == "":
            raise _refused("operation not permitted on the default exchange")
        exchange = self._exchanges.get(spec.exchange)
        if exchange is None:
            raise _not_found(f"no exchange {spec.exchange!r} in vhost '/'")
        if spec.queue not in self._queues:
            raise _not_found(f"no queue {spec.queue!r} in vhost '/'")
        exchange.bind(spec)
        await anyio.lowlevel.cancel_shielded_checkpoint()

    async def inspect_queue(self, name: str) -> QueueInfo:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        queue = self._get_queue(name)
        info = QueueInfo(queue.name, queue.depth, len(queue.consumers))
        await anyio.lowlevel.cancel_shielded_checkpoint()
        return info

    async def peek(self, queue: str, *, limit: int) -> list[PeekedMessage]:
        """Up to ``limit`` ready messages of ``queue``, head first, left in place
        (marked ``redelivered``, as RabbitMQ's get + requeue would).

        Raises:
            NotFound: no such queue. PreconditionFailed: a stream queue
            (RabbitMQ refuses ``basic.get`` on streams too).
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        found = self._get_queue(queue)
        if not isinstance(found, ClassicQueue):
            raise PreconditionFailed(
                f"queue {queue!r} is a stream: basic.get is not supported",
                reply_code=406,
                reply_text="PRECONDITION_FAILED - stream queue",
            )
        out = []
        for message in found.ready_messages(limit):
            out.append(
                PeekedMessage(
                    body=message.body,
                    properties=copy_properties(message.properties),
                    redelivered=message.redelivered,
                    exchange=message.exchange,
                    routing_key=message.routing_key,
                )
            )
            message.redelivered = True
        await anyio.lowlevel.cancel_shielded_checkpoint()
        return out

    async def delete_queue(self, name: str) -> int:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        count = self._remove_queue(name)
        await anyio.lowlevel.cancel_shielded_checkpoint()
        return count

    async def delete_exchange(self, name: str) -> None:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        if name == "":
            raise _refused("operation not permitted on the default exchange")
        self._exchanges.pop(name, None)
        await anyio.lowlevel.cancel_shielded_checkpoint()

    async def purge_queue(self, name: str) -> int:
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        count = self._get_queue(name).purge()
        await anyio.lowlevel.cancel_shielded_checkpoint()
        return count

    def _get_queue(self, name: str) -> AnyQueue:
        queue = self._queues.get(name)
        if queue is None:
            raise _not_found(f"no queue {name!r} in vhost '/'")
        return queue

    def _remove_queue(self, name: str) -> int:
        queue = self._queues.pop(name, None)
        if queue is None:
            return 0
        for exchange in self._exchanges.values():
            exchange.unbind_queue(name)
        self._expiry.forget(queue)
        return queue.delete()

    # -- publishing -----------------------------------------------------------

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Properties | None = None,
        *,
        mandatory: bool = True,
    ) -> None:
        """Route a copy of the message to every matching queue (confirmed at once).

        Raises:
            NotFound: the exchange does not exist.
            AccessRefused: the exchange is internal.
            UnroutableError: ``mandatory`` and no queue matched.
            PublishNacked: a queue with ``x-overflow=reject-publish`` is full.
            PreconditionFailed: an invalid ``expiration``.
            ConnectionLost: the broker is closed.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        props = copy_properties(properties or Properties())
        parse_expiration(props.expiration)
        if exchange:
            record = self._exchanges.get(exchange)
            if record is None:
                raise _not_found(f"no exchange {exchange!r} in vhost '/'")
            if record.spec.internal:
                raise _refused(f"cannot publish to internal exchange {exchange!r}")
        queues = route(self._exchanges, self._queues, exchange, [routing_key], props.headers)
        if not queues and mandatory:
            raise UnroutableError(
                f"message to exchange {exchange!r} with routing key {routing_key!r} is unroutable",
                url=self._url,
                exchange=exchange,
                routing_key=routing_key,
                reply_code=312,
                reply_text="NO_ROUTE",
            )
        message = Message(bytes(body), props, exchange, [routing_key])
        # ``props`` is already this publish's private copy: the first queue takes
        # the message itself, every further queue its own copy.
        copies = [message, *(message.copy() for _ in queues[1:])] if queues else []
        refused = [q.name for q, m in zip(queues, copies, strict=True) if not q.enqueue(m)]
        if refused:
            raise PublishNacked(
                f"queue(s) {', '.join(refused)} refused the message (x-overflow)", url=self._url
            )
        await anyio.lowlevel.cancel_shielded_checkpoint()

    # -- consuming ------------------------------------------------------------

    def consume(
        self,
        queue: str,
        *,
        prefetch: int = 1,
        offset: StreamOffset | None = None,
        arguments: Mapping[str, Any] | None = None,
        consumer_tag: str | None = None,
    ) -> AbstractAsyncContextManager[Consumer]:
        """Consume ``queue``; see :meth:`relayna.transport.Broker.consume`.

        ``prefetch=0`` (AMQP "unlimited") is capped at 65535 so the delivery
        buffer stays bounded. Leaving the block requeues unsettled deliveries.
        """
        if offset is None and arguments and "x-stream-offset" in arguments:
            offset = arguments["x-stream-offset"]
        if offset is not None:
            offset = check_stream_offset(offset)  # the adapters' common contract
        return ConsumeContext(partial(self._start_consumer, queue, prefetch, offset, consumer_tag))

    def _start_consumer(
        self, name: str, prefetch: int, offset: StreamOffset | None, tag: str | None
    ) -> tuple[AnyQueue, MemoryConsumer]:
        self._check_open()
        queue = self._get_queue(name)
        consumer = attach_consumer(
            queue,
            name,
            prefetch=prefetch,
            offset=offset,
            tag=tag,
            new_tag=self._new_tag,
            url=self._url,
        )
        return queue, consumer

    def _new_tag(self) -> str:
        self._tags += 1
        return f"amq.ctag-memory-{self._tags}"

    # -- introspection for tests ---------------------------------------------

    def queue_names(self) -> list[str]:
        return sorted(self._queues)

    def exchange_names(self) -> list[str]:
        return sorted(name for name in self._exchanges if not name.startswith("amq."))

    def queue_depth(self, name: str) -> int:
        """Ready messages (stream: log length). Raises :class:`NotFound`."""
        return self._get_queue(name).depth

    def unacked_count(self, name: str) -> int:
        return self._get_queue(name).unacked

    def consumer_count(self, name: str) -> int:
        return len(self._get_queue(name).consumers)

    def queue_bodies(self, name: str) -> list[bytes]:
        """Bodies of the ready messages in delivery order (stream: the whole log)."""
        return self._get_queue(name).bodies()

    def bindings(self, exchange: str | None = None) -> list[BindingSpec]:
        return [
            binding
            for name, record in sorted(self._exchanges.items())
            if exchange is None or name == exchange
            for binding in record.bindings.values()
        ]


@asynccontextmanager
async def open_memory_broker(url: str = "memory://") -> AsyncIterator[MemoryBroker]:
    """Open a new, private in-memory broker.

    Every call (and every ``memory://`` URL) creates an independent broker;
    components of one process share it by passing the open object around.

    Resource handling: the TTL timer task lives in a task group owned by this
    context manager. Leaving the block closes the broker: consumers' iteration
    ends, later calls raise :class:`~relayna.errors.ConnectionLost`.
    """
    broker = MemoryBroker(url)
    with unwrap_groups():
        async with anyio.create_task_group() as tg:
            await tg.start(broker._expiry.run)
            try:
                yield broker
            finally:
                broker._close()
                tg.cancel_scope.cancel()

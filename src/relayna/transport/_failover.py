"""A broker that follows a RabbitMQ cluster: it reconnects after a lost connection.

A process that serves routes (cancel, DLQ replay, workflow cancel, MCP tools)
and publishes tasks holds *one* broker connection. With a multi-node URL the
first node that answers is used; when that node dies the connection is
gone, and a plain broker object stays dead until the process restarts.
:class:`FailoverBroker` is the runtime's broker instead: the same
:class:`~relayna.transport.Broker` interface over a connection it re-opens
from the URL (the next node that answers, the node ordering rules of
:mod:`relayna.transport.amqp`) once the current one is lost.

Theory of operation:

* ``run`` (started with ``tg.start``, in the task group of its owner) opens a
  connection through ``opener`` (the same opener the status hub's
  ``reconnect=`` uses), re-declares the exchanges declared through it, then
  waits until the connection is lost: the adapter says so
  (``wait_closed``, the native client) or an operation failed with
  :class:`~relayna.errors.ConnectionLost`. Then it closes that connection and
  opens the next, with backoff, until cancelled. Only the first connection's
  failure is fatal (startup fails as a whole).
* An operation takes the current connection. While there is none it waits up
  to ``unavailable_timeout`` and then raises
  :class:`~relayna.errors.BrokerUnavailable` (nothing was sent; routes map it
  to 503 like every other broker error).
* An operation that fails with ``ConnectionLost`` marks that connection lost
  and then, by its kind (:func:`after_connection_lost`, a pure function):
  idempotent operations (declarations, passive inspect, peek, deleting an
  exchange) run once more on the next connection; a publish raises
  :class:`~relayna.errors.PublishOutcomeUnknown` (the broker may have the
  message: republishing it silently could run a task twice); deleting or
  purging a queue raises the ``ConnectionLost`` (its count is unknown).
  :func:`publish_idempotent` is the caller's way to say that a second copy is
  harmless (a cancel's control message): it publishes once more instead.
* A consumer opened through it consumes on the current connection; when that
  connection dies the consumer's iteration fails as before and the next
  ``consume`` gets the next connection.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, TypeVar

import anyio
import anyio.abc

from relayna._supervise import Backoff, backoff_delay
from relayna.errors import (
    BrokerError,
    BrokerUnavailable,
    ConfigurationError,
    ConnectionLost,
    PublishOutcomeUnknown,
)
from relayna.transport._broker import (
    BindingSpec,
    Broker,
    Consumer,
    ExchangeSpec,
    Properties,
    QueueInfo,
    QueueSpec,
    StreamOffset,
)

__all__ = [
    "RECONNECT_BACKOFF",
    "FailoverBroker",
    "Opener",
    "OperationKind",
    "after_connection_lost",
]

log = logging.getLogger("relayna.transport.failover")

#: Opens one broker connection (with a multi-node URL: the next node that answers).
Opener = Callable[[], AbstractAsyncContextManager[Broker]]
#: ``idempotent``: running it twice is running it once; ``publish``: a second run
#: may deliver a second copy; ``counted``: its answer (a count) would be wrong.
OperationKind = Literal["idempotent", "publish", "counted"]

_T = TypeVar("_T")
#: Delays between connection attempts after a loss (each tries every node).
RECONNECT_BACKOFF = Backoff(initial=0.2, maximum=5.0)


def after_connection_lost(kind: OperationKind) -> Literal["again", "unknown", "raise"]:
    """What an operation whose connection died under it does next.

    ``again``: run it once more on the next connection (the caller sees one
    result); ``unknown``: raise :class:`~relayna.errors.PublishOutcomeUnknown`;
    ``raise``: raise the ``ConnectionLost`` as it is.
    """
    if kind == "idempotent":
        return "again"
    if kind == "publish":
        return "unknown"
    return "raise"


class FailoverBroker:
    """A :class:`~relayna.transport.Broker` that re-opens its connection (see the module docs).

    Args:
        opener: opens one connection (:func:`broker_opener`).
        url: the (redacted) URL it reports.
        unavailable_timeout: seconds an operation waits for a connection
            while none is open, then :class:`~relayna.errors.BrokerUnavailable`.
        backoff: delays between failed connection attempts (each attempt
            already tries every node of the URL).
    """

    def __init__(
        self,
        opener: Opener,
        url: str,
        *,
        unavailable_timeout: float = 5.0,
        backoff: Backoff = RECONNECT_BACKOFF,
    ) -> None:
        if not unavailable_timeout > 0:
            raise ConfigurationError("unavailable_timeout must be > 0")
        self._opener = opener
        self._url = url
        self.unavailable_timeout = unavailable_timeout
        self._backoff = backoff
        self._current: Broker | None = None
        self._lost = anyio.Event()  # the current connection's
        self._ready = anyio.Event()  # set while a connection is open
        self._closed = False
        self._stopping = anyio.Event()
        self._exchanges: dict[str, ExchangeSpec] = {}
        self.last_error: BaseException | None = None
        #: connections opened after the first one
        self.reconnects = 0

    @property
    def url(self) -> str:
        return self._url

    @property
    def current(self) -> Broker | None:
        """The open connection's broker (``None`` between connections)."""
        return self._current

    # -- the connection -------------------------------------------------------
    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep a connection open until cancelled; ``started`` once the first is.

        Raises:
            BrokerError: the first connection could not be opened.
        """
        started = False
        attempt = 0
        try:
            while True:
                try:
                    async with self._opener() as broker:
                        await self._restore(broker)
                        lost = self._attach(broker)
                        if started:
                            self.reconnects += 1
                            log.warning("broker connection re-opened: %s", broker.url)
                        else:
                            started = True
                            task_status.started()
                        attempt = 0
                        await self._until_lost(broker, lost)
                        if self._stopping.is_set():
                            return  # leaving the block closes the connection cleanly
                except BrokerError as exc:
                    if not started:
                        raise
                    self.last_error = exc
                    delay = backoff_delay(self._backoff, attempt, random.random())
                    attempt += 1
                    log.warning("broker connection failed (%s); next attempt in %.2fs", exc, delay)
                    with anyio.move_on_after(delay):
                        await self._stopping.wait()
                if self._stopping.is_set():
                    return
        finally:
            self._closed = True
            self._current = None
            self._ready.set()  # waiters see the broker closed

    def stop(self) -> None:
        """Ask ``run`` to close its connection (cleanly: ``connection.close``)
        and return, instead of being cancelled in the middle of it."""
        self._stopping.set()
        self._lost.set()

    def _attach(self, broker: Broker) -> anyio.Event:
        self._current = broker
        self._lost = anyio.Event()
        self._ready.set()
        return self._lost

    def _mark_lost(self, lost: anyio.Event) -> None:
        """The connection whose event is ``lost`` is gone: later operations wait
        for the next one (an older connection's report changes nothing)."""
        lost.set()
        if lost is self._lost and self._current is not None:
            self._current = None
            self._ready = anyio.Event()

    async def _until_lost(self, broker: Broker, lost: anyio.Event) -> None:
        wait_closed: Callable[[], Awaitable[None]] | None = getattr(broker, "wait_closed", None)
        async with anyio.create_task_group() as tg:
            if wait_closed is not None:

                async def watch() -> None:
                    await wait_closed()
                    self._mark_lost(lost)

                tg.start_soon(watch)
            await lost.wait()
            tg.cancel_scope.cancel()
        self._mark_lost(lost)
        if not self._stopping.is_set():
            log.warning("broker connection lost: %s", broker.url)

    async def _restore(self, broker: Broker) -> None:
        """Re-declare the exchanges declared through this broker. They are
        cluster-wide metadata, so normally this is a no-op; one refused (a
        channel error) is logged and left to the publishes that need it."""
        for spec in list(self._exchanges.values()):
            try:
                await broker.declare_exchange(spec)
            except ConnectionLost:
                raise
            except BrokerError as exc:
                log.warning("could not declare exchange %r again: %s", spec.name, exc)

    async def _connection(self) -> tuple[Broker, anyio.Event]:
        with anyio.move_on_after(self.unavailable_timeout):
            while not self._closed:
                broker = self._current
                if broker is not None:
                    return broker, self._lost
                await self._ready.wait()
        if self._closed:
            raise ConnectionLost("the broker is closed", url=self._url)
        last = f" (last error: {self.last_error})" if self.last_error is not None else ""
        raise BrokerUnavailable(
            f"no broker node answered within {self.unavailable_timeout:g}s{last}", url=self._url
        )

    async def _call(self, kind: OperationKind, op: Callable[[Broker], Awaitable[_T]]) -> _T:
        for tries_left in (1, 0):
            broker, lost = await self._connection()
            try:
                return await op(broker)
            except ConnectionLost as exc:
                self._mark_lost(lost)
                decision = after_connection_lost(kind)
                if decision == "unknown" and not isinstance(exc, PublishOutcomeUnknown):
                    raise PublishOutcomeUnknown(
                        "the connection was lost before the broker confirmed the publish; "
                        f"it may or may not have been delivered ({exc})",
                        url=self._url,
                        reply_code=exc.reply_code,
                        reply_text=exc.reply_text,
                    ) from exc
                if decision != "again" or not tries_left:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the Broker interface -------------------------------------------------
    async def declare_exchange(self, spec: ExchangeSpec) -> None:
        await self._call("idempotent", lambda b: b.declare_exchange(spec))
        if spec.name:
            self._exchanges[spec.name] = spec

    async def declare_queue(self, spec: QueueSpec) -> QueueInfo:
        return await self._call("idempotent", lambda b: b.declare_queue(spec))

    async def bind_queue(self, spec: BindingSpec) -> None:
        await self._call("idempotent", lambda b: b.bind_queue(spec))

    async def inspect_queue(self, name: str) -> QueueInfo:
        return await self._call("idempotent", lambda b: b.inspect_queue(name))

    async def delete_queue(self, name: str) -> int:
        return await self._call("counted", lambda b: b.delete_queue(name))

    async def delete_exchange(self, name: str) -> None:
        self._exchanges.pop(name, None)
        await self._call("idempotent", lambda b: b.delete_exchange(name))

    async def purge_queue(self, name: str) -> int:
        return await self._call("counted", lambda b: b.purge_queue(name))

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Properties | None = None,
        *,
        mandatory: bool = True,
    ) -> None:
        """As :meth:`Broker.publish`; a connection lost before the confirm raises
        :class:`~relayna.errors.PublishOutcomeUnknown` (nothing is republished)."""
        await self._call(
            "publish",
            lambda b: b.publish(exchange, routing_key, body, properties, mandatory=mandatory),
        )

    @asynccontextmanager
    async def consume(
        self,
        queue: str,
        *,
        prefetch: int = 1,
        offset: StreamOffset | None = None,
        arguments: Mapping[str, Any] | None = None,
        consumer_tag: str | None = None,
    ) -> AsyncIterator[Consumer]:
        broker, lost = await self._connection()
        try:
            async with broker.consume(
                queue,
                prefetch=prefetch,
                offset=offset,
                arguments=arguments,
                consumer_tag=consumer_tag,
            ) as consumer:
                yield consumer
        except ConnectionLost:
            self._mark_lost(lost)
            raise

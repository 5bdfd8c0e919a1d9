"""``StatusHub``: the bridge from the status queue (a RabbitMQ stream) to the store.

Theory of operation. One consumer reads the status queue with ``prefetch``
unsettled deliveries. The dispatch loop decodes each body synchronously
(size/depth limits before parsing, strict JSON, identifier rule) and hands it
to one of ``write_concurrency`` *shards*, chosen by task id. A shard is an
ordered queue with one writer task: it takes everything queued (up to
``write_batch`` events) and stores it with one pipelined round trip of script
calls (:meth:`StatusStore.write_many`), then settles those deliveries, then
takes the next batch. All events of a task go to the same shard and a
pipeline runs its commands in order, so each task's events are stored in
arrival order while different shards proceed concurrently. Under load the
batches fill up by themselves; at low rates every event goes out at once,
alone: with one shard, an event that arrives when the shard is idle and
nothing else is delivered is written by the dispatch loop itself (no task
switch on the live path; later deliveries wait in the consumer's prefetch
buffer meanwhile). No task is started per event and no lock is taken per
task.

Settlement rules:

* malformed (``too_large``, ``too_deep``, ``decode_error``, ``invalid_json``,
  ``schema``) → ack, counted per reason, logged once;
* stored or duplicate → ack **after** the store write returned, by an acker
  task; a lone ack (a quiet hub) waits ``ack_delay`` (1 ms) first, so the
  live SSE path of the same process runs before RabbitMQ is woken;
* store failure of a whole round trip → the batch is retried in place with
  exponential backoff and the deliveries stay unacked (RabbitMQ streams cannot
  requeue: a nack on a stream does not redeliver). With
  ``requeue_on_store_failure=True`` (classic or quorum status queues) the
  deliveries are nacked with requeue instead;
* store failure of one event (a script error for one task's keys) → that task
  is *parked*: its event, and its later events as they arrive, are retried by
  a task of their own with backoff, in order, while the shard goes on with the
  other tasks. (Events of the same task that were already in the failed
  event's pipeline after it are stored before it.)

Several hubs on one stream each see every event; the store script's dedupe
marker makes each event stored and published once.

Where a hub starts (streams): at the offset committed in the store under its
name (:mod:`._hub_offset`), so that the events published while no hub ran
are stored when one starts. A committer task writes the lowest offset not yet
settled every ``offset_commit_interval`` seconds when it moved, and once more,
shielded and bounded, when the hub stops. A hub of a name with no record yet
starts at ``offset`` (``"last"`` by default; ``"first"`` or a timestamp
bounded by ``max_catch_up``).

The first consume of a freshly declared stream can fail with
``stream_not_found`` on RabbitMQ 3.10+ (the stream leader is not elected
yet): the hub retries that with backoff before reporting ``started``. After
``started``, a lost consumer is re-opened with backoff, resuming from the
lowest stream offset not yet settled (or the configured offset when the
broker does not report ``x-stream-offset``).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, ExitStack, nullcontext

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from relayna.errors import (
    AuthenticationError,
    BrokerError,
    ChannelClosed,
    ConfigurationError,
    ConnectionLost,
    ContractError,
    StoreError,
)
from relayna.observability import (
    RelaynaMetrics,
    hub_write_span,
    parse_timestamp,
    tracing_enabled,
)
from relayna.status._event import EventDict, decode_status_body
from relayna.status._hub_config import HubStatistics, StatusHubConfig
from relayna.status._hub_offset import HubOffsets, OffsetKeeper
from relayna.status._store import StatusStore
from relayna.transport import Broker, Consumer, Delivery, ReplicaBarrier, StreamOffset

__all__ = ["HubStatistics", "StatusHub", "StatusHubConfig"]

log = logging.getLogger("relayna.status.hub")


class _Item:
    """One decoded delivery on its way to the store."""

    __slots__ = ("delivery", "event", "offset", "task_id")

    def __init__(self, delivery: Delivery, event: EventDict, offset: int | None) -> None:
        self.delivery = delivery
        self.event = event
        self.offset = offset
        self.task_id: str = event["task_id"]


class StatusHub:
    """Consume status messages and write them to a :class:`StatusStore`.

    Start it with ``await tg.start(hub.run)``; cancel the task group to stop.

    ``reconnect`` (e.g. ``lambda: open_broker(url)``) lets the hub fail over:
    once ``broker``'s connection is lost, every later attempt consumes through
    a connection of the hub's own from ``reconnect()`` (with a multi-node URL,
    the next node that answers). Without it the hub retries on ``broker``,
    which only helps if that broker reconnects by itself (a
    :class:`~relayna.transport.FailoverBroker`, the runtime's broker).
    """

    def __init__(
        self,
        broker: Broker,
        store: StatusStore,
        config: StatusHubConfig,
        *,
        metrics: RelaynaMetrics | None = None,
        reconnect: Callable[[], AbstractAsyncContextManager[Broker]] | None = None,
    ) -> None:
        self._broker = broker
        self._reconnect = reconnect
        self._store = store
        self._metrics = metrics
        if metrics is not None:
            metrics.track_hub(self)
        self.config = config
        self._replicas = ReplicaBarrier(
            [getattr(store, "store", None)],
            config.replica_acks,
            config.replica_wait,
            what="the status hub's writes",
        )
        self.stats = HubStatistics()
        self._parked: dict[str, deque[_Item]] = {}
        self._inflight: set[int] = set()
        self._next_offset: int | None = None
        self._queued = 0  # handed to a shard and not written yet
        self._acks: MemoryObjectSendStream[Delivery]
        self._start: StreamOffset | None = config.offset  # when nothing is settled yet
        self._keeper: OffsetKeeper | None = None
        if config.offset is not None and config.persist_offset and _offsets_outlive(broker, store):
            try:
                offsets = HubOffsets(store.store, store.config.prefix, config.hub_name)
            except ContractError as exc:
                raise ConfigurationError(
                    f"status hub name {config.hub_name!r} cannot name its offset record "
                    f"({exc.errors[0][1] if exc.errors else exc}): "
                    "set StatusHubConfig(name=...)"
                ) from exc
            self._keeper = OffsetKeeper(offsets, config, self.stats, self._settled_offset)

    def statistics(self) -> HubStatistics:
        return self.stats

    def _backoff(self, attempt: int) -> float:
        return float(
            min(self.config.retry_max, self.config.retry_initial * (2 ** min(attempt, 30)))
        )

    def _settled_offset(self) -> int | None:
        """The lowest offset not settled yet: everything before it is stored."""
        if self._inflight:
            return min(self._inflight)
        return self._next_offset

    def _resume_offset(self) -> StreamOffset | None:
        if self.config.offset is None:
            return None
        settled = self._settled_offset()
        return settled if settled is not None else self._start

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Consume until cancelled; ``task_status.started()`` after consume-ok.

        Raises:
            BrokerError: the consumer could not be opened before ``started``
                (after ``start_attempts`` tries for stream_not_found).
            AuthenticationError: at any time.
        """
        try:
            await self._store.prepare()  # the first event then costs one round trip
        except StoreError as exc:
            log.warning("status hub: could not preload the write script: %s", exc)
        keeper = self._keeper
        if keeper is not None:
            stored = await keeper.load(self._backoff)
            if stored is None:
                self._start = keeper.start_offset()
            else:
                self._next_offset = stored
        error: BaseException | None = None
        async with anyio.create_task_group() as tg:
            if keeper is not None:
                tg.start_soon(keeper.run)
            try:
                await self._consume_forever(task_status)
            except (BrokerError, StoreError) as exc:
                error = exc
            tg.cancel_scope.cancel()
        if error is not None:
            raise error  # outside the task group: callers see the error itself

    def _consumer_broker(self, own: bool) -> AbstractAsyncContextManager[Broker]:
        if own and self._reconnect is not None:
            return self._reconnect()
        return nullcontext(self._broker)

    async def _consume_forever(self, task_status: anyio.abc.TaskStatus[None]) -> None:
        started = False
        attempt = 0
        own = False  # consume through a connection of our own (the shared one was lost)
        while True:
            try:
                async with (
                    self._consumer_broker(own) as broker,
                    broker.consume(
                        self.config.queue,
                        prefetch=self.config.prefetch,
                        offset=self._resume_offset(),
                    ) as consumer,
                ):
                    if not started:
                        started = True
                        task_status.started()
                    attempt = 0
                    await self._consume(consumer)
                raise ConnectionLost(f"status consumer on {self.config.queue!r} ended")
            except AuthenticationError:
                raise
            except BrokerError as exc:
                if isinstance(exc, ConnectionLost):
                    own = True
                if not started and (
                    not isinstance(exc, ChannelClosed | ConnectionLost)
                    or attempt + 1 >= self.config.start_attempts
                ):
                    raise
                self.stats.consumer_restarts += 1
                delay = self._backoff(attempt)
                attempt += 1
                log.warning(
                    "status hub consumer on %r failed (%s); retrying in %.2fs",
                    self.config.queue,
                    exc,
                    delay,
                )
                await anyio.sleep(delay)

    async def _consume(self, consumer: Consumer) -> None:
        # The new consumer starts at the lowest unsettled offset: the old
        # consumer's unsettled deliveries come again.
        self._next_offset = self._settled_offset()
        self._parked = {}
        self._queued = 0
        self._inflight = set()
        failure: BrokerError | None = None
        streams = [
            anyio.create_memory_object_stream[_Item](math.inf)
            for _ in range(self.config.write_concurrency)
        ]
        acks, to_ack = anyio.create_memory_object_stream[Delivery](math.inf)
        async with anyio.create_task_group() as outer:
            outer.start_soon(self._acker, to_ack)
            with acks:  # closed once the shards are done: the acker sends the rest
                self._acks = acks
                async with anyio.create_task_group() as tg:
                    for _, receive in streams:
                        tg.start_soon(self._shard, receive, tg)
                    sends = [send for send, _ in streams]
                    try:
                        with ExitStack() as closing:  # the shards finish what is queued
                            for send in sends:
                                closing.enter_context(send)
                            await self._dispatch(consumer, sends, tg)
                    except BrokerError as exc:
                        failure = exc
                        outer.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _acker(self, to_ack: MemoryObjectReceiveStream[Delivery]) -> None:
        delay = self.config.ack_delay
        async with to_ack:
            async for first in to_ack:
                batch = [first]
                _drain(to_ack, batch)
                if delay and len(batch) == 1:  # quiet: let the live path run first
                    await anyio.sleep(delay)
                    _drain(to_ack, batch)
                for delivery in batch:
                    await self._send_settle(delivery, ack=True)

    async def _dispatch(
        self,
        consumer: Consumer,
        shards: list[MemoryObjectSendStream[_Item]],
        tg: anyio.abc.TaskGroup,
    ) -> None:
        count = len(shards)
        config = self.config
        stats = self.stats
        async for delivery in consumer:
            stats.received += 1
            offset = _offset_of(delivery)
            if offset is not None:
                self._inflight.add(offset)
            try:
                event = decode_status_body(
                    delivery.body,
                    sanitize_meta_keys=config.sanitize_meta_keys,
                    aliases=config.aliases,
                )
            except ContractError as exc:
                stats.malformed[exc.reason] += 1
                log.warning(
                    "status hub: acking a malformed status message (%s): %s", exc.reason, exc
                )
                await self._settle(delivery, offset, ack=True)
                continue
            item = _Item(delivery, event, offset)
            if count == 1 and self._queued == 0 and getattr(consumer, "buffered", None) == 0:
                # A lone event on a quiet hub: write it here, saving the hand-over
                # to the shard task (one event-loop pass on the live path). Nothing
                # is queued or being written, so the order holds.
                await self._write_batch([item], tg)
                continue
            self._queued += 1
            try:
                shards[hash(item.task_id) % count if count > 1 else 0].send_nowait(item)
            except anyio.BrokenResourceError:
                # The shards are gone, so the hub is being cancelled: a buffered
                # delivery can be handed out without a checkpoint after that.
                # It stays unsettled (the next consumer gets it; the dedupe
                # marker drops a copy); let the pending cancellation through.
                self._queued -= 1
                await anyio.lowlevel.checkpoint()
                return

    async def _shard(
        self, receive: MemoryObjectReceiveStream[_Item], tg: anyio.abc.TaskGroup
    ) -> None:
        limit = self.config.write_batch
        async with receive:
            async for first in receive:
                batch = [first]
                while len(batch) < limit:
                    try:
                        batch.append(receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                try:
                    await self._write_batch(batch, tg)
                finally:
                    self._queued -= len(batch)

    async def _write_batch(self, batch: list[_Item], tg: anyio.abc.TaskGroup) -> None:
        ready: list[_Item] = []
        for item in batch:
            parked = self._parked.get(item.task_id)
            if parked is None:
                ready.append(item)
            else:  # keep the task's order: behind its parked event
                parked.append(item)
        if not ready:
            return
        failures = 0
        started = time.perf_counter()
        started_ns = time.time_ns()
        while True:
            try:
                results = await self._store.write_many([item.event for item in ready])
                await self._replicated()
                break
            except StoreError as exc:
                self._store_failed(ready[0], exc, failures)
                if self.config.requeue_on_store_failure:
                    for item in ready:
                        await self._settle(item.delivery, item.offset, ack=False)
                    return
                await anyio.sleep(self._backoff(failures))
                failures += 1
        if failures:
            log.info("status hub: store write succeeded after %d retries", failures)
        if self._metrics is not None:
            newest = parse_timestamp(ready[-1].event.get("timestamp"))
            self._metrics.observe_hub_write(
                self.config.queue,
                time.perf_counter() - started,
                None if newest is None else newest.timestamp(),
            )
        if tracing_enabled():
            self._trace_writes(ready, results, started_ns)
        for item, result in zip(ready, results, strict=True):
            if isinstance(result, StoreError):
                self._store_failed(item, result, 0)
                if self.config.requeue_on_store_failure:
                    await self._settle(item.delivery, item.offset, ack=False)
                    continue
                parked = self._parked.get(item.task_id)
                if parked is None:
                    parked = self._parked[item.task_id] = deque()
                    tg.start_soon(self._retry_parked, item.task_id, parked)
                parked.append(item)
                continue
            await self._stored(item, result)

    def _trace_writes(
        self, ready: list[_Item], results: list[bool | StoreError], started_ns: int
    ) -> None:
        """One hub span per written event, child of the status message's producer."""
        for item, result in zip(ready, results, strict=True):
            if not isinstance(result, StoreError):
                hub_write_span(
                    item.delivery.properties.headers,
                    queue=self.config.queue,
                    task_id=item.task_id,
                    event_id=item.event.get("event_id"),
                    stored=result,
                    start_time_ns=started_ns,
                )

    async def _retry_parked(self, task_id: str, parked: deque[_Item]) -> None:
        """Write a parked task's events one by one, in order, with backoff."""
        try:
            while parked:
                item = parked[0]
                failures = 0
                while True:
                    await anyio.sleep(self._backoff(failures))
                    try:
                        stored = await self._store.write(item.event)
                        await self._replicated()
                        break
                    except StoreError as exc:
                        failures += 1
                        self._store_failed(item, exc, failures)
                log.info("status hub: store write for task %s succeeded after retry", task_id)
                await self._stored(item, stored)
                parked.popleft()
        finally:
            if self._parked.get(task_id) is parked:
                del self._parked[task_id]

    async def _replicated(self) -> None:
        """With ``replica_acks``: the writes so far reached that many replicas,
        else StoreConnectionError (the batch is written again and waited for:
        its dedupe markers make the rewrite of a replicated event a no-op)."""
        await self._replicas.wait()

    def _store_failed(self, item: _Item, exc: StoreError, failures: int) -> None:
        self.stats.store_failures += 1
        if failures == 0:
            log.warning("status hub: store write for task %s failed: %s", item.task_id, exc)

    async def _stored(self, item: _Item, stored: bool) -> None:
        if stored:
            self.stats.stored += 1
        else:
            self.stats.duplicates += 1
        if self.config.ack_delay:
            self._acks.send_nowait(item.delivery)
            self._settled(item.offset)
        else:
            await self._settle(item.delivery, item.offset, ack=True)

    async def _settle(self, delivery: Delivery, offset: int | None, *, ack: bool) -> None:
        await self._send_settle(delivery, ack=ack)
        self._settled(offset)

    async def _send_settle(self, delivery: Delivery, *, ack: bool) -> None:
        try:
            if ack:
                await delivery.ack()
            else:
                await delivery.nack(requeue=True)
        except BrokerError as exc:
            # The broker redelivers unsettled messages; the dedupe marker drops the copy.
            self.stats.settle_failures += 1
            log.warning("status hub: could not settle delivery %d: %s", delivery.delivery_tag, exc)

    def _settled(self, offset: int | None) -> None:
        if offset is not None:
            self._inflight.discard(offset)
            if self._next_offset is None or offset + 1 > self._next_offset:
                self._next_offset = offset + 1


def _offsets_outlive(broker: Broker, store: StatusStore) -> bool:
    """Whether a stored offset can mean anything to the next hub: a memory
    broker's streams end with it, so its offsets are kept in a memory store
    only (which ends with the process too), never in Redis."""
    return not _is_memory(broker.url) or _is_memory(store.store.url)


def _is_memory(url: str) -> bool:
    return url.startswith("memory:")


def _drain(receive: MemoryObjectReceiveStream[Delivery], into: list[Delivery]) -> None:
    while True:
        try:
            into.append(receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            return


def _offset_of(delivery: Delivery) -> int | None:
    raw = delivery.properties.headers.get("x-stream-offset")
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None

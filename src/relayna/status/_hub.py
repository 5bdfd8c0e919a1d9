"""``StatusHub``: the bridge from the status queue (a RabbitMQ stream) to the store.

Theory of operation. One consumer reads the status queue with ``prefetch``
unsettled deliveries. The dispatch loop decodes each body synchronously
(size/depth limits before parsing, strict JSON, identifier rule) and appends
it to its task's *lane*: a FIFO that exists only while it has pending events
(the "keyed lock with refcounted entries" of the original, without the
ordering race of tasks competing for a lock). One task per non-empty lane
writes its events in arrival order, at most ``prefetch`` lanes at once, so
events of one task are stored in order while different tasks proceed
concurrently.

Settlement rules:

* malformed (``too_large``, ``too_deep``, ``decode_error``, ``invalid_json``,
  ``schema``) → ack, counted per reason, logged once;
* stored or duplicate → ack **after** the store write returned;
* store failure → the write is retried in place with exponential backoff and
  the delivery stays unacked (RabbitMQ streams cannot requeue: a nack on a
  stream does not redeliver). With ``requeue_on_store_failure=True`` (classic
  or quorum status queues) the delivery is nacked with requeue instead.

Several hubs on one stream each see every event; the store script's dedupe
marker makes each event stored and published once.

The first consume of a freshly declared stream can fail with
``stream_not_found`` on RabbitMQ 3.10+ (the stream leader is not elected
yet): the hub retries that with backoff before reporting ``started``. After
``started``, a lost consumer is re-opened with backoff, resuming from the
lowest stream offset not yet settled (or the configured offset when the
broker does not report ``x-stream-offset``).
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterable
from itertools import islice
from typing import Any

import anyio
import anyio.abc
import attrs

from relayna.contracts import ContractAliasConfig
from relayna.errors import (
    AuthenticationError,
    BrokerError,
    ChannelClosed,
    ConnectionLost,
    ContractError,
    StoreError,
)
from relayna.status._batch import WriteBatcher
from relayna.status._event import EventDict, decode_status_body
from relayna.status._store import StatusStore
from relayna.transport import Broker, Consumer, Delivery, StreamOffset

__all__ = ["HubStatistics", "StatusHub", "StatusHubConfig"]

log = logging.getLogger("relayna.status.hub")


def _frozen_strs(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


def _at_least_one(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value!r}")


@attrs.frozen
class StatusHubConfig:
    """How a :class:`StatusHub` consumes.

    Attributes:
        queue: the status queue (``topology.status_queue``).
        offset: stream offset to start from (``"last"`` as the original: a
            (re)started hub re-reads the last chunk; markers drop the
            duplicates). ``None`` for a classic/quorum status queue.
        prefetch: unsettled deliveries, and the bound on concurrent lanes.
        sanitize_meta_keys: ``meta`` keys removed before storing.
        requeue_on_store_failure: nack-requeue instead of retrying in place
            (only meaningful for non-stream queues).
        retry_initial / retry_max: backoff bounds (seconds) for store retries
            and consumer re-opens.
        start_attempts: consume attempts before ``started`` (stream_not_found).
        aliases: payload alias config for decoding (``documentId`` always works).
        write_batch / write_concurrency: store writes go out as up to
            ``write_batch`` script calls per round trip (one event per task
            per batch, see :mod:`._batch`), ``write_concurrency`` round trips
            at once.
    """

    queue: str
    offset: StreamOffset | None = "last"
    prefetch: int = attrs.field(default=200, validator=_at_least_one)
    sanitize_meta_keys: frozenset[str] = attrs.field(
        default=frozenset({"auth_token"}), converter=_frozen_strs
    )
    requeue_on_store_failure: bool = False
    retry_initial: float = 0.1
    retry_max: float = 5.0
    start_attempts: int = attrs.field(default=20, validator=_at_least_one)
    aliases: ContractAliasConfig | None = None
    write_batch: int = attrs.field(default=64, validator=_at_least_one)
    write_concurrency: int = attrs.field(default=4, validator=_at_least_one)


@attrs.define
class HubStatistics:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    malformed: Counter[str] = attrs.field(factory=Counter)
    store_failures: int = 0
    settle_failures: int = 0
    consumer_restarts: int = 0


class StatusHub:
    """Consume status messages and write them to a :class:`StatusStore`.

    Start it with ``await tg.start(hub.run)``; cancel the task group to stop.
    """

    def __init__(self, broker: Broker, store: StatusStore, config: StatusHubConfig) -> None:
        self._broker = broker
        self._store = store
        self.config = config
        self.stats = HubStatistics()
        self._limiter = anyio.CapacityLimiter(config.prefetch)
        self._lanes: dict[str, deque[tuple[Delivery, EventDict]]] = {}
        self._inflight: set[int] = set()
        self._next_offset: int | None = None
        self._batcher = self._new_batcher()

    def _new_batcher(self) -> WriteBatcher:
        return WriteBatcher(
            self._store,
            max_batch=self.config.write_batch,
            concurrency=self.config.write_concurrency,
        )

    def statistics(self) -> HubStatistics:
        return self.stats

    def _backoff(self, attempt: int) -> float:
        return float(
            min(self.config.retry_max, self.config.retry_initial * (2 ** min(attempt, 30)))
        )

    def _resume_offset(self) -> StreamOffset | None:
        if self.config.offset is None:
            return None
        if self._inflight:
            return min(self._inflight)
        if self._next_offset is not None:
            return self._next_offset
        return self.config.offset

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Consume until cancelled; ``task_status.started()`` after consume-ok.

        Raises:
            BrokerError: the consumer could not be opened before ``started``
                (after ``start_attempts`` tries for stream_not_found).
            AuthenticationError: at any time.
        """
        started = False
        attempt = 0
        while True:
            try:
                async with self._broker.consume(
                    self.config.queue, prefetch=self.config.prefetch, offset=self._resume_offset()
                ) as consumer:
                    if not started:
                        started = True
                        task_status.started()
                    attempt = 0
                    await self._consume(consumer)
                raise ConnectionLost(f"status consumer on {self.config.queue!r} ended")
            except AuthenticationError:
                raise
            except BrokerError as exc:
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
        self._lanes = {}
        self._inflight = set()
        failure: BrokerError | None = None
        self._batcher = self._new_batcher()
        async with anyio.create_task_group() as writers:
            writers.start_soon(self._batcher.run)
            async with anyio.create_task_group() as tg:
                try:
                    await self._dispatch(consumer, tg)
                except BrokerError as exc:
                    failure = exc
                    tg.cancel_scope.cancel()
                    writers.cancel_scope.cancel()
            writers.cancel_scope.cancel()  # the lanes are done: stop the flushers
        if failure is not None:
            raise failure

    async def _dispatch(self, consumer: Consumer, tg: anyio.abc.TaskGroup) -> None:
        async for delivery in consumer:
            self.stats.received += 1
            offset = delivery.properties.headers.get("x-stream-offset")
            if isinstance(offset, int) and not isinstance(offset, bool):
                self._inflight.add(offset)
            else:
                offset = None
            try:
                event = decode_status_body(
                    delivery.body,
                    sanitize_meta_keys=self.config.sanitize_meta_keys,
                    aliases=self.config.aliases,
                )
            except ContractError as exc:
                self.stats.malformed[exc.reason] += 1
                log.warning(
                    "status hub: acking a malformed status message (%s): %s", exc.reason, exc
                )
                await self._settle(delivery, offset, ack=True)
                continue
            task_id = str(event["task_id"])
            lane = self._lanes.get(task_id)
            if lane is None:
                lane = self._lanes[task_id] = deque()
                tg.start_soon(self._drain, task_id, lane)
            lane.append((delivery, event))

    async def _drain(self, task_id: str, lane: deque[tuple[Delivery, EventDict]]) -> None:
        try:
            async with self._limiter:
                while lane:
                    group = list(islice(lane, self.config.write_batch))
                    try:
                        results: list[bool | StoreError] = await self._batcher.write_group(
                            [event for _, event in group]
                        )
                    except StoreError:
                        self.stats.store_failures += 1
                        results = []  # the round trip failed: retry each event in order
                    for index, (delivery, event) in enumerate(group):
                        result = results[index] if index < len(results) else None
                        if isinstance(result, bool):
                            await self._stored(delivery, event, result, failures=0)
                        else:  # failed (or unknown): the retrying single write
                            await self._write(delivery, event)
                        lane.popleft()
        finally:
            if self._lanes.get(task_id) is lane:
                del self._lanes[task_id]

    async def _write(self, delivery: Delivery, event: EventDict) -> None:
        offset = _offset_of(delivery)
        failures = 0
        while True:
            try:
                stored = await self._batcher.write(event)
                break
            except StoreError as exc:
                self.stats.store_failures += 1
                if failures == 0:
                    log.warning(
                        "status hub: store write for task %s failed: %s", event["task_id"], exc
                    )
                if self.config.requeue_on_store_failure:
                    await self._settle(delivery, offset, ack=False)
                    return
                await anyio.sleep(self._backoff(failures))
                failures += 1
        await self._stored(delivery, event, stored, failures=failures)

    async def _stored(
        self, delivery: Delivery, event: EventDict, stored: bool, *, failures: int
    ) -> None:
        offset = _offset_of(delivery)
        if failures:
            log.info(
                "status hub: store write for task %s succeeded after %d retries",
                event["task_id"],
                failures,
            )
        if stored:
            self.stats.stored += 1
        else:
            self.stats.duplicates += 1
        await self._settle(delivery, offset, ack=True)

    async def _settle(self, delivery: Delivery, offset: int | None, *, ack: bool) -> None:
        try:
            if ack:
                await delivery.ack()
            else:
                await delivery.nack(requeue=True)
        except BrokerError as exc:
            # The broker redelivers unsettled messages; the dedupe marker drops the copy.
            self.stats.settle_failures += 1
            log.warning("status hub: could not settle delivery %d: %s", delivery.delivery_tag, exc)
        if offset is not None:
            self._inflight.discard(offset)
            if self._next_offset is None or offset + 1 > self._next_offset:
                self._next_offset = offset + 1


def _offset_of(delivery: Delivery) -> int | None:
    raw = delivery.properties.headers.get("x-stream-offset")
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None

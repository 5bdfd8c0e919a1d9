"""Queue models: classic / quorum (one ordered store with priorities, TTL,
length limits, dead-lettering) and stream (an append-only log, non-destructive).

Theory of operation: every operation is synchronous and runs to completion
between two checkpoints of the caller, so no locks are needed. Ready messages
live in a heap keyed by ``(-priority, seq)``; ``seq`` is assigned once at
enqueue, so a requeued message goes back to its original position. A queue
dispatches whenever something changes (enqueue, settle, consumer joins or
leaves, expiry), handing messages to consumers with credit: round-robin, or
only to the first consumer with ``x-single-active-consumer``. Expired messages
are removed by the broker's timer (``expire``) and, lazily, when they reach
the head during dispatch.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import attrs

from relayna.errors import PreconditionFailed
from relayna.transport._broker import Properties, QueueSpec, StreamOffset
from relayna.transport.memory_broker._consumer import MemoryConsumer, Outcome
from relayna.transport.memory_broker._message import (
    DeathReason,
    Message,
    copy_properties,
    parse_expiration,
)

__all__ = ["ClassicQueue", "QueueCore", "StreamQueue", "make_queue"]


class QueueCore(Protocol):
    """What a queue needs from the broker that owns it."""

    def dead_letter(self, queue: ClassicQueue, message: Message, reason: DeathReason) -> None: ...
    def schedule_expiry(self, deadline: float, queue: ClassicQueue) -> None: ...
    def next_seq(self) -> int: ...
    def now(self) -> float: ...
    def queue_unused(self, queue: QueueBase) -> None: ...


def _precondition(message: str) -> PreconditionFailed:
    return PreconditionFailed(
        message, reply_code=406, reply_text=f"PRECONDITION_FAILED - {message}"
    )


def _int_arg(
    args: Mapping[str, Any], key: str, *, low: int = 0, high: int | None = None
) -> int | None:
    if key not in args:
        return None
    value = args[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _precondition(f"invalid arg {key!r}: {value!r}")
    if high is not None and value > high:
        raise _precondition(f"invalid arg {key!r}: {value!r} (max {high})")
    return value


class QueueBase:
    def __init__(self, core: QueueCore, spec: QueueSpec) -> None:
        self.core = core
        self.name = spec.name
        self.spec = spec
        self.consumers: list[MemoryConsumer] = []
        self.deleted = False
        self._had_consumer = False

    def attach(self, consumer: MemoryConsumer) -> None:
        self.consumers.append(consumer)
        self._had_consumer = True
        self.dispatch()

    def detach(self, consumer: MemoryConsumer) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)
        self._returned(consumer.end("exited"))
        self.dispatch()
        if self.spec.auto_delete and self._had_consumer and not self.consumers:
            self.core.queue_unused(self)

    def close_consumers(self, state: Any) -> None:
        for consumer in self.consumers:
            consumer.end(state)
        self.consumers.clear()

    def _returned(self, items: list[Any]) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def dispatch(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def unacked(self) -> int:
        return sum(consumer.unsettled_count for consumer in self.consumers)


class ClassicQueue(QueueBase):
    """A classic or quorum queue."""

    def __init__(self, core: QueueCore, spec: QueueSpec, *, quorum: bool) -> None:
        super().__init__(core, spec)
        args = spec.arguments
        self.quorum = quorum
        self.ttl_ms = _int_arg(args, "x-message-ttl")
        self.dlx: str | None = (
            str(args["x-dead-letter-exchange"]) if "x-dead-letter-exchange" in args else None
        )
        self.dlrk: str | None = (
            str(args["x-dead-letter-routing-key"]) if "x-dead-letter-routing-key" in args else None
        )
        self.max_length = _int_arg(args, "x-max-length")
        self.max_length_bytes = _int_arg(args, "x-max-length-bytes")
        self.overflow = str(args.get("x-overflow", "drop-head"))
        if self.overflow not in ("drop-head", "reject-publish", "reject-publish-dlx"):
            raise _precondition(f"invalid arg 'x-overflow': {self.overflow!r}")
        self.max_priority = 0 if quorum else (_int_arg(args, "x-max-priority", high=255) or 0)
        self.single_active = bool(args.get("x-single-active-consumer", False))
        self.delivery_limit = _int_arg(args, "x-delivery-limit") if quorum else None
        self._ready: list[tuple[int, int, Message]] = []
        self._ready_bytes = 0
        self._rr = 0

    @property
    def depth(self) -> int:
        return len(self._ready)

    def bodies(self) -> list[bytes]:
        return [message.body for _, _, message in sorted(self._ready, key=lambda e: e[:2])]

    def ready_messages(self, limit: int) -> list[Message]:
        """The first ``limit`` ready messages in delivery order (not removed)."""
        return [
            message for _, _, message in heapq.nsmallest(limit, self._ready, key=lambda e: e[:2])
        ]

    # -- enqueue / requeue ---------------------------------------------------

    def _full(self, extra: int) -> bool:
        if self.max_length is not None and len(self._ready) + 1 > self.max_length:
            return True
        limit = self.max_length_bytes
        return limit is not None and self._ready_bytes + extra > limit

    def enqueue(self, message: Message) -> bool:
        """Add a routed message; ``False`` if the queue refused it (reject-publish)."""
        if self.overflow != "drop-head" and self._full(len(message.body)):
            if self.overflow == "reject-publish-dlx":
                self.core.dead_letter(self, message, "maxlen")
            return False
        now = self.core.now()
        message.seq = self.core.next_seq()
        if self.max_priority:
            message.priority = max(0, min(message.properties.priority or 0, self.max_priority))
        ttls = [
            ttl
            for ttl in (self.ttl_ms, parse_expiration(message.properties.expiration))
            if ttl is not None
        ]
        message.expires_at = now + min(ttls) / 1000 if ttls else None
        self._push(message)
        self.dispatch()
        while self._ready and self._over_limit():
            self.core.dead_letter(self, self._pop(), "maxlen")
        return True

    def _over_limit(self) -> bool:
        if self.max_length is not None and len(self._ready) > self.max_length:
            return True
        return self.max_length_bytes is not None and self._ready_bytes > self.max_length_bytes

    def _push(self, message: Message) -> None:
        heapq.heappush(self._ready, (-message.priority, message.seq, message))
        self._ready_bytes += len(message.body)
        if message.expires_at is not None:
            self.core.schedule_expiry(message.expires_at, self)

    def _pop(self) -> Message:
        _, _, message = heapq.heappop(self._ready)
        self._ready_bytes -= len(message.body)
        return message

    def _returned(self, items: list[Any]) -> None:
        for message in sorted(items, key=lambda m: m.seq):
            self._requeue(message)

    def _requeue(self, message: Message) -> None:
        message.redelivered = True
        if self.quorum:
            message.delivery_count += 1
            if self.delivery_limit is not None and message.delivery_count > self.delivery_limit:
                self.core.dead_letter(self, message, "delivery_limit")
                return
        self._push(message)

    # -- consumers -----------------------------------------------------------

    def settle(self, consumer: MemoryConsumer, item: Any, outcome: Outcome) -> None:
        if outcome == "requeue":
            self._requeue(item)
        elif outcome == "dead-letter":
            self.core.dead_letter(self, item, "rejected")
        self.dispatch()

    def _pick(self) -> MemoryConsumer | None:
        if not self.consumers:
            return None
        if self.single_active:
            first = self.consumers[0]
            return first if first.credit > 0 else None
        count = len(self.consumers)
        for step in range(count):
            consumer = self.consumers[(self._rr + step) % count]
            if consumer.credit > 0:
                self._rr = (self._rr + step + 1) % count
                return consumer
        return None

    def dispatch(self) -> None:
        if self.deleted:
            return
        now = self.core.now()
        while self._ready:
            consumer = self._pick()
            if consumer is None:
                return
            message = self._pop()
            if message.expires_at is not None and message.expires_at < now:
                self.core.dead_letter(self, message, "expired")
                continue
            properties = copy_properties(message.properties)
            if self.quorum and message.delivery_count:
                properties.headers["x-delivery-count"] = message.delivery_count
            consumer.push(
                message,
                body=message.body,
                properties=properties,
                exchange=message.exchange,
                routing_key=message.routing_key,
                redelivered=message.redelivered,
            )

    # -- expiry, purge, delete ----------------------------------------------

    def expire(self, now: float) -> None:
        """Dead-letter every ready message whose TTL has passed; re-arm the timer."""
        keep: list[tuple[int, int, Message]] = []
        expired: list[tuple[int, int, Message]] = []
        for entry in self._ready:
            at = entry[2].expires_at
            (expired if at is not None and at <= now else keep).append(entry)
        if expired:
            heapq.heapify(keep)
            self._ready = keep
            self._ready_bytes = sum(len(e[2].body) for e in keep)
            for _, _, message in sorted(expired, key=lambda e: e[:2]):
                self.core.dead_letter(self, message, "expired")
        deadlines = [e[2].expires_at for e in self._ready if e[2].expires_at is not None]
        if deadlines:
            self.core.schedule_expiry(min(deadlines), self)

    def purge(self) -> int:
        count = len(self._ready)
        self._ready.clear()
        self._ready_bytes = 0
        return count

    def delete(self) -> int:
        count = self.purge()
        self.deleted = True
        self.close_consumers("cancelled")
        return count


@attrs.frozen
class _Entry:
    offset: int
    at: datetime
    body: bytes
    properties: Properties
    exchange: str
    routing_key: str


class StreamQueue(QueueBase):
    """An append-only log; each consumer reads from its own position."""

    def __init__(self, core: QueueCore, spec: QueueSpec) -> None:
        super().__init__(core, spec)
        self._log: list[_Entry] = []
        self._times: list[datetime] = []

    @property
    def depth(self) -> int:
        return len(self._log)

    def bodies(self) -> list[bytes]:
        return [entry.body for entry in self._log]

    def enqueue(self, message: Message) -> bool:
        at = datetime.now(UTC)
        if self._times and at < self._times[-1]:
            at = self._times[-1]
        self._log.append(
            _Entry(
                len(self._log),
                at,
                message.body,
                message.properties,
                message.exchange,
                message.routing_key,
            )
        )
        self._times.append(at)
        self.dispatch()
        return True

    def start_position(self, offset: StreamOffset | None) -> int:
        end = len(self._log)
        if offset is None or offset == "next":
            return end
        if offset == "first":
            return 0
        if offset == "last":
            return max(end - 1, 0)
        if isinstance(offset, datetime):
            when = offset if offset.tzinfo is not None else offset.replace(tzinfo=UTC)
            return bisect.bisect_left(self._times, when)
        if isinstance(offset, int) and not isinstance(offset, bool):
            # Past the end: wait for that offset, as RabbitMQ does.
            return max(0, offset)
        raise _precondition(f"invalid stream offset {offset!r}")

    def attach_at(self, consumer: MemoryConsumer, offset: StreamOffset | None) -> None:
        consumer.position = self.start_position(offset)
        self.attach(consumer)

    def _returned(self, items: list[Any]) -> None:
        """Streams are non-destructive: nothing to give back."""

    def settle(self, consumer: MemoryConsumer, item: Any, outcome: Outcome) -> None:
        self.dispatch()

    def dispatch(self) -> None:
        if self.deleted:
            return
        for consumer in self.consumers:
            while consumer.credit > 0 and consumer.position < len(self._log):
                entry = self._log[consumer.position]
                consumer.position += 1
                properties = copy_properties(entry.properties)
                properties.headers["x-stream-offset"] = entry.offset
                consumer.push(
                    entry,
                    body=entry.body,
                    properties=properties,
                    exchange=entry.exchange,
                    routing_key=entry.routing_key,
                    redelivered=False,
                )

    def purge(self) -> int:
        raise _precondition(f"queue {self.name!r} is a stream: purge is not supported")

    def delete(self) -> int:
        count = len(self._log)
        self._log.clear()
        self._times.clear()
        self.deleted = True
        self.close_consumers("cancelled")
        return count


def make_queue(core: QueueCore, spec: QueueSpec) -> ClassicQueue | StreamQueue:
    kind = str(spec.arguments.get("x-queue-type", "classic"))
    if kind not in ("classic", "quorum", "stream"):
        raise _precondition(f"invalid arg 'x-queue-type': {kind!r}")
    if kind != "classic" and (not spec.durable or spec.exclusive or spec.auto_delete):
        raise _precondition(
            f"invalid property for a {kind} queue: must be durable, not exclusive or auto-delete"
        )
    if kind == "stream":
        return StreamQueue(core, spec)
    return ClassicQueue(core, spec, quorum=kind == "quorum")

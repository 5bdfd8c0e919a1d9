"""Cancellation state in the store, and the control messages that carry cancels to workers.

Theory of operation
-------------------
Who ends a task is decided in the store, in one script per step, so that a
cancel racing the task's completion, failure or retry always leaves exactly
one terminal status. Keys (``prefix`` is the status store's)::

    {prefix}:cancel:{id}     string: the cancel reason (a task id or a batch id), TTL
    {prefix}:terminal:{id}   string: the terminal status a worker claimed, TTL
    {prefix}:task:{id}       the publish claim (:class:`~relayna.rabbitmq.TaskIds`), read
    {prefix}:history:{id}    the status history, read (the task "exists")
    {prefix}:cancels         sorted set: the ids with a marker (score: expiry, epoch ms)

The steps (:data:`CANCEL_SCRIPT`, one Lua script; one call runs any number
of steps, each atomic, so a worker batches the steps of its concurrent
deliveries into one round trip):

============  =====================================================================
step          what it does, atomically
============  =====================================================================
``cancel``    terminal claimed → ``terminal``; marker there → ``pending`` (the
              same cancel again: idempotent); unknown id (asked to check) →
              ``unknown``; else write the marker (and list it in the pending
              set ``{prefix}:cancels``) → ``requested``
``start``     before the handler: idempotency key done → ``duplicate``; the task
              was cancelled → ``terminal``; a marker for the task or its batch →
              claim ``cancelled`` → ``cancelled``; else ``run`` (an older
              ``completed``/``failed``/``expired`` claim is dropped: this delivery
              is a redelivery, a replay or the same id published again, and runs)
``finish``    a worker ends the task with a status (``completed``, ``failed``,
              ``expired``, ``cancelled``; empty: a retry or requeue, which ends
              nothing): it was cancelled → ``terminal``; a marker → claim
              ``cancelled`` → ``cancelled``; else claim the status (replacing
              the ending of an earlier run of the same id) → ``ok``
``end``       as ``finish``, but any ending already claimed → ``terminal``
              (several deliveries of one workflow run expiring report it once)
``mark``      the idempotency key is done (``SET key done PX ttl``) → ``ok``: the
              :class:`~relayna.consumer.Idempotency` mark of a completed task, in
              the same batched call as other deliveries' steps
============  =====================================================================

So a cancel that reaches the store before the worker's ``finish`` wins (the
task reports ``cancelled``, even when its handler had returned); one that
comes after finds the terminal claim and is refused. The marker outlives
worker restarts (it is in the store); a task in a queue or a retry queue
meets it in ``start`` when a worker takes it.

Redis Cluster (``cluster=True``, the status store's layout): the task id is
the hash tag of the marker, terminal claim, publish claim and history
(``{prefix}:cancel:{{id}}`` ...), so each step stays one atomic script in the
task's slot. The three keys of other slots move out of the script: the batch
marker and the idempotency key are read just before the step (one round trip
for a whole batch of steps), and the pending set is written just after a
``requested`` or ``pending`` cancel (idempotent ``ZADD``; a repeated cancel
repairs a missing entry). So a batch cancel takes effect for an item from the
moment of that read, not of the step; one that lands in between still reaches
a running handler through the control message, as any cancel does.

A running handler learns of a cancel through the control exchange: a fanout
exchange every task worker binds an exclusive queue to. :func:`cancel_task`
writes the marker first, then publishes the control message (not mandatory:
with no worker running, the marker alone does the job).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

import attrs

from relayna.contracts import dumps, is_valid_identifier, loads, validate_identifier
from relayna.errors import ConfigurationError, ContractError, StoreError
from relayna.transport import (
    Broker,
    ExchangeSpec,
    Properties,
    Script,
    Store,
    Value,
    check_cluster_prefix,
    publish_idempotent,
    run_script_calls,
)

__all__ = [
    "CANCEL_PENDING_SCRIPT",
    "CANCEL_READ_SCRIPT",
    "CANCEL_SCRIPT",
    "CancelResult",
    "CancelStore",
    "ControlMessage",
    "GateResult",
    "Step",
    "cancel_task",
    "declare_control",
]

_LUA = """
-- One step per item; items are 7 KEYS and 5 ARGV each, after ARGV[1] = ttl_ms.
-- KEYS: marker, terminal, claim, history, batch marker, idempotency key, pending zset
--       (the cluster layout passes the marker again for the last three: other slots)
-- ARGV: step, status or reason, flag (check known / check idempotency), now_ms,
--       the batch marker read beforehand (cluster layout; '' otherwise)
local ttl = tonumber(ARGV[1])
local function step(k, a)
  local kind, text, flag = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  if kind == 'mark' then
    redis.call('SET', KEYS[k + 6], 'done', 'PX', tonumber(text))
    return {'ok', ''}
  end
  local terminal = redis.call('GET', KEYS[k + 2])
  if kind == 'cancel' then
    if terminal then return {'terminal', terminal} end
    local marker = redis.call('GET', KEYS[k + 1])
    if marker then return {'pending', marker} end
    if flag == '1' and redis.call('EXISTS', KEYS[k + 3]) == 0
        and redis.call('EXISTS', KEYS[k + 4]) == 0 then
      return {'unknown', ''}
    end
    redis.call('SET', KEYS[k + 1], text, 'PX', ttl)
    if KEYS[k + 7] ~= KEYS[k + 1] then
      local now = tonumber(ARGV[a + 3])
      redis.call('ZREMRANGEBYSCORE', KEYS[k + 7], '-inf', now)
      redis.call('ZADD', KEYS[k + 7], now + ttl, KEYS[k + 1])
    end
    return {'requested', text}
  end
  if kind == 'start' then
    if flag == '1' and redis.call('GET', KEYS[k + 6]) == 'done' then return {'duplicate', ''} end
    if terminal == 'cancelled' then return {'terminal', terminal} end
    -- another ending is history: this delivery (redelivered, replayed, published again) runs
    if terminal then redis.call('DEL', KEYS[k + 2]) end
  elseif terminal == 'cancelled' or (kind == 'end' and terminal) then
    return {'terminal', terminal}
  end
  local marker = redis.call('GET', KEYS[k + 1])
  if not marker and KEYS[k + 5] ~= KEYS[k + 1] then marker = redis.call('GET', KEYS[k + 5]) end
  if not marker and ARGV[a + 4] ~= '' then marker = ARGV[a + 4] end
  if marker then
    redis.call('SET', KEYS[k + 2], 'cancelled', 'PX', ttl)
    return {'cancelled', marker}
  end
  if kind == 'start' then return {'run', ''} end
  if text ~= '' then redis.call('SET', KEYS[k + 2], text, 'PX', ttl) end
  return {'ok', text}
end
local out = {}
for i = 0, math.floor(#KEYS / 7) - 1 do
  local reply = step(i * 7, 2 + i * 5)
  out[#out + 1] = reply[1]
  out[#out + 1] = reply[2]
end
return out
"""

#: The cancellation steps (see the module docs).
CANCEL_SCRIPT = Script(name="relayna.cancel", lua=_LUA)

_PENDING_LUA = """
-- KEYS: pending zset   ARGV: marker key, now_ms, ttl_ms
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""

#: The cluster layout's second write of a cancel: list the marker in the
#: pending set (its own slot), idempotently.
CANCEL_PENDING_SCRIPT = Script(name="relayna.cancel.pending", lua=_PENDING_LUA)

_GET_LUA = "return redis.call('GET', KEYS[1])"

#: One GET per call (a batch of reads of keys in different slots, one round trip).
CANCEL_READ_SCRIPT = Script(name="relayna.cancel.read", lua=_GET_LUA)

CancelState = Literal["requested", "pending", "terminal", "unknown"]
GateState = Literal[
    "run", "duplicate", "terminal", "cancelled", "ok", "requested", "pending", "unknown"
]
#: ``(step, task_id, batch_id, idempotency_key, status or reason, flag)``: one item of
#: :meth:`CancelStore.steps`.
Step: TypeAlias = tuple[str, str, "str | None", "str | None", str, str]


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


@attrs.frozen
class CancelResult:
    """What a cancel request found.

    ``state``: ``requested`` (the marker is written now), ``pending`` (an
    earlier cancel is waiting to be applied; ``reason`` is that one's),
    ``terminal`` (the task ended; ``status`` says how: nothing changed) or
    ``unknown`` (no such task; nothing written).
    """

    task_id: str
    state: CancelState
    reason: str | None = None
    status: str | None = None

    @property
    def accepted(self) -> bool:
        """The task is (or will be) cancelled by this or an earlier request."""
        return self.state in ("requested", "pending")

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "state": self.state,
            "reason": self.reason,
            "status": self.status,
        }


@attrs.frozen
class GateResult:
    """What a worker's ``start`` or ``finish`` step decided (see the module docs)."""

    state: GateState
    detail: str = ""


@attrs.frozen
class CancelStore:
    """The cancellation keys of one status-key prefix in ``store``.

    Args:
        store: an open store (the status store's: the status history is read).
        prefix: the status store's key prefix.
        ttl_seconds: how long a marker and a terminal claim live (default a
            week: a cancel waits that long for a worker to take the task).
        max_reason_length: the longest reason accepted (characters).
        control_exchange: the fanout exchange that carries cancels to workers.
        cluster: the status store's Redis Cluster key layout (see "Redis
            Cluster" in the module docs).
    """

    store: Store
    prefix: str = "relayna"
    ttl_seconds: float = 7 * 86_400.0
    max_reason_length: int = 500
    control_exchange: str = "relayna.control"
    cluster: bool = attrs.field(default=False, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if not self.ttl_seconds > 0:
            raise ConfigurationError(f"ttl_seconds must be > 0, got {self.ttl_seconds!r}")
        if not is_valid_identifier(self.control_exchange):
            raise ConfigurationError(f"invalid control exchange {self.control_exchange!r}")
        if self.cluster:
            check_cluster_prefix(self.prefix)

    @property
    def pending_key(self) -> str:
        """The sorted set of the ids with a cancel marker (score: its expiry, epoch ms)."""
        return f"{self.prefix}:cancels"

    async def pending_ids(self) -> set[str]:
        """The task and batch ids whose cancel marker has not expired.

        A worker loads them when its control queue is bound (then the control
        messages keep its copy current), so it asks the store's ``start`` step
        only about the deliveries that may be cancelled.
        """
        members = await self.store.zrangebyscore(self.pending_key, time.time() * 1000, float("inf"))
        prefix = f"{self.prefix}:cancel:"
        ids = {_text(m)[len(prefix) :] for m in members if _text(m).startswith(prefix)}
        return {i[1:-1] for i in ids if i[:1] == "{"} if self.cluster else ids

    def _id(self, task_id: str) -> str:
        """``task_id`` as it appears in its keys (the hash tag in the cluster layout)."""
        return "{" + task_id + "}" if self.cluster else task_id

    @property
    def _ttl_ms(self) -> str:
        return str(max(1, round(self.ttl_seconds * 1000)))

    def _keys(
        self, task_id: str, batch_id: str | None = None, idempotency_key: str | None = None
    ) -> list[str]:
        p, t = self.prefix, self._id(task_id)
        marker = f"{p}:cancel:{t}"
        if self.cluster:  # other slots: read before (batch, idempotency), written after (pending)
            return [marker, f"{p}:terminal:{t}", f"{p}:task:{t}", f"{p}:history:{t}"] + [marker] * 3
        return [
            marker,
            f"{p}:terminal:{task_id}",
            f"{p}:task:{task_id}",
            f"{p}:history:{task_id}",
            f"{p}:cancel:{batch_id}" if batch_id else marker,
            idempotency_key or marker,
            self.pending_key,
        ]

    def check_reason(self, reason: str | None) -> str:
        """``reason`` (``None``: ``"cancelled"``) if it is short, printable text.

        Raises:
            ContractError: too long, or with control characters (reason ``invalid_reason``).
        """
        if reason is None:
            return "cancelled"
        problem = None
        if not isinstance(reason, str):
            problem = f"must be text, got {type(reason).__name__}"
        elif len(reason) > self.max_reason_length:
            problem = f"longer than {self.max_reason_length} characters"
        elif any(ord(c) < 32 or ord(c) == 127 for c in reason):
            problem = "contains control characters"
        if problem is not None:
            raise ContractError(
                "invalid cancel reason", errors=[("reason", problem)], reason="invalid_reason"
            )
        return reason or "cancelled"

    async def steps(self, items: Sequence[Step]) -> list[GateResult]:
        """Run several steps in one script call (one round trip, one atomic unit).

        Each item is ``(step, task_id, batch_id, idempotency_key, text, flag)``:
        see the module docs. Workers batch their ``start`` and ``finish``
        steps this way (:class:`~relayna.consumer.StepBatcher`).
        """
        now = str(round(time.time() * 1000))
        if self.cluster:
            return await self._cluster_steps(items, now)
        keys: list[str] = []
        args: list[str] = [self._ttl_ms]
        for kind, task_id, batch_id, idempotency_key, text, flag in items:
            keys += self._keys(task_id, batch_id, idempotency_key)
            args += [kind, text, flag, now, ""]
        reply = await self.store.run_script(CANCEL_SCRIPT, keys, args)
        return [
            GateResult(_text(reply[i]), _text(reply[i + 1]))  # type: ignore[arg-type]
            for i in range(0, len(reply), 2)
        ]

    async def _cluster_steps(self, items: Sequence[Step], now: str) -> list[GateResult]:
        """The steps in the cluster layout (module docs, "Redis Cluster")."""
        if any(kind == "mark" for kind, *_ in items):
            raise ConfigurationError(
                "the mark step is not available in the cluster layout "
                "(the idempotency key is in another slot): use Idempotency.mark_completed"
            )
        reads: dict[str, bytes | None] = {}
        for kind, _task, batch_id, idempotency_key, _reason, flag in items:
            if kind == "start" and flag == "1" and idempotency_key:
                reads[idempotency_key] = None
            if batch_id and kind in ("start", "finish"):
                reads[f"{self.prefix}:cancel:{self._id(batch_id)}"] = None
        if reads:
            calls: list[tuple[list[str], list[Value]]] = [([key], []) for key in reads]
            for key, value in zip(
                reads, await run_script_calls(self.store, CANCEL_READ_SCRIPT, calls), strict=True
            ):
                if isinstance(value, StoreError):
                    raise value
                reads[key] = value
        results: list[GateResult | None] = [None] * len(items)
        owners: list[int] = []
        step_calls: list[tuple[list[str], list[Value]]] = []
        for i, (kind, task_id, batch_id, idempotency_key, text, flag) in enumerate(items):
            if kind == "start" and flag == "1" and idempotency_key:
                if reads[idempotency_key] == b"done":
                    results[i] = GateResult("duplicate")
                    continue
                flag = "0"
            batch = reads.get(f"{self.prefix}:cancel:{self._id(batch_id)}") if batch_id else None
            owners.append(i)
            step_calls.append(
                (self._keys(task_id), [self._ttl_ms, kind, text, flag, now, _text(batch)])
            )
        replies = await run_script_calls(self.store, CANCEL_SCRIPT, step_calls)
        pending: list[tuple[list[str], list[Value]]] = []
        for i, reply in zip(owners, replies, strict=True):
            if isinstance(reply, StoreError):
                raise reply
            results[i] = gate = GateResult(_text(reply[0]), _text(reply[1]))  # type: ignore[arg-type]
            if items[i][0] == "cancel" and gate.state in ("requested", "pending"):
                marker = self._keys(items[i][1])[0]
                pending.append(([self.pending_key], [marker, now, self._ttl_ms]))
        for reply in await run_script_calls(self.store, CANCEL_PENDING_SCRIPT, pending):
            if isinstance(reply, StoreError):
                raise reply
        return [r for r in results if r is not None]

    async def request(
        self, task_id: str, reason: str | None = None, *, require_known: bool = True
    ) -> CancelResult:
        """The ``cancel`` step: write the marker unless the task ended or is unknown.

        ``require_known``: answer ``unknown`` for an id with neither a publish
        claim nor a status history (a batch id has neither: pass False).

        Raises:
            ContractError: invalid id or reason.
            StoreError: the store failed.
        """
        validate_identifier(task_id)
        text = self.check_reason(reason)
        flag = "1" if require_known else "0"
        [gate] = await self.steps([("cancel", task_id, None, None, text, flag)])
        if gate.state == "terminal":
            return CancelResult(task_id, "terminal", status=gate.detail)
        if gate.state == "unknown":
            return CancelResult(task_id, "unknown")
        return CancelResult(task_id, gate.state, reason=gate.detail)  # type: ignore[arg-type]

    @staticmethod
    def start_step(
        task_id: str, *, batch_id: str | None = None, idempotency_key: str | None = None
    ) -> Step:
        """The ``start`` step of a task, for :meth:`steps`."""
        return ("start", task_id, batch_id, idempotency_key, "", "1" if idempotency_key else "0")

    @staticmethod
    def finish_step(task_id: str, status: str, *, batch_id: str | None = None) -> Step:
        """The ``finish`` step claiming ``status`` (empty: a retry), for :meth:`steps`."""
        return ("finish", task_id, batch_id, None, status, "0")

    @staticmethod
    def mark_step(task_id: str, idempotency_key: str, ttl_ms: int) -> Step:
        """The ``mark`` step: the idempotency key is done for ``ttl_ms``, for :meth:`steps`
        (not in the cluster layout: ConfigurationError there)."""
        return ("mark", task_id, None, idempotency_key, str(max(1, ttl_ms)), "0")

    @staticmethod
    def end_step(task_id: str, status: str) -> Step:
        """The ``end`` step: claim ``status`` unless any ending was claimed, for :meth:`steps`."""
        return ("end", task_id, None, None, status, "0")

    async def start(
        self, task_id: str, *, batch_id: str | None = None, idempotency_key: str | None = None
    ) -> GateResult:
        """The ``start`` step, before a handler runs (idempotency checked in the same step)."""
        step = self.start_step(task_id, batch_id=batch_id, idempotency_key=idempotency_key)
        return (await self.steps([step]))[0]

    async def finish(self, task_id: str, status: str, *, batch_id: str | None = None) -> GateResult:
        """The ``finish`` step: claim ``status`` (empty: a retry) unless a cancel or
        another terminal status came first."""
        return (await self.steps([self.finish_step(task_id, status, batch_id=batch_id)]))[0]

    async def terminal(self, task_id: str) -> str | None:
        """The terminal status claimed for ``task_id`` (``None``: none yet)."""
        task = self._id(validate_identifier(task_id))
        value = await self.store.get(f"{self.prefix}:terminal:{task}")
        return None if value is None else _text(value)


@attrs.frozen
class ControlMessage:
    """A control message: ``{"action": "cancel", "task_id": ..., "reason": ...}``.

    ``task_id`` may be a batch id: workers cancel every item of that batch.
    """

    task_id: str
    reason: str
    action: str = "cancel"

    def encode(self) -> bytes:
        return dumps({"action": self.action, "task_id": self.task_id, "reason": self.reason})

    @classmethod
    def decode(cls, body: bytes) -> ControlMessage | None:
        """The message, or ``None`` for anything that is not a valid cancel."""
        try:
            data = loads(body)
        except ContractError:
            return None
        if not isinstance(data, dict) or data.get("action") != "cancel":
            return None
        task_id, reason = data.get("task_id"), data.get("reason")
        if not is_valid_identifier(task_id) or not isinstance(reason, str):
            return None
        return cls(task_id=task_id, reason=reason[:1000])


async def declare_control(broker: Broker, exchange: str) -> None:
    """Declare the control exchange (fanout, durable; idempotent)."""
    await broker.declare_exchange(ExchangeSpec(exchange, type="fanout"))


async def cancel_task(
    broker: Broker,
    cancels: CancelStore,
    task_id: str,
    reason: str | None = None,
    *,
    require_known: bool = True,
) -> CancelResult:
    """Cancel ``task_id`` (or every item of batch ``task_id``): marker, then control message.

    Returns the :class:`CancelResult`; only ``requested`` and ``pending``
    publish the control message (a repeated cancel re-sends it: harmless, and
    it reaches a worker that missed the first one).

    Raises:
        ContractError: invalid id or reason.
        StoreError, BrokerError: the store or broker failed (a marker written
            before a broker failure still cancels the task when a worker takes it).
    """
    result = await cancels.request(task_id, reason, require_known=require_known)
    if result.accepted:
        await declare_control(broker, cancels.control_exchange)
        message = ControlMessage(task_id=task_id, reason=result.reason or "cancelled")
        props = Properties(content_type="application/json", delivery_mode=1)
        # A second copy of a cancel is harmless: after a failover with the
        # first copy's fate unknown, it is sent again instead of failing.
        await publish_idempotent(
            broker, cancels.control_exchange, "", message.encode(), props, mandatory=False
        )
    return result

"""Worker heartbeats: each consumer's liveness record in the store.

Every ``interval`` seconds a consumer writes a JSON :class:`WorkerHeartbeat`
to ``{prefix}:workers:{worker_id}`` with TTL ``ttl`` and adds ``worker_id``
to the index zset ``{prefix}:workers`` (score = when that record expires,
epoch seconds). One script per write: SET PX, ZADD, removal of index entries
that expired, and the index's own expiry set to its latest entry's. A worker that dies stops writing
and its record expires; :func:`list_worker_heartbeats` returns the live
records (what a ``/relayna/health/workers`` route serves). The final record
(state ``stopped``) is written when the consumer's ``run`` returns.

With ``cluster=True`` (Redis Cluster) the prefix is the keys' hash tag
(``{relayna}:workers:{worker_id}``, ``{relayna}:workers``): the write script
and the listing's ``MGET`` touch one slot.

A failed write is counted and logged; it never stops the consumer.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

import anyio
import attrs
import orjson
from anyio import CancelScope

from relayna.errors import ConfigurationError, StoreError
from relayna.transport import Script, Store, tag_prefix

__all__ = [
    "WORKER_HEARTBEAT_SCRIPT",
    "WorkerHeartbeat",
    "WorkerHeartbeats",
    "list_worker_heartbeats",
]

logger = logging.getLogger("relayna.consumer")

#: States a heartbeat reports.
STATES = ("starting", "running", "reconnecting", "draining", "stopped")

# ARGV: worker_id, record, ttl_ms, expires_at, now (epoch seconds)
_LUA = """
redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[3]))
redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[5])
local last = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local ms = math.ceil((tonumber(last[2]) - tonumber(ARGV[5])) * 1000)
redis.call('PEXPIRE', KEYS[2], math.max(ms, 1))
return 1
"""


WORKER_HEARTBEAT_SCRIPT = Script(name="relayna.consumer.heartbeat", lua=_LUA)


@attrs.frozen(kw_only=True)
class WorkerHeartbeat:
    """One worker's liveness record. Times are epoch seconds (UTC)."""

    worker_id: str
    consumer_name: str
    queue_name: str
    pid: int
    host: str
    started_at: float
    last_heartbeat: float
    in_flight: int
    processed: int
    state: str

    def to_json(self) -> bytes:
        return orjson.dumps(attrs.asdict(self))

    @classmethod
    def from_json(cls, data: bytes) -> WorkerHeartbeat:
        raw: dict[str, Any] = orjson.loads(data)
        names = {a.name for a in attrs.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


def _index(prefix: str) -> str:
    return f"{prefix}:workers"


async def list_worker_heartbeats(
    store: Store, prefix: str = "relayna", *, cluster: bool = False
) -> list[WorkerHeartbeat]:
    """The live worker records under ``prefix`` (expired ones are skipped), by
    worker id; ``cluster``: the Redis Cluster key layout (module docs)."""
    prefix = tag_prefix(prefix, cluster)
    live = await store.zrangebyscore(_index(prefix), time.time(), float("inf"))
    names = [n.decode("utf-8", "replace") for n in live]
    if not names:
        return []
    values = await store.mget([f"{_index(prefix)}:{name}" for name in names])
    out: list[WorkerHeartbeat] = []
    for value in values:
        if value is None:
            continue
        try:
            out.append(WorkerHeartbeat.from_json(value))
        except (orjson.JSONDecodeError, TypeError) as exc:
            logger.warning("ignoring malformed worker heartbeat (%r)", exc)
    return sorted(out, key=lambda hb: hb.worker_id)


@attrs.frozen(kw_only=True)
class HeartbeatSnapshot:
    """What the consumer reports; the writer adds identity and times."""

    consumer_name: str
    queue_name: str
    in_flight: int
    processed: int
    state: str


@attrs.define(kw_only=True)
class WorkerHeartbeats:
    """Heartbeat configuration for a consumer (``heartbeats=`` argument).

    Args:
        store: an open :class:`~relayna.transport.Store`.
        prefix: key prefix; records live at ``{prefix}:workers:{worker_id}``.
        interval: seconds between writes.
        ttl: record lifetime (should be a few intervals).
        worker_id: defaults to ``{consumer_name}@{host}:{pid}``.
        cluster: the Redis Cluster key layout (module docs).
    """

    store: Store
    prefix: str = "relayna"
    interval: float = 10.0
    ttl: float = 30.0
    worker_id: str | None = None
    cluster: bool = False
    write_errors: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        if not 0 < self.interval < self.ttl:
            raise ConfigurationError("worker heartbeats need 0 < interval < ttl")
        tag_prefix(self.prefix, self.cluster)  # a braced prefix: ConfigurationError

    async def write(self, snapshot: HeartbeatSnapshot, *, started_at: float) -> None:
        """Write one record now. Raises StoreError."""
        host = socket.gethostname()[:255]
        pid = os.getpid()
        worker_id = self.worker_id or f"{snapshot.consumer_name}@{host}:{pid}"
        now = time.time()
        record = WorkerHeartbeat(worker_id=worker_id, pid=pid, host=host, started_at=started_at,
                                 last_heartbeat=now, **attrs.asdict(snapshot))  # fmt: skip
        ttl_ms = max(1, int(self.ttl * 1000))
        index = _index(tag_prefix(self.prefix, self.cluster))
        await self.store.run_script(
            WORKER_HEARTBEAT_SCRIPT,
            [f"{index}:{worker_id}", index],
            [worker_id, record.to_json(), ttl_ms, repr(now + self.ttl), repr(now)],
        )

    async def _write_quietly(self, snapshot: HeartbeatSnapshot, started_at: float) -> None:
        try:
            await self.write(snapshot, started_at=started_at)
        except StoreError as exc:
            self.write_errors += 1
            if self.write_errors == 1 or self.write_errors % 100 == 0:
                logger.warning("worker heartbeat write failed (%r; %d so far)", exc,
                               self.write_errors)  # fmt: skip

    async def run(self, snapshot: Callable[[], HeartbeatSnapshot], scope: CancelScope) -> None:
        """Write every ``interval`` until ``scope`` is cancelled, then a last record (shielded)."""
        started_at = time.time()
        try:
            with scope:
                while True:
                    await self._write_quietly(snapshot(), started_at)
                    await anyio.sleep(self.interval)
        finally:
            with CancelScope(shield=True), anyio.move_on_after(2.0):
                await self._write_quietly(snapshot(), started_at)

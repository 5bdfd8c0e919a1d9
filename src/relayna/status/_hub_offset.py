"""The status hub's committed stream offset, kept in the store.

Key (``prefix`` is the status store's)::

    {prefix}:hub:{name}:offset   hash {offset, updated_at_ms}, no TTL

``offset`` is the next stream offset to read: every status event before it is
stored (or was malformed and dropped). A hub writes it only after those
events' store writes returned, so resuming from it is at-least-once; the
events after it are read again and the store's dedupe markers drop the
copies.

Several hubs of one name (API replicas on one status stream) share the
record. Each commits what *it* has stored; the script keeps the highest value
(every event before it was stored by whoever committed it), so a hub that
lags never moves the record back.

A stream that is deleted and declared again starts at offset 0, and RabbitMQ
holds a consumer that asks for an offset past the end until the stream gets
there: delete the record with the stream (docs/status.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio

from relayna.errors import ConfigurationError, StoreConnectionError, StoreError
from relayna.status._event import validate_identifier
from relayna.status._hub_config import HubStatistics, StatusHubConfig
from relayna.transport import Script, Store, StreamOffset

__all__ = ["HUB_OFFSET_SCRIPT", "HubOffsets", "OffsetKeeper", "bounded_start"]

log = logging.getLogger("relayna.status.hub")

#: How long a stopping hub may spend committing its offset.
FINAL_COMMIT_TIMEOUT = 2.0

_COMMIT_LUA = """
-- KEYS: record   ARGV: offset, updated_at_ms
local current = tonumber(redis.call('HGET', KEYS[1], 'offset'))
if current and current >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'offset', ARGV[1], 'updated_at_ms', ARGV[2])
return 1
"""


#: Moves a hub's offset record forward, never back.
HUB_OFFSET_SCRIPT = Script(name="relayna.status.hub_offset", lua=_COMMIT_LUA)


class HubOffsets:
    """Read and commit one hub name's offset record."""

    def __init__(self, store: Store, prefix: str, name: str) -> None:
        self.store = store
        self.name = validate_identifier(name, "hub name")
        self.key = f"{prefix}:hub:{self.name}:offset"

    async def load(self) -> int | None:
        """The stored next offset, or ``None`` when there is none.

        Raises:
            StoreError: the store failed.
            ConfigurationError: the record holds something else than an
                offset (delete the key to start from the configured offset).
        """
        raw = await self.store.hget(self.key, "offset")
        if raw is None:
            return None
        if not raw.isdigit() or len(raw) > 20:
            raise ConfigurationError(
                f"hub offset record {self.key!r} holds {raw[:40]!r}, not a stream offset; "
                "delete the key to start from the configured offset"
            )
        return int(raw)

    async def commit(self, offset: int, *, updated_at_ms: int) -> bool:
        """Store ``offset`` unless the same or a higher one is stored.

        Returns whether the record changed.

        Raises:
            StoreError: the store failed (the record is unchanged).
        """
        result = await self.store.run_script(HUB_OFFSET_SCRIPT, [self.key], [offset, updated_at_ms])
        return bool(int(result))


def bounded_start(offset: StreamOffset | None, max_catch_up: float | None) -> StreamOffset | None:
    """``offset``, moved forward to ``max_catch_up`` seconds ago if it is older."""
    if max_catch_up is None or not (offset == "first" or isinstance(offset, datetime)):
        return offset
    earliest = datetime.now(UTC) - timedelta(seconds=max_catch_up)
    if not isinstance(offset, datetime):  # "first"
        return earliest
    aware = offset if offset.tzinfo is not None else offset.replace(tzinfo=UTC)
    return max(aware, earliest)


class OffsetKeeper:
    """A hub's offset record: where it starts, and committing as it goes.

    ``settled()`` is the hub's lowest unsettled stream offset (``None``
    before anything was settled). :meth:`run` commits it every
    ``offset_commit_interval`` seconds when it moved, and once more, shielded
    and bounded, when cancelled.
    """

    def __init__(
        self,
        offsets: HubOffsets,
        config: StatusHubConfig,
        stats: HubStatistics,
        settled: Callable[[], int | None],
    ) -> None:
        self.offsets = offsets
        self.config = config
        self.stats = stats
        self._settled = settled
        self._committed: int | None = None  # what the record holds, as far as known

    def start_offset(self) -> StreamOffset | None:
        """Where a hub whose name has no record starts."""
        start = bounded_start(self.config.offset, self.config.max_catch_up)
        log.info("status hub %r has no stored offset; starting at %r", self.offsets.name, start)
        return start

    async def load(self, backoff: Callable[[int], float]) -> int | None:
        """The stored offset (``None``: no record), retrying a lost store connection.

        Raises:
            StoreError: after ``start_attempts`` tries, or at once when it is
                not a connection failure.
            ConfigurationError: the record is not an offset.
        """
        attempt = 0
        while True:
            try:
                stored = await self.offsets.load()
                break
            except StoreConnectionError as exc:
                if attempt + 1 >= self.config.start_attempts:
                    raise
                log.warning("status hub: reading %s failed (%s); retrying", self.offsets.key, exc)
                await anyio.sleep(backoff(attempt))
                attempt += 1
        if stored is not None:
            self._committed = self.stats.resumed_from = stored
            log.info("status hub %r resumes at stream offset %d", self.offsets.name, stored)
        return stored

    async def run(self) -> None:
        """Commit now and then until cancelled, then once more."""
        try:
            while True:
                await anyio.sleep(self.config.offset_commit_interval)
                await self.commit()
        finally:
            with anyio.CancelScope(shield=True) as scope:
                scope.deadline = anyio.current_time() + FINAL_COMMIT_TIMEOUT
                await self.commit()

    async def commit(self) -> None:
        """Store the settled offset if it moved; a store failure is counted, logged once."""
        offset = self._settled()
        if offset is None or (self._committed is not None and offset <= self._committed):
            return
        try:
            await self.offsets.commit(offset, updated_at_ms=int(time.time() * 1000))
        except StoreError as exc:
            self.stats.offset_commit_failures += 1
            if self.stats.offset_commit_failures == 1:
                log.warning("status hub: committing offset %d failed: %s", offset, exc)
            return
        self._committed = offset
        self.stats.offset_commits += 1

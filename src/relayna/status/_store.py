"""The status store: history, latest, children, dedupe and pubsub on a Store.

Key families (``prefix`` defaults to ``relayna``)::

    {prefix}:history:{task_id}          list, newest first, LTRIM to max_history, TTL
    {prefix}:channel:{task_id}          pubsub channel (the SSE live path)
    {prefix}:event:{task_id}:{event_id} dedupe marker, TTL
    {prefix}:children:{parent_task_id}  set of child task ids, TTL

With ``cluster=True`` (the Redis Cluster layout, opt-in because it renames
keys) the task id is the key's hash tag, so a task's keys share one slot::

    {prefix}:history:{{task_id}}          {prefix}:channel:{{task_id}}
    {prefix}:event:{{task_id}}:{event_id} {prefix}:children:{{parent_task_id}}

and the channel is a *sharded* one (``SPUBLISH`` in the write script,
``SSUBSCRIBE`` in :meth:`StatusStore.subscribe`): on a cluster only the node
owning the task's slot carries its messages. A classic subscriber does not
hear sharded publishes, so processes of the two layouts must not be mixed.

Theory of operation: one write is one :class:`~relayna.transport.Script`
(the same Lua on Redis and on the memory store), so it is one atomic round
trip. The script checks the marker first and writes it *last*: a write that
fails part-way (a key of the wrong type, a server error) never leaves a
marker behind, so the hub's retry writes the event again instead of dropping
it as a duplicate. (The original wrote the marker with SET NX *before* a
separate pipeline, so a failed pipeline lost the event.)

The cluster layout cannot write a child's keys and its parent's children set
in one script (two tasks, two slots), nor the service event feed (the feed's
own slot). There a write is up to three script calls, in order: the task's
atomic script (history, channel, marker), then an idempotent ``SADD`` into the
parent's children set, then the feed append (deduplicated by its own marker).
The later calls are issued for duplicates too, and :meth:`StatusStore.write`
returns only after all of them: the hub acks an event only then, so a crash
or a store failure between two calls is repaired when the event is delivered
again (the task's script answers "duplicate", the other two are written).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import attrs

from relayna._validators import cluster_layout, key_prefix, positive
from relayna.errors import ConfigurationError, ContractError, StoreError
from relayna.observability import APPEND_FEED_SCRIPT, ServiceEventFeed, encode_status_feed_item
from relayna.status._event import EventDict, dumps_event, loads_stored, validate_identifier
from relayna.status._store_scripts import (
    ADD_CHILD_SCRIPT,
    SHARDED_WRITE_STATUS_SCRIPT,
    WRITE_STATUS_AND_FEED_SCRIPT,
    WRITE_STATUS_SCRIPT,
)
from relayna.transport import (
    Script,
    ShardedPubSub,
    Store,
    Subscription,
    Value,
    run_script_calls,
)

__all__ = [
    "ADD_CHILD_SCRIPT",
    "SHARDED_WRITE_STATUS_SCRIPT",
    "WRITE_STATUS_AND_FEED_SCRIPT",
    "WRITE_STATUS_SCRIPT",
    "StatusStore",
    "StatusStoreConfig",
]

log = logging.getLogger("relayna.status")

_Call = tuple[Script, list[str], list[Value]]


@attrs.frozen
class StatusStoreConfig:
    """Where and how long status data lives.

    Attributes:
        prefix: key prefix (the anchor's lifespan default ``relayna``).
        ttl_seconds: TTL of history, children and dedupe markers.
        max_history: history length kept per task (older entries are trimmed).
        cluster: the Redis Cluster key layout (each task id is its keys' hash
            tag; see the module docstring). Off by default: it changes every
            key name, so it is chosen per deployment (``docs/store.md``).
    """

    prefix: str = attrs.field(default="relayna", validator=key_prefix)
    ttl_seconds: float = attrs.field(default=86400.0, validator=positive)
    max_history: int = attrs.field(default=50, validator=positive)
    cluster: bool = attrs.field(default=False, validator=cluster_layout, kw_only=True)


class StatusStore:
    """Status history, latest status, children and the live channel of tasks.

    Works on any :class:`~relayna.transport.Store` (memory or Redis). Every
    ``task_id`` is validated before it is used in a key.
    """

    def __init__(
        self,
        store: Store,
        config: StatusStoreConfig | None = None,
        *,
        feed: ServiceEventFeed | None = None,
    ) -> None:
        self.store = store
        self.config = config or StatusStoreConfig()
        self.feed = feed
        self._cluster = self.config.cluster
        self._open, self._close = ("{", "}") if self._cluster else ("", "")
        self._script = (
            SHARDED_WRITE_STATUS_SCRIPT
            if self._cluster
            else WRITE_STATUS_SCRIPT
            if feed is None
            else WRITE_STATUS_AND_FEED_SCRIPT
        )
        self._bad_entries = 0
        self._ttl_ms = max(1, round(self.config.ttl_seconds * 1000))

    # -- keys ------------------------------------------------------------------

    def history_key(self, task_id: str) -> str:
        return self._history_key(validate_identifier(task_id))

    def channel(self, task_id: str) -> str:
        return self._channel(validate_identifier(task_id))

    def event_key(self, task_id: str, event_id: str) -> str:
        return self._event_key(
            validate_identifier(task_id), validate_identifier(event_id, "event_id")
        )

    # The key formats, for identifiers already validated (the write path
    # validates each once per event).
    def _history_key(self, task_id: str) -> str:
        return f"{self.config.prefix}:history:{self._open}{task_id}{self._close}"

    def _channel(self, task_id: str) -> str:
        return f"{self.config.prefix}:channel:{self._open}{task_id}{self._close}"

    def _event_key(self, task_id: str, event_id: str) -> str:
        return f"{self.config.prefix}:event:{self._open}{task_id}{self._close}:{event_id}"

    def children_key(self, parent_task_id: str) -> str:
        parent = validate_identifier(parent_task_id, "parent_task_id")
        return f"{self.config.prefix}:children:{self._open}{parent}{self._close}"

    def subscribe(self, task_id: str) -> AbstractAsyncContextManager[Subscription]:
        """Follow the task's live channel: sharded in the cluster layout, else classic.

        Raises:
            ContractError: invalid ``task_id``.
            ConfigurationError: the cluster layout on a store without sharded
                pubsub (it would never hear a status).
        """
        channel = self.channel(task_id)
        if not self._cluster:
            return self.store.subscribe(channel)
        if not isinstance(self.store, ShardedPubSub):
            raise ConfigurationError(
                "the cluster key layout publishes statuses on sharded channels, and "
                f"{type(self.store).__name__} has no sharded pubsub (spublish/ssubscribe)"
            )
        return self.store.ssubscribe(channel)

    @property
    def bad_entries(self) -> int:
        """Stored entries skipped on read because they were not valid events."""
        return self._bad_entries

    # -- writes ----------------------------------------------------------------

    async def prepare(self) -> None:
        """Load the write script into the server now (stores that cache
        scripts), so the first status write is one round trip, not three.

        Raises:
            StoreError: the store failed.
        """
        load = getattr(self.store, "load_script", None)
        if load is not None:
            await load(self._script)
            if self._cluster:
                await load(ADD_CHILD_SCRIPT)
                if self.feed is not None:
                    await load(APPEND_FEED_SCRIPT)

    async def write(self, event: Mapping[str, Any]) -> bool:
        """Store one event atomically; ``True`` if stored, ``False`` if a duplicate.

        ``event`` is a wire dict with a valid ``task_id`` and ``event_id``. A
        valid ``meta.parent_task_id`` different from ``task_id`` adds the task
        to the parent's children set.

        Raises:
            ContractError: invalid ``task_id`` / ``event_id``.
            StoreError: the store failed; nothing (in particular no dedupe
                marker) was written, so retrying is safe.
        """
        if self._cluster:
            first, *rest = self._cluster_calls(event)
            result = await self.store.run_script(*first)
            for call in rest:  # issued for a duplicate too: it may be a repair
                await self.store.run_script(*call)
            return bool(int(result))
        keys, args = self._script_call(event)
        result = await self.store.run_script(self._script, keys, args)
        return bool(int(result))

    async def write_many(self, events: Sequence[Mapping[str, Any]]) -> list[bool | StoreError]:
        """Store several events in one round trip (one script call each, in order).

        Each entry is what :meth:`write` would return for that event, or the
        :class:`StoreError` it failed with (nothing of that event was written).
        Stores without ``run_script_many`` get one ``run_script`` per event.

        Raises:
            ContractError: an invalid ``task_id`` / ``event_id`` (nothing sent).
            StoreError: the round trip failed; retrying every event is safe.
        """
        if self._cluster:
            return await self._write_many_cluster(events)
        calls = [self._script_call(event) for event in events]
        results = await run_script_calls(self.store, self._script, calls)
        return [r if isinstance(r, StoreError) else bool(int(r)) for r in results]

    async def _write_many_cluster(
        self, events: Sequence[Mapping[str, Any]]
    ) -> list[bool | StoreError]:
        """The cluster layout's batch: every task script, then the children and
        feed writes of the events whose task script succeeded (module docstring)."""
        plans = [self._cluster_calls(event) for event in events]
        firsts = await run_script_calls(
            self.store, self._script, [(keys, args) for (_s, keys, args), *_ in plans]
        )
        out: list[bool | StoreError] = [
            r if isinstance(r, StoreError) else bool(int(r)) for r in firsts
        ]
        for script in (ADD_CHILD_SCRIPT, APPEND_FEED_SCRIPT):
            owners: list[int] = []
            calls: list[tuple[list[str], list[Value]]] = []
            for i, plan in enumerate(plans):
                if isinstance(out[i], StoreError):
                    continue
                for s, keys, args in plan[1:]:
                    if s is script:
                        owners.append(i)
                        calls.append((keys, args))
            if calls:
                for i, result in zip(
                    owners, await run_script_calls(self.store, script, calls), strict=True
                ):
                    if isinstance(result, StoreError):
                        out[i] = result
        return out

    def _cluster_calls(self, event: Mapping[str, Any]) -> list[_Call]:
        """The task's script call, then its parent's children write and its
        feed append when it has them (each call's keys in one slot)."""
        task_id = validate_identifier(event.get("task_id"))
        event_id = validate_identifier(event.get("event_id"), "event_id")
        payload = dumps_event(event)
        calls: list[_Call] = [
            (
                self._script,
                [self._event_key(task_id, event_id), self._history_key(task_id)],
                [payload, self._ttl_ms, self.config.max_history, self._channel(task_id), task_id],
            )
        ]
        parent = self._parent(event, task_id)
        if parent is not None:
            calls.append((ADD_CHILD_SCRIPT, [self.children_key(parent)], [task_id, self._ttl_ms]))
        if self.feed is not None:
            item = encode_status_feed_item(event, payload)
            assert item is not None  # task_id and event_id were validated above
            calls.append((APPEND_FEED_SCRIPT, *self.feed.append_call(*item)))
        return calls

    @staticmethod
    def _parent(event: Mapping[str, Any], task_id: str) -> str | None:
        meta = event.get("meta")
        if meta:
            parent = meta.get("parent_task_id") if isinstance(meta, Mapping) else None
            if isinstance(parent, str) and parent != task_id:
                return parent
        return None

    def _script_call(self, event: Mapping[str, Any]) -> tuple[list[str], list[Value]]:
        task_id = validate_identifier(event.get("task_id"))
        event_id = validate_identifier(event.get("event_id"), "event_id")
        keys = [self._event_key(task_id, event_id), self._history_key(task_id)]
        parent = self._parent(event, task_id)
        if parent is not None:
            keys.append(self.children_key(parent))
        payload = dumps_event(event)
        args: list[Value] = [
            payload,
            self._ttl_ms,
            self.config.max_history,
            self._channel(task_id),
            task_id,
        ]
        if self.feed is not None:
            item = encode_status_feed_item(event, payload)
            assert item is not None  # task_id and event_id were validated above
            feed_keys, feed_args = self.feed.append_call(*item)
            args.append(b"1" if len(keys) == 3 else b"0")
            if len(keys) == 2:
                keys.append(keys[1])  # placeholder: no children key
            keys.extend(feed_keys)
            args.extend(feed_args)
        return keys, args

    # -- reads -----------------------------------------------------------------

    def _parse(self, raw: bytes, task_id: str) -> EventDict | None:
        try:
            event = loads_stored(raw)
        except ContractError as exc:
            self._bad_entries += 1
            log.warning("skipping a malformed status entry for task %s: %s", task_id, exc)
            return None
        return event

    async def history(self, task_id: str, limit: int | None = None) -> list[EventDict]:
        """The task's stored events, **newest first**, at most ``limit``."""
        stop = -1 if limit is None else max(limit, 0) - 1
        if stop == -1 and limit is not None:
            return []
        raw = await self.store.lrange(self.history_key(task_id), 0, stop)
        return [e for e in (self._parse(r, task_id) for r in raw) if e is not None]

    async def latest(self, task_id: str) -> EventDict | None:
        """The newest stored event of the task, or ``None``."""
        raw = await self.store.lindex(self.history_key(task_id), 0)
        return None if raw is None else self._parse(raw, task_id)

    async def children(self, parent_task_id: str, limit: int | None = None) -> list[str]:
        """Child task ids of ``parent_task_id``, sorted, at most ``limit``."""
        raw = await self.store.smembers(self.children_key(parent_task_id))
        members = sorted(m.decode() for m in raw)
        return members if limit is None else members[: max(limit, 0)]

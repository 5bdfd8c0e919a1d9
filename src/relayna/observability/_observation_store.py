"""The observation store: per-task observation history on a Store (memory or Redis).

Keys (``prefix`` defaults to ``relayna-observations``, as the original)::

    {prefix}:history:{task_id}         list, newest first, trimmed to history_maxlen, TTL
    {prefix}:event:{task_id}:{token}   dedupe marker, TTL; token = sha256 of the
                                       normalised event (sorted-key JSON)

With ``cluster=True`` (Redis Cluster, opt-in: it renames keys) the task id is
the hash tag (``{prefix}:history:{{task_id}}``, ``{prefix}:event:{{task_id}}:{token}``).
A batch then becomes one script call per task (one slot each, still one round
trip) and the feed entries of its stored observations one append each in the
feed's slot, issued after the task writes, for duplicates too (the feed's own
markers deduplicate them): a failure in between is repaired by the retry.

One write is one :class:`~relayna.transport.Script` (dedupe check, push, trim,
TTL, marker last, like the status store), so a failed write leaves no marker
and can be retried. :meth:`ObservationStore.write_many` sends many writes in
one round trip (the sink's batches). Entries that do not decode on read are
skipped and counted (:attr:`ObservationStore.bad_entries`), never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import orjson

from relayna._validators import cluster_layout, key_prefix, positive
from relayna.contracts import validate_identifier
from relayna.errors import ScriptError, StoreError
from relayna.observability._feed import APPEND_FEED_SCRIPT, ServiceEventFeed
from relayna.observability._observation_batch import WRITE_OBSERVATIONS_SCRIPT, batch_call
from relayna.observability._observation_codec import (
    EncodedObservation,
    encode_observation,
    encode_observation_feed_item,
    observation_record,
)
from relayna.observability._observations import Observation
from relayna.transport import Script, Store, Value, run_script_calls

__all__ = [
    "WRITE_OBSERVATION_SCRIPT",
    "ObservationStore",
    "ObservationStoreConfig",
    "observation_record",
]

log = logging.getLogger("relayna.observability")

_WRITE_LUA = """
-- KEYS: marker, history   ARGV: payload, ttl_ms, maxlen
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('TYPE', KEYS[2])['ok']
if t ~= 'none' and t ~= 'list' then return redis.error_reply('WRONGTYPE history key') end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
return 1
"""


#: The atomic observation write (see the module docstring).
WRITE_OBSERVATION_SCRIPT = Script(name="relayna.observations.write", lua=_WRITE_LUA)


@attrs.frozen
class ObservationStoreConfig:
    """Where observations live and for how long (the original's defaults);
    ``cluster`` selects the Redis Cluster key layout (module docstring)."""

    prefix: str = attrs.field(default="relayna-observations", validator=key_prefix)
    ttl_seconds: float = attrs.field(default=86400.0, validator=positive)
    history_maxlen: int = attrs.field(default=500, validator=positive)
    cluster: bool = attrs.field(default=False, validator=cluster_layout, kw_only=True)


class ObservationStore:
    """Observation history per task (reader and writer).

    Args:
        store: an open :class:`~relayna.transport.Store`.
        config: prefix, TTL and history length.
    """

    def __init__(self, store: Store, config: ObservationStoreConfig | None = None) -> None:
        self.store = store
        self.config = config or ObservationStoreConfig()
        self._ttl_ms = max(1, round(self.config.ttl_seconds * 1000))
        self.bad_entries = 0
        self.skipped_without_task = 0
        self._open, self._close = ("{", "}") if self.config.cluster else ("", "")

    def history_key(self, task_id: str) -> str:
        task = validate_identifier(task_id)
        return f"{self.config.prefix}:history:{self._open}{task}{self._close}"

    def _call(self, encoded: EncodedObservation) -> tuple[list[str], list[Value]]:
        prefix, token = self.config.prefix, encoded.token
        task = f"{self._open}{encoded.task_id}{self._close}"
        keys = [f"{prefix}:event:{task}:{token}", f"{prefix}:history:{task}"]
        return keys, [encoded.payload, self._ttl_ms, self.config.history_maxlen]

    async def write(self, event: Observation | Mapping[str, Any]) -> bool:
        """Store one observation; False when it is a duplicate or has no valid task id.

        Raises:
            StoreError: nothing (no marker) was written; retrying is safe.
        """
        encoded = encode_observation(event)
        if encoded is None:
            self.skipped_without_task += 1
            return False
        call = self._call(encoded)
        return bool(int(await self.store.run_script(WRITE_OBSERVATION_SCRIPT, *call)))

    async def write_many(
        self,
        events: Sequence[Observation | Mapping[str, Any]],
        *,
        feed: ServiceEventFeed | None = None,
    ) -> list[bool | StoreError]:
        """Store several observations with one script call (one round trip).

        With ``feed``, each stored observation is also appended to that service
        event feed by the same script (a duplicate goes to neither). Each
        observation is encoded once: the stored entry, its dedupe token and the
        feed item share the bytes. Entries without a valid task id are not sent
        (their result is False); an entry whose history key has the wrong type
        gets a StoreError (the others are stored).

        Raises:
            StoreError: the script failed (e.g. the feed key has the wrong
                type): nothing was stored, retrying every event is safe.
        """
        encoded: list[EncodedObservation] = []
        index: list[int | None] = []
        for event in events:
            one = encode_observation(event)
            if one is None:
                self.skipped_without_task += 1
                index.append(None)
            else:
                index.append(len(encoded))
                encoded.append(one)
        results: list[Any] = []
        if encoded and self.config.cluster:
            results = await self._write_cluster(encoded, feed)
        elif encoded:
            call = batch_call(
                self.config.prefix, self._ttl_ms, self.config.history_maxlen, encoded, feed
            )
            results = list(await self.store.run_script(WRITE_OBSERVATIONS_SCRIPT, *call))
        out: list[bool | StoreError] = []
        for i in index:
            if i is None:
                out.append(False)
            elif isinstance(results[i], StoreError):
                out.append(results[i])
            elif int(results[i]) < 0:
                out.append(ScriptError(f"WRONGTYPE history key of task {encoded[i].task_id}"))
            else:
                out.append(bool(int(results[i])))
        return out

    async def _write_cluster(
        self, encoded: list[EncodedObservation], feed: ServiceEventFeed | None
    ) -> list[Any]:
        """The cluster layout's batch: one batch call per task, then the feed
        appends of every observation not refused (module docstring). One
        result per observation: 1, 0, -1, or the StoreError of its call."""
        by_task: dict[str, list[int]] = {}
        for i, one in enumerate(encoded):
            by_task.setdefault(one.task_id, []).append(i)
        calls = [
            batch_call(
                self.config.prefix,
                self._ttl_ms,
                self.config.history_maxlen,
                [encoded[i] for i in members],
                None,
                cluster=True,
            )
            for members in by_task.values()
        ]
        replies = await run_script_calls(self.store, WRITE_OBSERVATIONS_SCRIPT, calls)
        results: list[Any] = [0] * len(encoded)
        for members, reply in zip(by_task.values(), replies, strict=True):
            for n, i in enumerate(members):
                results[i] = reply if isinstance(reply, StoreError) else int(reply[n])
        if feed is not None:
            # Duplicates too: the task write may have succeeded in an earlier
            # attempt whose feed append did not (the feed's markers dedupe).
            pending = [i for i, r in enumerate(results) if r in (0, 1)]
            appended = await run_script_calls(
                self.store,
                APPEND_FEED_SCRIPT,
                [feed.append_call(*encode_observation_feed_item(encoded[i])) for i in pending],
            )
            for i, reply in zip(pending, appended, strict=True):
                if isinstance(reply, StoreError):
                    results[i] = reply
        return results

    async def history(self, task_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The task's observations, newest first; undecodable entries are skipped and counted."""
        if limit is not None and limit <= 0:
            return []
        raw = await self.store.lrange(
            self.history_key(task_id), 0, -1 if limit is None else limit - 1
        )
        out: list[dict[str, Any]] = []
        for entry in raw:
            try:
                value = orjson.loads(entry)
            except orjson.JSONDecodeError:
                value = None
            if not isinstance(value, dict) or not isinstance(value.get("event_type"), str):
                self.bad_entries += 1
                log.warning("skipping an undecodable observation entry of task %s", task_id)
                continue
            out.append(value)
        return out

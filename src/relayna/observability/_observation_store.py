"""The observation store: per-task observation history on a Store (memory or Redis).

Keys (``prefix`` defaults to ``relayna-observations``, as the original)::

    {prefix}:history:{task_id}         list, newest first, trimmed to history_maxlen, TTL
    {prefix}:event:{task_id}:{token}   dedupe marker, TTL; token = sha256 of the
                                       normalised event (sorted-key JSON)

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

from relayna._validators import key_prefix, positive
from relayna.contracts import validate_identifier
from relayna.errors import ScriptError, StoreError
from relayna.observability._feed import ServiceEventFeed
from relayna.observability._observation_batch import WRITE_OBSERVATIONS_SCRIPT, batch_call
from relayna.observability._observation_codec import (
    EncodedObservation,
    encode_observation,
    observation_record,
)
from relayna.observability._observations import Observation
from relayna.transport import Script, Store, Value

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
    """Where observations live and for how long (the original's defaults)."""

    prefix: str = attrs.field(default="relayna-observations", validator=key_prefix)
    ttl_seconds: float = attrs.field(default=86400.0, validator=positive)
    history_maxlen: int = attrs.field(default=500, validator=positive)


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

    def history_key(self, task_id: str) -> str:
        return f"{self.config.prefix}:history:{validate_identifier(task_id)}"

    def _call(self, encoded: EncodedObservation) -> tuple[list[str], list[Value]]:
        prefix, task_id, token = self.config.prefix, encoded.task_id, encoded.token
        keys = [f"{prefix}:event:{task_id}:{token}", f"{prefix}:history:{task_id}"]
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
        if encoded:
            call = batch_call(
                self.config.prefix, self._ttl_ms, self.config.history_maxlen, encoded, feed
            )
            results = list(await self.store.run_script(WRITE_OBSERVATIONS_SCRIPT, *call))
        out: list[bool | StoreError] = []
        for i in index:
            if i is None:
                out.append(False)
            elif int(results[i]) < 0:
                out.append(ScriptError(f"WRONGTYPE history key of task {encoded[i].task_id}"))
            else:
                out.append(bool(int(results[i])))
        return out

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

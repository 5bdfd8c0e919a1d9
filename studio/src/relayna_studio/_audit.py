"""The audit log: who did what to which target, when, and how it ended.

Every mutating call (POST, PATCH, DELETE under ``/studio``) appends one
entry, whether it succeeded, failed or was refused (401/403), so attempts
are visible too. An entry::

    {"id": 42, "at": "2026-...Z", "actor": "ops-alice", "token_id": "9f...",
     "role": "admin", "action": "service.update", "target": "payments-api",
     "method": "PATCH", "path": "/studio/services/payments-api",
     "outcome": "success" | "failure" | "denied", "status_code": 200}

Keys (``{p}`` = ``RELAYNA_STUDIO_AUDIT_PREFIX``, default ``studio:audit``)::

    {p}:seq        counter (entry ids, monotonic across replicas)
    {p}:entries    sorted set, score = id, member = the entry JSON

One script appends (INCR + ZADD + trim to ``audit_maxlen``), so ids never
repeat and the log never grows past its bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from relayna.contracts import dumps, loads
from relayna.errors import ContractError
from relayna.transport import Script, Store

__all__ = ["APPEND_SCRIPT", "AuditLog"]

_APPEND_LUA = """
-- KEYS: seq, entries   ARGV: entry JSON without id (ends with '}'), maxlen
local id = redis.call('INCR', KEYS[1])
local entry = '{"id":' .. id .. ',' .. string.sub(ARGV[1], 2)
redis.call('ZADD', KEYS[2], id, entry)
local n = redis.call('ZCARD', KEYS[2])
local maxlen = tonumber(ARGV[2])
if n > maxlen then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - maxlen - 1) end
return id
"""


APPEND_SCRIPT = Script(name="relayna_studio.audit.append", lua=_APPEND_LUA)

#: Entries examined per page at most when filters are given (bounded work).
_SCAN_LIMIT = 5000


class AuditLog:
    def __init__(self, store: Store, prefix: str = "studio:audit", maxlen: int = 100_000) -> None:
        self.store = store
        self.prefix = prefix
        self.maxlen = maxlen

    async def append(self, entry: Mapping[str, Any]) -> int:
        """Append one entry (``at`` is added); returns its id."""
        body = {"at": datetime.now(UTC).isoformat().replace("+00:00", "Z"), **entry}
        result = await self.store.run_script(
            APPEND_SCRIPT,
            [f"{self.prefix}:seq", f"{self.prefix}:entries"],
            [dumps(body), self.maxlen],
        )
        return int(result)

    async def page(
        self,
        *,
        limit: int,
        before: int | None,
        filters: Mapping[str, str],
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Newest first, ids below ``before``; ``(items, next_cursor)``.

        With filters (exact match on ``actor``, ``action``, ``target``,
        ``outcome``), at most 5,000 entries are examined per call; the cursor
        then continues where the scan stopped.
        """
        key = f"{self.prefix}:entries"
        top = float("inf") if before is None else before - 1
        items: list[dict[str, Any]] = []
        scanned = 0
        last_id: int | None = None
        while len(items) < limit and scanned < _SCAN_LIMIT:
            chunk = min(max(limit * 2, 50), _SCAN_LIMIT - scanned)
            raws = await self.store.zrangebyscore(key, 0, top, count=chunk, desc=True)
            if not raws:
                return items, None
            for raw in raws:
                scanned += 1
                try:
                    entry = loads(raw)
                except ContractError:
                    continue
                if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
                    continue
                last_id = entry["id"]
                top = last_id - 1
                if all(entry.get(k) == v for k, v in filters.items()):
                    items.append(entry)
                    if len(items) == limit:
                        break
            if len(raws) < chunk:
                return items, None if len(items) < limit else last_id
        return items, last_id

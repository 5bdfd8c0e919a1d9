"""The service registry on a relayna store (Redis or memory).

Keys (``{p}`` = ``RELAYNA_STUDIO_REGISTRY_PREFIX``, default ``studio:services``)::

    {p}:by-id:{service_id}                    string, the record JSON
    {p}:all                                   set of service ids
    {p}:by-env-url:{environment}:{base_url}   string, the owning service id

Theory of operation: each mutation is **one script** (Lua on Redis, a Python
twin on the memory store), so uniqueness needs no roll-back dance:

* create checks both keys and writes all three, or writes nothing;
* update and delete are compare-and-set on the record bytes read before:
  the script answers ``changed`` when another writer got there first and
  the caller re-reads and tries again (bounded), so two concurrent updates
  never lose one another's fields and the env+url index always follows the
  record it belongs to.

An env+url key whose owner has no record any more (left behind by the
original's non-atomic create) does not block a new owner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from relayna.contracts import dumps, loads
from relayna.errors import ContractError
from relayna.transport import Script, Store
from relayna_studio._errors import RegistryConflict, ServiceNotFound

__all__ = ["CREATE_SCRIPT", "DELETE_SCRIPT", "REPLACE_SCRIPT", "Registry"]

log = logging.getLogger("relayna_studio.registry")

_CREATE_LUA = """
-- KEYS: by-id, by-env-url, all   ARGV: record, service_id, prefix
if redis.call('EXISTS', KEYS[1]) == 1 then return 'service_id' end
local owner = redis.call('GET', KEYS[2])
if owner and redis.call('EXISTS', ARGV[3] .. ':by-id:' .. owner) == 1 then
  return 'base_url'
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[2])
return 'ok'
"""


_REPLACE_LUA = """
-- KEYS: by-id, old by-env-url, new by-env-url   ARGV: expected, record, service_id, prefix
local current = redis.call('GET', KEYS[1])
if not current then return 'missing' end
if current ~= ARGV[1] then return 'changed' end
if KEYS[2] ~= KEYS[3] then
  local owner = redis.call('GET', KEYS[3])
  if owner and owner ~= ARGV[3] and redis.call('EXISTS', ARGV[4] .. ':by-id:' .. owner) == 1 then
    return 'base_url'
  end
  if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
  redis.call('SET', KEYS[3], ARGV[3])
end
redis.call('SET', KEYS[1], ARGV[2])
return 'ok'
"""


_DELETE_LUA = """
-- KEYS: by-id, by-env-url, all   ARGV: expected, service_id
local current = redis.call('GET', KEYS[1])
if not current then return 'missing' end
if current ~= ARGV[1] then return 'changed' end
redis.call('DEL', KEYS[1])
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
redis.call('SREM', KEYS[3], ARGV[2])
return 'ok'
"""


CREATE_SCRIPT = Script(name="relayna_studio.registry.create", lua=_CREATE_LUA)
REPLACE_SCRIPT = Script(name="relayna_studio.registry.replace", lua=_REPLACE_LUA)
DELETE_SCRIPT = Script(name="relayna_studio.registry.delete", lua=_DELETE_LUA)

#: Compare-and-set retries before an update gives up (each retry means
#: another writer changed the record in between).
_CAS_ATTEMPTS = 32
#: cached records per replica (the cache is emptied when full)
_CACHE_MAX = 10_000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Registry:
    """Create, read, update and delete service records (see the module docs)."""

    def __init__(self, store: Store, prefix: str = "studio:services") -> None:
        self.store = store
        self.prefix = prefix
        self.bad_records = 0
        # service id -> (monotonic time read, record): see cached()
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._writes = 0  # a read that overlapped one of this replica's writes is not kept

    def id_key(self, service_id: str) -> str:
        return f"{self.prefix}:by-id:{service_id}"

    @property
    def all_key(self) -> str:
        return f"{self.prefix}:all"

    def env_url_key(self, record: Mapping[str, Any]) -> str:
        return f"{self.prefix}:by-env-url:{record['environment']}:{record['base_url']}"

    def _decode(self, raw: bytes, service_id: str) -> dict[str, Any] | None:
        try:
            value = loads(raw)
        except ContractError as exc:
            value = exc
        if not isinstance(value, dict) or value.get("service_id") != service_id:
            self.bad_records += 1
            log.warning("skipping an unreadable registry record for %r", service_id)
            return None
        return value

    async def create(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Store a new record.

        Raises:
            RegistryConflict: the id, or the (environment, base URL) pair, is taken.
        """
        service_id = record["service_id"]
        self._forget(service_id)
        result = await self.store.run_script(
            CREATE_SCRIPT,
            [self.id_key(service_id), self.env_url_key(record), self.all_key],
            [dumps(dict(record)), service_id, self.prefix],
        )
        outcome = _text(result)
        if outcome == "service_id":
            raise RegistryConflict(f"service {service_id!r} already exists", field="service_id")
        if outcome == "base_url":
            raise RegistryConflict(
                f"another service in environment {record['environment']!r} already uses "
                f"{record['base_url']}",
                field="base_url",
            )
        return dict(record)

    async def _read(self, service_id: str) -> tuple[bytes, dict[str, Any]] | None:
        raw = await self.store.get(self.id_key(service_id))
        if raw is None:
            return None
        record = self._decode(raw, service_id)
        return None if record is None else (raw, record)

    async def get(self, service_id: str) -> dict[str, Any] | None:
        found = await self._read(service_id)
        return None if found is None else found[1]

    async def cached(self, service_id: str, max_age: float | None) -> dict[str, Any] | None:
        """The record as read at most ``max_age`` seconds ago (a copy), for the
        federation hot path: one store round trip less per federated call.

        This replica's own writes drop the entry at once; another replica's
        writes are seen within ``max_age``. ``None`` reads the store every time.
        A missing service is never cached.
        """
        if max_age is None:
            return await self.get(service_id)
        now = time.monotonic()
        hit = self._cache.get(service_id)
        if hit is not None and now - hit[0] < max_age:
            return dict(hit[1])
        writes = self._writes
        record = await self.get(service_id)
        if record is None or writes != self._writes:
            return record
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[service_id] = (now, record)
        return dict(record)

    def _forget(self, service_id: str) -> None:
        self._writes += 1
        self._cache.pop(service_id, None)

    async def require(self, service_id: str) -> dict[str, Any]:
        record = await self.get(service_id)
        if record is None:
            raise ServiceNotFound(service_id)
        return record

    async def ids(self) -> list[str]:
        return sorted(m.decode() for m in await self.store.smembers(self.all_key))

    async def list(self) -> list[dict[str, Any]]:
        """Every readable record (unreadable ones are skipped and counted)."""
        ids = await self.ids()
        if not ids:
            return []
        raws = await self.store.mget([self.id_key(i) for i in ids])
        out = []
        for service_id, raw in zip(ids, raws, strict=True):
            if raw is not None:
                record = self._decode(raw, service_id)
                if record is not None:
                    out.append(record)
        return out

    async def update(
        self, service_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Apply ``change(record) -> new record`` atomically; returns (old, new).

        ``change`` may raise (e.g. a validation error); it is re-run when
        another writer changed the record in between.

        Raises:
            ServiceNotFound: no such service (or it was deleted meanwhile).
            RegistryConflict: the new (environment, base URL) pair is taken.
        """
        self._forget(service_id)
        for _ in range(_CAS_ATTEMPTS):
            found = await self._read(service_id)
            if found is None:
                raise ServiceNotFound(service_id)
            raw, record = found
            new = change(dict(record))
            result = await self.store.run_script(
                REPLACE_SCRIPT,
                [self.id_key(service_id), self.env_url_key(record), self.env_url_key(new)],
                [raw, dumps(new), service_id, self.prefix],
            )
            outcome = _text(result)
            if outcome == "ok":
                self._forget(service_id)
                return record, new
            if outcome == "missing":
                raise ServiceNotFound(service_id)
            if outcome == "base_url":
                raise RegistryConflict(
                    f"another service in environment {new['environment']!r} already uses "
                    f"{new['base_url']}",
                    field="base_url",
                )
        raise RegistryConflict(
            f"service {service_id!r} changed {_CAS_ATTEMPTS} times during the update; try again",
            field="service_id",
        )

    async def delete(self, service_id: str) -> dict[str, Any]:
        """Delete the record and its index entries; returns the deleted record.

        Raises:
            ServiceNotFound: no such service.
        """
        self._forget(service_id)
        for _ in range(_CAS_ATTEMPTS):
            found = await self._read(service_id)
            if found is None:
                raise ServiceNotFound(service_id)
            raw, record = found
            result = await self.store.run_script(
                DELETE_SCRIPT,
                [self.id_key(service_id), self.env_url_key(record), self.all_key],
                [raw, service_id],
            )
            outcome = _text(result)
            if outcome == "ok":
                self._forget(service_id)
                return record
            if outcome == "missing":
                raise ServiceNotFound(service_id)
        raise RegistryConflict(
            f"service {service_id!r} kept changing during the delete; try again",
            field="service_id",
        )

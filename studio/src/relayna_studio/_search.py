"""The task search index: documents upserted from new events, queried with a plan, pruned.

A task document (ANCHOR §3.5)::

    {service_id, service_name, environment, task_id, correlation_id, status,
     stage, first_seen_at, last_seen_at, latest_event_type, latest_event_at,
     latest_ingested_at, detail_path, expires_at, source}

Writes: for a batch of new events, the affected documents are read once,
merged in Python (first/last seen span every event, the newest event sets
the latest type, and status and stage come from the newest event whose
payload carries them — ``status_at``/``stage_at`` remember when), and
written with a compare-and-set script that also moves the document between
filter sets; a document changed meanwhile (another replica) is merged again.

Queries: :data:`~relayna_studio._search_scripts.QUERY_SCRIPT` walks the
smallest per-filter time index newest first on the server, checking the
other filters' sets, and returns the newest ids; documents are
then loaded, expired ones dropped (and deleted), and the page cut after the
cursor ``{last_seen_at, service_id, task_id}`` (URL-safe base64 JSON).

**Cluster layout** (``cluster=True``): one index per service, each under the
prefix ``{p}:{service_id}`` (the service id is the hash tag, so a document
write, a delete and a query filtered by ``service_id`` touch one slot), plus
``{p}:task:services`` in the prefix's own slot (``{studio:search}:task:services``):
the services that have an index, added *before* the service's documents
are written (an idempotent ``SADD``), so every written document is reachable.
A query without ``service_id`` runs the query script on every service's
index (one pipelined round trip per node) and merges: see
:mod:`relayna_studio._search_query`, which keeps pages and cursors the same
as the default layout's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from relayna.contracts import dumps
from relayna.transport import Store, check_cluster_prefix, hash_tag
from relayna_studio._event_model import fixed_time
from relayna_studio._search_keys import FILTER_FIELDS, SearchKeys, document_id
from relayna_studio._search_query import (
    Page,
    decode_search_cursor,
    encode_search_cursor,
    search_scopes,
)
from relayna_studio._search_query import ms as _ms
from relayna_studio._search_scripts import DELETE_DOC_SCRIPT, PUT_DOC_SCRIPT
from relayna_studio._timefmt import load_object, now_utc, parse_time

__all__ = ["TaskIndex", "decode_search_cursor", "encode_search_cursor"]

Arg = bytes | str | int | float
Call = tuple[list[str], list[Arg]]


def merge(
    doc: Mapping[str, Any] | None,
    events: Sequence[Mapping[str, Any]],
    record: Mapping[str, Any],
    *,
    now: datetime,
    ttl_seconds: float,
) -> dict[str, Any]:
    """The task document after ``events`` (pure)."""
    first = dict(doc) if doc else {}
    sid, tid = str(record["service_id"]), str(events[0]["task_id"])
    out: dict[str, Any] = {
        "service_id": sid,
        "service_name": record.get("name"),
        "environment": record.get("environment"),
        "task_id": tid,
        "correlation_id": first.get("correlation_id"),
        "status": first.get("status"),
        "stage": first.get("stage"),
        "first_seen_at": first.get("first_seen_at"),
        "last_seen_at": first.get("last_seen_at"),
        "latest_event_type": first.get("latest_event_type"),
        "latest_event_at": first.get("latest_event_at"),
        "latest_ingested_at": first.get("latest_ingested_at"),
        "detail_path": f"/studio/tasks/{sid}/{tid}",
        "expires_at": fixed_time(now + timedelta(seconds=max(60.0, ttl_seconds))),
        "source": "event_store",
        # when status/stage were last set: the newest event carrying each wins,
        # whatever order batches arrive in
        "status_at": first.get("status_at"),
        "stage_at": first.get("stage_at"),
    }
    for event in sorted(events, key=lambda e: str(e.get("timestamp") or e.get("ingested_at"))):
        stamp = str(event.get("timestamp") or event.get("ingested_at"))
        ingested = str(event.get("ingested_at") or stamp)
        if out["first_seen_at"] is None or stamp < out["first_seen_at"]:
            out["first_seen_at"] = stamp
        if out["last_seen_at"] is None or stamp > out["last_seen_at"]:
            out["last_seen_at"] = stamp
        if out["latest_ingested_at"] is None or ingested > out["latest_ingested_at"]:
            out["latest_ingested_at"] = ingested
        if out["correlation_id"] is None and event.get("correlation_id") not in (None, tid):
            out["correlation_id"] = event.get("correlation_id")
        if out["latest_event_at"] is None or stamp >= out["latest_event_at"]:
            out["latest_event_at"] = stamp
            out["latest_event_type"] = event.get("event_type")
        payload = event.get("payload")
        if isinstance(payload, Mapping):
            for field in ("status", "stage"):
                value = payload.get(field)
                at = out[f"{field}_at"]
                if isinstance(value, str) and 0 < len(value) <= 200 and (at is None or stamp >= at):
                    out[field] = value
                    out[f"{field}_at"] = stamp
    return out


def _filter_keys(keys: SearchKeys, doc: Mapping[str, Any]) -> list[str]:
    return [keys.filter(f, str(doc[f])) for f in FILTER_FIELDS if doc.get(f) is not None]


def _time_keys(keys: SearchKeys, doc: Mapping[str, Any]) -> list[str]:
    return [keys.filter_by_time(f, str(doc[f])) for f in FILTER_FIELDS if doc.get(f) is not None]


class TaskIndex:
    def __init__(
        self,
        store: Store,
        prefix: str = "studio:search",
        ttl_seconds: float = 86400.0,
        *,
        cluster: bool = False,
    ):
        self.store = store
        self.keys = SearchKeys(prefix)
        self.ttl_seconds = ttl_seconds
        self.cluster = cluster
        if cluster:
            check_cluster_prefix(prefix)

    def keys_for(self, service_id: str) -> SearchKeys:
        """The keys of ``service_id``'s documents: the one index in the default
        layout, the service's own index (``{p}:{service_id}``) in the cluster layout.

        Raises:
            ContractError: cluster layout and ``service_id`` has braces.
        """
        if not self.cluster:
            return self.keys
        return SearchKeys(f"{self.keys.prefix}:{hash_tag(service_id)}")

    @property
    def services_key(self) -> str:
        """Cluster layout: the set of service ids that have an index."""
        return f"{{{self.keys.prefix}}}:task:services"

    async def scopes(self) -> list[SearchKeys]:
        """Every index: one in the default layout, one per service in the cluster layout."""
        if not self.cluster:
            return [self.keys]
        members = sorted(m.decode() for m in await self.store.smembers(self.services_key))
        return [self.keys_for(sid) for sid in members]

    def _decode(self, raw: bytes | None) -> dict[str, Any] | None:
        value = load_object(raw)
        return value if value is not None and "service_id" in value else None

    async def upsert(self, record: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> int:
        """Fold new events of one service into their task documents; returns documents written."""
        sid = str(record["service_id"])
        keys = self.keys_for(sid)
        by_task: dict[str, list[Mapping[str, Any]]] = {}
        for event in events:
            by_task.setdefault(str(event["task_id"]), []).append(event)
        pending = {document_id(sid, tid): evs for tid, evs in by_task.items()}
        if self.cluster and pending:
            # first, so a document written below is always reachable by a fan-out query
            await self.store.sadd(self.services_key, sid)
        written = 0
        for _ in range(8):
            if not pending:
                break
            ids = list(pending)
            raws = await self.store.mget([keys.doc(i) for i in ids])
            now = now_utc()
            calls: list[Call] = []
            for docid, raw in zip(ids, raws, strict=True):
                old = self._decode(raw)
                new = merge(old, pending[docid], record, now=now, ttl_seconds=self.ttl_seconds)
                old_filters = _filter_keys(keys, old) if old else []
                new_filters = _filter_keys(keys, new)
                call_keys = [
                    keys.doc(docid),
                    keys.all,
                    keys.service(new["service_id"]),
                    keys.by_last_seen,
                    keys.expiry,
                    *old_filters,
                    *new_filters,
                    *(_time_keys(keys, old) if old else []),
                    *_time_keys(keys, new),
                ]
                seen = parse_time(new["last_seen_at"])
                expires = parse_time(new["expires_at"])
                args: list[Arg] = [
                    raw or b"",
                    dumps(new),
                    docid,
                    _ms(seen),
                    _ms(expires),
                    len(old_filters),
                    len(new_filters),
                ]
                calls.append((call_keys, args))
            results = await self.store.run_script_many(PUT_DOC_SCRIPT, calls)
            retry = {}
            for docid, result in zip(ids, results, strict=True):
                if isinstance(result, Exception):
                    raise result
                if int(result) == 1:
                    written += 1
                else:
                    retry[docid] = pending[docid]
            pending = retry
        return written

    async def delete_docs(
        self,
        docids: Sequence[str],
        expected: Sequence[bytes] | None = None,
        *,
        keys: SearchKeys | None = None,
    ) -> int:
        """Delete documents of one index (``keys``: the default layout's by default)."""
        if not docids:
            return 0
        keys = keys or self.keys
        raws = await self.store.mget([keys.doc(i) for i in docids])
        calls: list[Call] = []
        for i, (docid, raw) in enumerate(zip(docids, raws, strict=True)):
            doc = self._decode(raw)
            service = keys.service(str(doc["service_id"])) if doc else keys.service("?")
            sets = _filter_keys(keys, doc) if doc else []
            call_keys = [
                keys.doc(docid),
                keys.all,
                service,
                keys.by_last_seen,
                keys.expiry,
                *sets,
                *(_time_keys(keys, doc) if doc else []),
            ]
            calls.append((call_keys, [docid, expected[i] if expected else b"", len(sets)]))
        results = await self.store.run_script_many(DELETE_DOC_SCRIPT, calls)
        return sum(1 for r in results if not isinstance(r, Exception) and int(r) == 1)

    async def remove_service(self, service_id: str) -> int:
        keys = self.keys_for(service_id)
        members = [m.decode() for m in await self.store.smembers(keys.service(service_id))]
        removed = 0
        for i in range(0, len(members), 500):
            removed += await self.delete_docs(members[i : i + 500], keys=keys)
        await self.store.delete(keys.service(service_id))
        if self.cluster:
            await self.store.srem(self.services_key, service_id)
        return removed

    async def prune(self, *, now: datetime | None = None, batch: int = 500) -> int:
        """Delete every expired document (the retention job)."""
        now_ms = _ms(now or now_utc())
        removed = 0
        for keys in await self.scopes():
            while True:
                ids = await self.store.zrangebyscore(
                    keys.expiry, float("-inf"), now_ms, count=batch
                )
                if not ids:
                    break
                removed += await self.delete_docs([i.decode() for i in ids], keys=keys)
                if len(ids) < batch:
                    break
        return removed

    async def is_empty(self) -> bool:
        for keys in await self.scopes():
            if await self.store.zcard(keys.by_last_seen) > 0:
                return False
        return True

    async def _scopes_for(self, filters: Mapping[str, str]) -> list[SearchKeys]:
        if not self.cluster or "service_id" not in filters:
            return await self.scopes()
        sid = filters["service_id"]
        # a service id with braces has no index in this layout (registration refuses it)
        return [] if "{" in sid or "}" in sid or not sid else [self.keys_for(sid)]

    async def search(
        self,
        filters: Mapping[str, str],
        *,
        time_from: datetime | None,
        time_to: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> Page:
        """One page of task documents, newest first, and the next page's cursor.

        Raises:
            ContractError: ``cursor`` is not a cursor of this search.
        """
        after = decode_search_cursor(cursor) if cursor else None
        return await search_scopes(
            self,
            await self._scopes_for(filters),
            filters,
            time_from=time_from,
            time_to=time_to,
            limit=limit,
            after=after,
        )

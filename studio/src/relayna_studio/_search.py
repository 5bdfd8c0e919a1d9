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
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson

from relayna.contracts import dumps
from relayna.errors import ContractError
from relayna.transport import Store
from relayna_studio._event_model import fixed_time
from relayna_studio._search_keys import FILTER_FIELDS, SearchKeys, document_id
from relayna_studio._search_scripts import DELETE_DOC_SCRIPT, PUT_DOC_SCRIPT, QUERY_SCRIPT
from relayna_studio._timefmt import load_object, now_utc, parse_time, parse_time_or_none

__all__ = ["TaskIndex", "decode_search_cursor", "encode_search_cursor"]

Arg = bytes | str | int | float
Call = tuple[list[str], list[Arg]]


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def encode_search_cursor(doc: Mapping[str, Any]) -> str:
    raw = orjson.dumps(
        {
            "last_seen_at": doc["last_seen_at"],
            "service_id": doc["service_id"],
            "task_id": doc["task_id"],
        }
    )
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_search_cursor(text: str) -> tuple[int, str, str]:
    """``(last_seen ms, service_id, task_id)``.

    Raises:
        ContractError: not a cursor of this index.
    """
    try:
        data = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        seen = parse_time(data["last_seen_at"], "cursor")
        sid, tid = data["service_id"], data["task_id"]
        if not isinstance(sid, str) or not isinstance(tid, str):
            raise TypeError
    except (binascii.Error, ValueError, TypeError, KeyError, orjson.JSONDecodeError, ContractError):
        raise ContractError(
            "invalid cursor", errors=[("cursor", "not a cursor of this search")]
        ) from None
    return _ms(seen), sid, tid


def _order(doc: Mapping[str, Any]) -> tuple[int, str, str]:
    seen = parse_time_or_none(doc.get("last_seen_at"))
    return (-(_ms(seen) if seen else 0), str(doc.get("service_id")), str(doc.get("task_id")))


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
    def __init__(self, store: Store, prefix: str = "studio:search", ttl_seconds: float = 86400.0):
        self.store = store
        self.keys = SearchKeys(prefix)
        self.ttl_seconds = ttl_seconds

    def _decode(self, raw: bytes | None) -> dict[str, Any] | None:
        value = load_object(raw)
        return value if value is not None and "service_id" in value else None

    async def upsert(self, record: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> int:
        """Fold new events of one service into their task documents; returns documents written."""
        by_task: dict[str, list[Mapping[str, Any]]] = {}
        for event in events:
            by_task.setdefault(str(event["task_id"]), []).append(event)
        pending = {document_id(str(record["service_id"]), tid): evs for tid, evs in by_task.items()}
        written = 0
        for _ in range(8):
            if not pending:
                break
            ids = list(pending)
            raws = await self.store.mget([self.keys.doc(i) for i in ids])
            now = now_utc()
            calls: list[Call] = []
            for docid, raw in zip(ids, raws, strict=True):
                old = self._decode(raw)
                new = merge(old, pending[docid], record, now=now, ttl_seconds=self.ttl_seconds)
                old_filters = _filter_keys(self.keys, old) if old else []
                new_filters = _filter_keys(self.keys, new)
                keys = [
                    self.keys.doc(docid),
                    self.keys.all,
                    self.keys.service(new["service_id"]),
                    self.keys.by_last_seen,
                    self.keys.expiry,
                    *old_filters,
                    *new_filters,
                    *(_time_keys(self.keys, old) if old else []),
                    *_time_keys(self.keys, new),
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
                calls.append((keys, args))
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
        self, docids: Sequence[str], expected: Sequence[bytes] | None = None
    ) -> int:
        if not docids:
            return 0
        raws = await self.store.mget([self.keys.doc(i) for i in docids])
        calls: list[Call] = []
        for i, (docid, raw) in enumerate(zip(docids, raws, strict=True)):
            doc = self._decode(raw)
            service = self.keys.service(str(doc["service_id"])) if doc else self.keys.service("?")
            sets = _filter_keys(self.keys, doc) if doc else []
            keys = [
                self.keys.doc(docid),
                self.keys.all,
                service,
                self.keys.by_last_seen,
                self.keys.expiry,
                *sets,
                *(_time_keys(self.keys, doc) if doc else []),
            ]
            calls.append((keys, [docid, expected[i] if expected else b"", len(sets)]))
        results = await self.store.run_script_many(DELETE_DOC_SCRIPT, calls)
        return sum(1 for r in results if not isinstance(r, Exception) and int(r) == 1)

    async def remove_service(self, service_id: str) -> int:
        members = [m.decode() for m in await self.store.smembers(self.keys.service(service_id))]
        removed = 0
        for i in range(0, len(members), 500):
            removed += await self.delete_docs(members[i : i + 500])
        await self.store.delete(self.keys.service(service_id))
        return removed

    async def prune(self, *, now: datetime | None = None, batch: int = 500) -> int:
        """Delete every expired document (the retention job)."""
        now_ms = _ms(now or now_utc())
        removed = 0
        while True:
            ids = await self.store.zrangebyscore(
                self.keys.expiry, float("-inf"), now_ms, count=batch
            )
            if not ids:
                return removed
            removed += await self.delete_docs([i.decode() for i in ids])
            if len(ids) < batch:
                return removed

    async def is_empty(self) -> bool:
        return await self.store.zcard(self.keys.by_last_seen) == 0

    async def search(
        self,
        filters: Mapping[str, str],
        *,
        time_from: datetime | None,
        time_to: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        after = decode_search_cursor(cursor) if cursor else None
        hi: float = _ms(time_to) if time_to else float("inf")
        if after is not None:
            hi = min(hi, after[0])
        lo: float = _ms(time_from) if time_from else float("-inf")
        keys = [self.keys.by_last_seen]
        for field, value in sorted(filters.items()):
            keys += [self.keys.filter(field, value), self.keys.filter_by_time(field, value)]
        need = limit + 1
        now = now_utc()
        for _ in range(6):
            reply = await self.store.run_script(
                QUERY_SCRIPT,
                keys,
                [
                    "+inf" if hi == float("inf") else str(int(hi)),
                    "-inf" if lo == float("-inf") else str(int(lo)),
                    need,
                ],
            )
            ids = [reply[i].decode() for i in range(0, len(reply), 2)]
            raws = await self.store.mget([self.keys.doc(i) for i in ids]) if ids else []
            docs, expired = [], []
            for docid, raw in zip(ids, raws, strict=True):
                doc = self._decode(raw)
                if doc is None:
                    continue
                expires = parse_time_or_none(doc.get("expires_at"))
                if expires is not None and expires <= now:
                    expired.append((docid, raw or b""))
                    continue
                if any(doc.get(f) != v for f, v in filters.items()):
                    continue
                docs.append(doc)
            if expired:
                await self.delete_docs([d for d, _ in expired], [r for _, r in expired])
            docs.sort(key=_order)
            if after is not None:
                mark = (-after[0], after[1], after[2])
                docs = [d for d in docs if _order(d) > mark]
            if len(docs) > limit or len(ids) < need:
                page = docs[:limit]
                more = len(docs) > limit
                return page, encode_search_cursor(page[-1]) if more and page else None
            need *= 4
        page = docs[:limit]
        return page, encode_search_cursor(page[-1]) if page else None

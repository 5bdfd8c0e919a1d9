"""One page of a task search over one or several indexes, merged by (time, ids).

The default layout has one index; the cluster layout has one per service
(:class:`~relayna_studio._search.TaskIndex`), and a search without
``service_id`` asks each of them. Both go through :func:`search_scopes`, so a
page and its cursor are the same in both layouts for the same documents.

Theory of operation: every index answers the query script with its newest
``need`` matching ids *and every further id at the score of the last one*
(a millisecond shared by several tasks is never cut in two), newest first.
An id an index did not return is therefore strictly older than the oldest
one it did return (its *floor*). Documents are loaded, expired ones deleted,
the rest sorted by ``(-last_seen ms, service_id, task_id)`` and cut after
the cursor. Documents are read in that order (the order is known from
the ids and scores alone), only as many as the page needs: a search over
``n`` indexes reads about ``limit + 1`` documents, not ``n`` times that.
The page (``limit`` documents plus one to know whether there is
more) is exact when every index that was not exhausted has its floor at or
below the page's last document: nothing unseen can come before it.
Otherwise ``need`` grows fourfold and the round repeats (at most six rounds).

Costs in the cluster layout: ``n`` services mean ``n`` query script calls
(one pipeline per node, one round trip) and up to ``n`` reads of the page's
documents (run concurrently); a query filtered by ``service_id`` stays one call.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from relayna.errors import ContractError
from relayna_studio._search_keys import SearchKeys
from relayna_studio._search_scripts import QUERY_SCRIPT
from relayna_studio._timefmt import now_utc, parse_time, parse_time_or_none

if TYPE_CHECKING:
    from relayna_studio._search import TaskIndex

__all__ = ["Page", "decode_search_cursor", "encode_search_cursor", "ms", "order", "search_scopes"]

Page = tuple[list[dict[str, Any]], str | None]

#: Rounds of a search before it returns what it has (each asks for 4x more).
_ROUNDS = 6


def ms(value: datetime) -> int:
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
    return ms(seen), sid, tid


def order(doc: Mapping[str, Any]) -> tuple[int, str, str]:
    """The result order: newest first, then service id, then task id."""
    seen = parse_time_or_none(doc.get("last_seen_at"))
    return (-(ms(seen) if seen else 0), str(doc.get("service_id")), str(doc.get("task_id")))


def _query_keys(keys: SearchKeys, filters: Mapping[str, str]) -> list[str]:
    out = [keys.by_last_seen]
    for field, value in sorted(filters.items()):
        out += [keys.filter(field, value), keys.filter_by_time(field, value)]
    return out


async def _load(
    index: TaskIndex,
    keys: SearchKeys,
    ids: list[str],
    filters: Mapping[str, str],
    now: datetime,
) -> list[dict[str, Any]]:
    """The live documents of ``ids`` matching ``filters``; expired ones are deleted."""
    raws = await index.store.mget([keys.doc(i) for i in ids]) if ids else []
    docs, expired = [], []
    for docid, raw in zip(ids, raws, strict=True):
        doc = index._decode(raw)
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
        await index.delete_docs([d for d, _ in expired], [r for _, r in expired], keys=keys)
    return docs


async def _load_all(
    index: TaskIndex,
    parts: list[tuple[SearchKeys, list[str]]],
    filters: Mapping[str, str],
    now: datetime,
) -> list[dict[str, Any]]:
    """:func:`_load` for each index, concurrently (one read per index: one slot each)."""
    found: list[list[dict[str, Any]]] = [[] for _ in parts]

    async def one(i: int) -> None:
        keys, ids = parts[i]
        found[i] = await _load(index, keys, ids, filters, now)

    async with anyio.create_task_group() as tg:
        for i in range(len(parts)):
            tg.start_soon(one, i)
    return [doc for part in found for doc in part]


def _candidate(docid: str, score: bytes) -> tuple[int, str, str]:
    """A query reply's id in the result order, before its document is read: the
    document id is the service and task id (see ``document_id``)."""
    seen = -int(float(score))
    try:
        data = orjson.loads(base64.urlsafe_b64decode(docid + "=" * (-len(docid) % 4)))
        return seen, str(data["service_id"]), str(data["task_id"])
    except (binascii.Error, ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        return seen, "", docid  # not an id this index writes: read it all the same


async def search_scopes(
    index: TaskIndex,
    scopes: list[SearchKeys],
    filters: Mapping[str, str],
    *,
    time_from: datetime | None,
    time_to: datetime | None,
    limit: int,
    after: tuple[int, str, str] | None,
) -> Page:
    """One page over ``scopes`` (see the module docs)."""
    hi: float = ms(time_to) if time_to else float("inf")
    if after is not None:
        hi = min(hi, after[0])
    lo: float = ms(time_from) if time_from else float("-inf")
    bounds = [
        "+inf" if hi == float("inf") else str(int(hi)),
        "-inf" if lo == float("-inf") else str(int(lo)),
    ]
    mark = None if after is None else (-after[0], after[1], after[2])
    need = limit + 1
    now = now_utc()
    docs: list[dict[str, Any]] = []
    for _ in range(_ROUNDS):
        args: list[str | int] = [*bounds, need]
        calls = [(_query_keys(keys, filters), args) for keys in scopes]
        replies = await index.store.run_script_many(QUERY_SCRIPT, calls) if calls else []
        floor: float | None = None  # the highest floor of an index not exhausted
        candidates: list[tuple[tuple[int, str, str], int, str]] = []
        for i, reply in enumerate(replies):
            if isinstance(reply, Exception):
                raise reply
            for j in range(0, len(reply), 2):
                docid = reply[j].decode()
                candidates.append((_candidate(docid, reply[j + 1]), i, docid))
            if len(reply) >= 2 * need:
                lowest = float(reply[-1])
                floor = lowest if floor is None else max(floor, lowest)
        candidates.sort()
        if mark is not None:
            candidates = [c for c in candidates if c[0] > mark]
        # read documents in result order, only as many as the page needs
        docs, pos = [], 0
        while len(docs) <= limit and pos < len(candidates):
            chunk = candidates[pos : pos + limit + 1 - len(docs)]
            pos += len(chunk)
            parts = [(keys, [d for _, i, d in chunk if i == n]) for n, keys in enumerate(scopes)]
            docs += await _load_all(index, [p for p in parts if p[1]], filters, now)
        docs.sort(key=order)
        if mark is not None:
            docs = [d for d in docs if order(d) > mark]
        if floor is None or (len(docs) > limit and -order(docs[limit])[0] >= floor):
            page = docs[:limit]
            more = len(docs) > limit
            return page, encode_search_cursor(page[-1]) if more and page else None
        need *= 4
    page = docs[:limit]
    return page, encode_search_cursor(page[-1]) if page else None

"""``ServiceEventFeed.read_json`` (the page ``GET /events/feed`` serves, spliced from
the stored bytes) answers exactly what ``read().to_dict()`` encodes, whatever the
feed list holds: relayna's own entries, other JSON objects, and entries that are
not JSON objects at all (skipped and counted by both)."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayna.observability import ServiceEventFeed, ServiceEventFeedConfig
from relayna.transport import open_store

pytestmark = pytest.mark.anyio

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
_objects = st.dictionaries(st.text(max_size=8), _json, max_size=4).map(orjson.dumps)
_entries = st.one_of(
    _objects,
    _objects.map(lambda b: b" " + b + b"\n"),  # JSON objects with whitespace around them
    st.dictionaries(st.just("cursor"), _json, min_size=1).map(orjson.dumps),  # its own cursor
    st.just(b"{}"),
    _json.filter(lambda v: not isinstance(v, dict)).map(orjson.dumps),  # JSON, not an object
    st.binary(max_size=12),  # not JSON (or, rarely, a JSON scalar)
    st.sampled_from([b"{not json}", b'{"a":1', b'{"a":1}}', b"{\xff}", b"", b"[{}]"]),
)


def status(n: int) -> dict[str, Any]:
    return {"task_id": "t", "event_id": f"e{n}", "status": "running", "meta": {"x": [n]}}


async def _check_same_page(url: str, entries: list[bytes], after: int | None, limit: int) -> None:
    async with open_store(url) as store:
        prefix = f"fj-{uuid.uuid4().hex[:12]}"
        feed = ServiceEventFeed(store, ServiceEventFeedConfig(prefix=prefix, feed_maxlen=50))
        try:
            assert await feed.append_statuses([status(1)]) == [1]
            if entries:
                await store.rpush(f"{prefix}:feed", *entries)
                await store.incr(f"{prefix}:feed:seq", len(entries))
            epoch = (await feed.read(limit=1)).next_cursor.split("-")[0]  # type: ignore[union-attr]
            cursor = None if after is None else f"{epoch}-{min(after, len(entries) + 1)}"
            body = await feed.read_json(cursor, limit)
            bad = feed.bad_entries
            expected = (await feed.read(cursor, limit)).to_dict()
            assert orjson.loads(body) == expected
            assert feed.bad_entries == 2 * bad  # both skipped the same entries
            assert list(orjson.loads(body)) == list(expected)  # the same key order
        finally:
            await store.delete(
                *(f"{prefix}:{k}" for k in ("feed", "feed:seq", "feed:epoch", "event:status:t:e1"))
            )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=st.lists(_entries, max_size=12),
    after=st.one_of(st.none(), st.integers(0, 14)),
    limit=st.integers(1, 20),
)
async def test_read_json_is_read_encoded_on_the_memory_store(
    entries: list[bytes], after: int | None, limit: int
) -> None:
    with anyio.fail_after(10):
        await _check_same_page("memory://", entries, after, limit)


async def test_read_json_is_read_encoded_on_redis(redis_url: str) -> None:
    entries = [
        orjson.dumps({"task_id": "x", "payload": {"n": 1}}),
        b' {"a": [1, 2]}\n',
        b"{}",
        b'{"cursor": "theirs", "k": 1}',
        b"[1]",
        b"{not json}",
        b"\xff\xfe",
        b"42",
    ]
    with anyio.fail_after(10):
        await _check_same_page(redis_url, entries, None, 20)
        await _check_same_page(redis_url, entries, 3, 4)

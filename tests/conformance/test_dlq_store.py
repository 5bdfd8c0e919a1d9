"""DLQStore on the memory store and the real Redis (native client), asyncio and trio.

The same scenarios run on both (the memory store runs the same Lua), so both are
held to one behaviour; the Hypothesis model test compares listings with a
plain-Python model after random inserts, replays, expiries and deletes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _dlq_records import T0, dlq_record  # tests/ is on sys.path (rootdir conftest)
from relayna.dlq import Cursor, DLQQuery, DLQStore, DLQStoreConfig
from relayna.errors import DLQConflict
from relayna.transport import Store, open_store

pytestmark = pytest.mark.anyio

COMBOS = [
    pytest.param(("memory", "asyncio"), id="memory-asyncio"),
    pytest.param(("memory", "trio"), id="memory-trio"),
    pytest.param(("redis", "asyncio"), id="redis-asyncio", marks=pytest.mark.redis),
    pytest.param(("redis", "trio"), id="redis-trio", marks=pytest.mark.redis),
]


@pytest.fixture(params=COMBOS)
def combo(request: pytest.FixtureRequest) -> tuple[str, str]:
    kind, backend = request.param
    return str(kind), str(backend)


@pytest.fixture
def anyio_backend(combo: tuple[str, str]) -> str:
    return combo[1]


@pytest.fixture
async def store(combo: tuple[str, str], request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    url = "memory://" if combo[0] == "memory" else request.getfixturevalue("redis_url")
    async with open_store(url) as opened:
        yield opened


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now.timestamp()


def rec(n: int, *, age: float = 0.0, now: datetime = T0, **changes: Any) -> Any:
    return dlq_record(n, age=age, now=now, **changes)


def dlq(store: Store, unique: str, clock: Clock | None = None, **config: Any) -> DLQStore:
    return DLQStore(
        store, DLQStoreConfig(prefix=f"relayna-test:{unique}", **config), clock=clock or Clock()
    )


async def all_pages(s: DLQStore, query: DLQQuery | None = None, limit: int = 2) -> list[str]:
    ids: list[str] = []
    cursor = None
    for _ in range(1000):
        page = await s.list_records(query, cursor=cursor, limit=limit)
        assert len(page.records) <= limit
        ids += [r.dlq_id for r in page.records]
        if page.next_cursor is None:
            return ids
        cursor = Cursor.parse(page.next_cursor)
    raise AssertionError("paging did not end")


async def test_add_is_idempotent_per_dlq_id(store: Store, unique: str) -> None:
    s = dlq(store, unique)
    record = rec(1)
    with anyio.fail_after(10):
        assert await s.add(record) is True
        assert await s.add(rec(1, age=5)) is False  # the same facts, recorded again
        assert [r.dlq_id for r in (await s.list_records()).records] == [record.dlq_id]
        counts = await s.queue_counts()
    assert [(c.queue_name, c.indexed_count) for c in counts] == [("orders.dlq", 1)]
    assert counts[0].last_indexed_at == T0


async def test_listing_is_newest_first_with_stable_cursors_under_inserts(
    store: Store, unique: str
) -> None:
    s = dlq(store, unique)
    with anyio.fail_after(15):
        for n in range(6):
            await s.add(rec(n, age=10 * n))
        first = await s.list_records(limit=3)
        assert [r.task_id for r in first.records] == ["t0", "t1", "t2"]
        assert first.next_cursor is not None
        # newer records arrive while the client pages: nothing repeats, nothing is skipped
        await s.add(rec(100, age=-5))
        await s.add(rec(101, age=15))  # lands between t1 and t2: already passed
        second = await s.list_records(cursor=Cursor.parse(first.next_cursor), limit=3)
        assert [r.task_id for r in second.records] == ["t3", "t4", "t5"]
        assert second.next_cursor is None


async def test_equal_times_are_ordered_by_id_and_never_lost(store: Store, unique: str) -> None:
    s = dlq(store, unique)
    with anyio.fail_after(15):
        records = [rec(n) for n in range(7)]  # all dead-lettered at the same ms
        for r in records:
            await s.add(r)
        ids = await all_pages(s, limit=2)
    assert ids == sorted((r.dlq_id for r in records), reverse=True)


async def test_filters_intersect(store: Store, unique: str) -> None:
    s = dlq(store, unique)
    with anyio.fail_after(15):
        await s.add(rec(1, reason="decode_error", queue_name="a.dlq", source_queue_name="a"))
        await s.add(rec(2, age=2, reason="decode_error", queue_name="b.dlq", source_queue_name="b"))
        await s.add(
            rec(3, age=3, reason="handler_error", queue_name="a.dlq", source_queue_name="a")
        )
        await s.add(rec(4, task_id="t1", queue_name="a.dlq", source_queue_name="a", age=1))
        assert await tasks(s, DLQQuery(reason="decode_error")) == ["t1", "t2"]
        assert await tasks(s, DLQQuery(reason="decode_error", queue_name="a.dlq")) == ["t1"]
        assert await tasks(s, DLQQuery(task_id="t1")) == ["t1", "t1"]
        assert await tasks(s, DLQQuery(task_id="t1", source_queue_name="b")) == []
        assert await tasks(s, DLQQuery(service_name="nobody")) == []
        assert await tasks(s, DLQQuery(error_type="ValueError", worker_id="w")) == []


async def tasks(s: DLQStore, query: DLQQuery) -> list[str | None]:
    return [r.task_id for r in (await s.list_records(query)).records]


async def test_time_window_filters(store: Store, unique: str) -> None:
    s = dlq(store, unique)
    with anyio.fail_after(15):
        for n in range(5):
            await s.add(rec(n, age=60 * n))
        window = DLQQuery(
            failed_from=T0 - timedelta(seconds=150), failed_to=T0 - timedelta(seconds=60)
        )
        assert await tasks(s, window) == ["t1", "t2"]
        page = await s.list_records(window, limit=1)
        assert page.next_cursor is not None
        rest = await s.list_records(window, cursor=Cursor.parse(page.next_cursor), limit=5)
        assert [r.task_id for r in rest.records] == ["t2"]


async def test_ttl_expires_records_and_their_index_entries(store: Store, unique: str) -> None:
    clock = Clock()
    s = dlq(store, unique, clock, ttl_seconds=100)
    with anyio.fail_after(15):
        old = rec(1, age=90)
        await s.add(old)
        await s.add(rec(2, age=10))
        assert await s.add(rec(3, age=200)) is False  # already past its TTL: not stored
        assert await tasks(s, DLQQuery(queue_name="orders.dlq")) == ["t2", "t1"]
        clock.now = T0 + timedelta(seconds=20)  # t1 is now 110 s old
        assert await tasks(s, DLQQuery(queue_name="orders.dlq")) == ["t2"]
        assert await s.get(old.dlq_id) is None
        assert [c.indexed_count for c in await s.queue_counts()] == [1]
        clock.now = T0 + timedelta(seconds=200)
        assert await s.queue_counts() == []
        assert (await s.list_records()).records == []


async def test_dangling_ids_are_skipped_and_cleaned(store: Store, unique: str) -> None:
    s = dlq(store, unique)
    with anyio.fail_after(15):
        gone, kept = rec(1), rec(2, age=1)
        await s.add(gone)
        await s.add(kept)
        await store.delete(s.keys.record(gone.dlq_id))  # as if Redis evicted it
        assert await tasks(s, DLQQuery(reason="handler_error")) == ["t2"]
        assert await store.zscore(s.keys.index("reason", "handler_error"), gone.dlq_id) is None
        assert await store.zscore(s.keys.records, gone.dlq_id) is None


async def test_retention_cap_evicts_the_oldest_with_their_indexes(
    store: Store, unique: str
) -> None:
    s = dlq(store, unique, max_records=3)
    with anyio.fail_after(15):
        for n in range(5):
            await s.add(rec(n, age=100 - n))  # t4 is the newest
        assert await tasks(s, DLQQuery()) == ["t4", "t3", "t2"]
        assert await store.zcard(s.keys.index("reason", "handler_error")) == 3
        assert await store.zcard(s.keys.index("state", "dead_lettered")) == 3


async def test_replay_claim_protocol(store: Store, unique: str) -> None:
    s = dlq(store, unique)
    record = rec(1)
    with anyio.fail_after(15):
        await s.add(record)
        assert await s.claim("missing", kind="replay", force=False, target="q") is None
        claim = await s.claim(record.dlq_id, kind="replay", force=False, target="orders.retry")
        assert claim is not None
        assert claim.record.state == "replaying"
        assert claim.record.body == record.body
        assert await tasks(s, DLQQuery(state="replaying")) == ["t1"]
        assert await tasks(s, DLQQuery(state="dead_lettered")) == []
        with pytest.raises(DLQConflict) as busy:
            await s.claim(record.dlq_id, kind="replay", force=True, target="x")
        assert busy.value.code == "in_progress"
        with pytest.raises(DLQConflict):
            await s.delete(record.dlq_id)
        assert await s.finish(record.dlq_id, claim.token, target="orders.retry") == "done"
        done = await s.get(record.dlq_id)
        assert done is not None
        assert (done.state, done.replay_count, done.replay_target_queue_name) == (
            "replayed",
            1,
            "orders.retry",
        )
        assert await tasks(s, DLQQuery(state="replayed")) == ["t1"]
        with pytest.raises(DLQConflict) as again:
            await s.claim(record.dlq_id, kind="replay", force=False, target="orders.retry")
        assert again.value.code == "already_replayed"
        forced = await s.claim(record.dlq_id, kind="replay", force=True, target="orders")
        assert forced is not None
        await s.abort(record.dlq_id, forced.token, unknown=False)
        still = await s.get(record.dlq_id)
        assert still is not None
        assert still.state == "dead_lettered"
        assert still.replay_count == 1


async def test_a_replay_that_died_mid_publish_is_resolved_as_unconfirmed(
    store: Store, unique: str
) -> None:
    s = dlq(store, unique, lock_seconds=0.3, publish_timeout=0.1)
    record = rec(1)
    with anyio.fail_after(15):
        await s.add(record)
        claim = await s.claim(record.dlq_id, kind="replay", force=False, target="orders.retry")
        assert claim is not None
        # ... the process dies here: no finish, no abort. While the lock lives:
        seen = await s.get(record.dlq_id)
        assert seen is not None
        assert seen.state == "replaying"
        # the lock's own PX expiry: no event to wait for; polled under the ceiling
        while await store.exists(s.keys.lock(record.dlq_id)):  # noqa: ASYNC110
            await anyio.sleep(0.05)
        seen = await s.get(record.dlq_id)
        assert seen is not None
        assert seen.state == "dead_lettered"
        assert seen.unconfirmed_republish is not None
        assert seen.unconfirmed_republish["kind"] == "replay"
        assert seen.unconfirmed_republish["target_queue"] == "orders.retry"
        assert await tasks(s, DLQQuery(state="dead_lettered")) == ["t1"]
        with pytest.raises(DLQConflict) as refused:
            await s.claim(record.dlq_id, kind="replay", force=False, target="orders.retry")
        assert refused.value.code == "unconfirmed_republish"
        # the late process finishing after all still records the replay
        assert await s.finish(record.dlq_id, claim.token, target="orders.retry") == "done"
        done = await s.get(record.dlq_id)
        assert done is not None
        assert done.state == "replayed"
        assert done.unconfirmed_republish is None


async def test_investigation_moves_between_indexes(store: Store, unique: str) -> None:
    s = dlq(store, unique)
    record = rec(1)
    with anyio.fail_after(15):
        await s.add(record)
        assert await s.set_investigation("nope", investigated=True) is False
        assert await s.set_investigation(record.dlq_id, investigated=True, by="ana", note="n")
        got = await s.get(record.dlq_id)
        assert got is not None
        assert (got.investigation_status, got.investigated_by, got.investigation_note) == (
            "investigated",
            "ana",
            "n",
        )
        assert got.investigated_at == T0
        assert await tasks(s, DLQQuery(investigation_status="investigated")) == ["t1"]
        assert await tasks(s, DLQQuery(investigation_status="unreviewed")) == []
        assert await s.set_investigation(record.dlq_id, investigated=False)
        got = await s.get(record.dlq_id)
        assert got is not None
        assert got.investigated_by is None
        assert got.investigated_at is None
        assert await tasks(s, DLQQuery(investigation_status="unreviewed")) == ["t1"]


async def test_delete_removes_every_index_entry(store: Store, unique: str) -> None:
    s = dlq(store, unique)
    record = rec(1)
    with anyio.fail_after(15):
        await s.add(record)
        assert await s.delete(record.dlq_id) is True
        assert await s.delete(record.dlq_id) is False
        for field, value in (
            ("reason", "handler_error"),
            ("task", "t1"),
            ("state", "dead_lettered"),
        ):
            assert await store.zcard(s.keys.index(field, value)) == 0
        assert await store.zcard(s.keys.records) == 0
        assert await s.queue_counts() == []


async def test_binary_and_large_bodies(store: Store, unique: str) -> None:
    s = dlq(store, unique, max_body_bytes=4096)
    with anyio.fail_after(15):
        binary = rec(1, body=b"\xff\x00\xfe" * 10)
        huge = rec(2, body=b"x" * 5000)
        await s.add(binary)
        await s.add(huge)
        got = await s.get(binary.dlq_id)
        assert got is not None
        assert got.body == binary.body
        assert got.body_encoding == "base64"
        big = await s.get(huge.dlq_id)
        assert big is not None
        assert big.body is None
        assert big.body_omitted == "too_large"
        assert big.body_size == 5000


# -- the model test ---------------------------------------------------------------

QUEUES = ("a.dlq", "b.dlq")
REASONS = ("handler_error", "decode_error")

op = st.one_of(
    st.tuples(
        st.just("add"),
        st.integers(0, 3),  # task
        st.sampled_from(QUEUES),
        st.sampled_from(REASONS),
        st.integers(0, 300),  # age, s
    ),
    st.tuples(st.just("replay"), st.integers(0, 30)),
    st.tuples(st.just("investigate"), st.integers(0, 30)),
    st.tuples(st.just("delete"), st.integers(0, 30)),
    st.tuples(st.just("advance"), st.integers(1, 120)),
)
queries = st.builds(
    DLQQuery,
    queue_name=st.none() | st.sampled_from(QUEUES),
    reason=st.none() | st.sampled_from(REASONS),
    task_id=st.none() | st.sampled_from(["t0", "t1", "t2", "t3"]),
    state=st.none() | st.sampled_from(["dead_lettered", "replayed"]),
    investigation_status=st.none() | st.sampled_from(["unreviewed", "investigated"]),
)


def matches(row: dict[str, Any], query: DLQQuery) -> bool:
    checks = {
        "queue_name": query.queue_name,
        "reason": query.reason,
        "task_id": query.task_id,
        "state": query.state,
        "investigation_status": query.investigation_status,
    }
    return all(v is None or row[k] == v for k, v in checks.items())


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(op, max_size=25), query_list=st.lists(queries, min_size=1, max_size=3),
       limit=st.integers(1, 4))  # fmt: skip
async def test_listings_match_a_model(
    store: Store, unique: str, ops: list[Any], query_list: list[DLQQuery], limit: int
) -> None:
    import uuid

    clock = Clock()
    s = dlq(store, f"{unique}:{uuid.uuid4().hex[:8]}", clock, ttl_seconds=400)
    model: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    with anyio.fail_after(30):
        for i, step in enumerate(ops):
            kind = step[0]
            if kind == "add":
                _, task, queue, reason, age = step
                record = rec(i, age=age, now=clock.now, task_id=f"t{task}", queue_name=queue,
                             reason=reason)  # fmt: skip
                stored = await s.add(record)
                live = age < 400
                assert stored is live
                if live:
                    model[record.dlq_id] = {
                        "task_id": f"t{task}", "queue_name": queue, "reason": reason,
                        "state": "dead_lettered", "investigation_status": "unreviewed",
                        "score": int(record.dead_lettered_at.timestamp() * 1000),
                    }  # fmt: skip
                    order.append(record.dlq_id)
            elif kind == "advance":
                clock.now += timedelta(seconds=step[1])
            elif order:
                dlq_id = order[step[1] % len(order)]
                if kind == "replay":
                    claim = await s.claim(dlq_id, kind="replay", force=True, target="q")
                    if claim is not None:
                        assert await s.finish(dlq_id, claim.token, target="q") == "done"
                        model[dlq_id]["state"] = "replayed"
                elif kind == "investigate":
                    if await s.set_investigation(dlq_id, investigated=True):
                        model[dlq_id]["investigation_status"] = "investigated"
                else:
                    await s.delete(dlq_id)
                    model.pop(dlq_id, None)
            cutoff = int(clock.now.timestamp() * 1000) - 400_000
            for dlq_id in [d for d, row in model.items() if row["score"] < cutoff]:
                del model[dlq_id]
        for query in query_list:
            expected = sorted(
                (d for d, row in model.items() if matches(row, query)),
                key=lambda d: (model[d]["score"], d),
                reverse=True,
            )
            assert await all_pages(s, query, limit=limit) == expected
        counts = {c.queue_name: c.indexed_count for c in await s.queue_counts()}
        expected_counts: dict[str, int] = {}
        for row in model.values():
            expected_counts[row["queue_name"]] = expected_counts.get(row["queue_name"], 0) + 1
        assert counts == expected_counts


# -- listed records are the stored records --------------------------------------

change = st.one_of(
    st.tuples(st.just("replay"), st.integers(0, 2), st.sampled_from(["finish", "abort", "lost"])),
    st.tuples(st.just("retry"), st.integers(0, 2), st.sampled_from(["", "ops"])),
    st.tuples(st.just("investigate"), st.integers(0, 2), st.booleans()),
    st.tuples(st.just("crash"), st.integers(0, 2), st.sampled_from(["replay", "retry"])),
    st.tuples(st.just("delete"), st.integers(0, 2)),
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=st.lists(change, max_size=12))
async def test_listed_records_equal_the_stored_ones(
    store: Store, unique: str, changes: list[Any]
) -> None:
    """A listing reads a record's state in fewer fields than ``get`` (the ones a
    change sets): whatever happened to a record, both give the same record."""
    import uuid

    s = dlq(store, f"{unique}:{uuid.uuid4().hex[:8]}")
    records = [rec(n, age=n) for n in range(3)]
    with anyio.fail_after(30):
        for r in records:
            await s.add(r)
        for step in changes:
            dlq_id = records[step[1]].dlq_id
            kind = step[0]
            if kind == "delete":
                await s.delete(dlq_id)
            elif kind == "investigate":
                await s.set_investigation(dlq_id, investigated=step[2], by="ana", note="a\nnote")
            else:
                what = "retry" if kind == "retry" else "replay"
                if kind == "crash":
                    what = step[2]
                claim = await s.claim(dlq_id, kind=what, force=True, target="orders.retry")
                if claim is None:
                    continue
                if kind == "crash":  # the process died mid-publish and its lock expired
                    await store.delete(s.keys.lock(dlq_id))
                elif kind == "retry":
                    by = step[2] or None
                    await s.finish(dlq_id, claim.token, target="orders", retried_by=by, note=by)
                elif step[2] == "finish":
                    await s.finish(dlq_id, claim.token, target="orders.retry")
                else:
                    await s.abort(dlq_id, claim.token, unknown=step[2] == "lost")
        listed = (await s.list_records(limit=50)).records
        for record in listed:
            stored = await s.get(record.dlq_id)
            assert stored is not None
            assert attrs.evolve(stored, body=None) == record
        for state in ("dead_lettered", "replaying", "replayed"):
            page = await s.list_records(DLQQuery(state=state), limit=50)
            assert [r.dlq_id for r in page.records] == [
                r.dlq_id for r in listed if r.state == state
            ]

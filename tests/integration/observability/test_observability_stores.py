"""Observation store, service event feed and the batching sink, on the memory
store and on the real Redis, both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from relayna.errors import ContractError, StoreError
from relayna.observability import (
    ObservationPump,
    ObservationStore,
    ObservationStoreConfig,
    ObservationStoreSink,
    ServiceEventFeed,
    ServiceEventFeedConfig,
    TaskMessageReceived,
    observation_record,
    observation_token,
    parse_feed_cursor,
)
from relayna.status import StatusStore, StatusStoreConfig
from relayna.transport import Store, open_store

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[Store]:
    async with open_store(url) as store:
        yield store


def received(task: str, attempt: int = 0, **extra: Any) -> TaskMessageReceived:
    return TaskMessageReceived(
        consumer_name="w", queue_name="q", task_id=task, retry_attempt=attempt, **extra
    )


async def test_observation_store_dedupes_trims_and_expires(store_url: str, unique: str) -> None:
    with anyio.fail_after(10):
        async with opened(store_url) as store:
            obs = ObservationStore(
                store,
                ObservationStoreConfig(prefix=f"o-{unique}", ttl_seconds=100, history_maxlen=3),
            )
            events = [received("t1", n) for n in range(5)]
            assert await obs.write(events[0]) is True
            assert await obs.write(events[0]) is False  # the same event again
            results = await obs.write_many([*events[1:], received("t2"), events[1]])
            assert results == [True, True, True, True, True, False]
            history = await obs.history("t1")
            assert [h["retry_attempt"] for h in history] == [4, 3, 2]  # newest first, trimmed
            assert history[0]["event_type"] == "TaskMessageReceived"
            assert history[0]["timestamp"].endswith("+00:00")
            assert [h["retry_attempt"] for h in await obs.history("t1", limit=1)] == [4]
            ttl = await store.ttl(obs.history_key("t1"))
            assert ttl is not None
            assert 90 < ttl <= 100
            # no task id: not stored, counted
            assert await obs.write(TaskMessageReceived(consumer_name="w", queue_name="q")) is False
            assert obs.skipped_without_task == 1


async def test_undecodable_observations_are_skipped_and_counted(
    store_url: str, unique: str
) -> None:
    with anyio.fail_after(10):
        async with opened(store_url) as store:
            obs = ObservationStore(store, ObservationStoreConfig(prefix=f"o-{unique}"))
            await obs.write(received("t1"))
            await store.lpush(obs.history_key("t1"), b"\xff\xfe", b"[1,2]", b'{"no":"type"}')
            history = await obs.history("t1")
            assert [h["event_type"] for h in history] == ["TaskMessageReceived"]
            assert obs.bad_entries == 3


def status(task: str, n: int) -> dict[str, Any]:
    return {
        "task_id": task,
        "event_id": f"e{n}",
        "status": "Running",
        "timestamp": "2026-01-01T00:00:00+00:00",
        "meta": {"parent_task_id": "p"},
    }


async def test_feed_pages_oldest_first_across_trims(store_url: str, unique: str) -> None:
    with anyio.fail_after(10):
        async with opened(store_url) as store:
            feed = ServiceEventFeed(
                store, ServiceEventFeedConfig(prefix=f"f-{unique}", feed_maxlen=5)
            )
            empty = await feed.read()
            assert (empty.items, empty.next_cursor, empty.reset) == ([], None, False)
            assert await feed.append_statuses([status("a", 1), status("a", 2)]) == [1, 2]
            assert await feed.append_statuses([status("a", 2)]) == [0]  # duplicate
            page = await feed.read(limit=1)
            assert [i["event_id"] for i in page.items] == ["e1"]
            assert page.items[0]["event_type"] == "status.running"
            assert page.items[0]["parent_task_id"] == "p"
            assert page.has_more is True
            first_cursor = page.next_cursor
            assert first_cursor is not None
            page = await feed.read(first_cursor)
            assert [i["event_id"] for i in page.items] == ["e2"]
            assert (page.reset, page.has_more) == (False, False)
            tail = page.next_cursor
            assert tail is not None
            # nothing new: the same cursor comes back
            again = await feed.read(tail)
            assert (again.items, again.next_cursor, again.reset) == ([], tail, False)
            # 10 more: the feed keeps the newest 5 (seq 8..12); e1's cursor fell off
            await feed.append_statuses([status("b", n) for n in range(10)])
            page = await feed.read(first_cursor, limit=3)
            assert page.reset is True
            assert page.skipped == 6  # seq 2..7 were trimmed before they were read
            assert [i["event_id"] for i in page.items] == ["e5", "e6", "e7"]
            page = await feed.read(page.next_cursor, limit=3)
            assert page.reset is False
            assert [i["event_id"] for i in page.items] == ["e8", "e9"]
            assert page.has_more is False
            # cursors are monotonic
            seqs = [parse_feed_cursor(i["cursor"])[1] for i in (await feed.read(limit=5)).items]
            assert seqs == sorted(seqs) == list(range(8, 13))
            # the feed expired / was deleted: a new epoch; an old cursor resets
            await store.delete(f"f-{unique}:feed", f"f-{unique}:feed:seq", f"f-{unique}:feed:epoch")
            await feed.append_statuses([status("c", 1)])
            page = await feed.read(tail)
            assert page.reset is True
            assert page.skipped is None  # another epoch: how many is unknown
            assert [i["task_id"] for i in page.items] == ["c"]


@pytest.mark.parametrize(
    ("after", "limit"),
    [("garbage", 10), ("-5", 10), ("0123456789abcdef--1", 10), (None, 0), (None, 501), (None, -1)],
)
async def test_feed_rejects_bad_cursors_and_limits(
    store_url: str, unique: str, after: str | None, limit: int
) -> None:
    with anyio.fail_after(10):
        async with opened(store_url) as store:
            feed = ServiceEventFeed(store, ServiceEventFeedConfig(prefix=f"f-{unique}"))
            with pytest.raises(ContractError):
                await feed.read(after, limit)


async def test_feed_cursor_from_the_future_is_refused(store_url: str, unique: str) -> None:
    with anyio.fail_after(10):
        async with opened(store_url) as store:
            feed = ServiceEventFeed(store, ServiceEventFeedConfig(prefix=f"f-{unique}"))
            await feed.append_statuses([status("a", 1)])
            cursor = (await feed.read()).next_cursor
            assert cursor is not None
            epoch, seq = parse_feed_cursor(cursor)
            with pytest.raises(ContractError, match="ahead"):
                await feed.read(f"{epoch}-{seq + 5}")


async def test_pumped_observations_reach_store_and_feed_in_batches(
    store_url: str, unique: str
) -> None:
    with anyio.fail_after(10):
        async with opened(store_url) as store:
            obs = ObservationStore(store, ObservationStoreConfig(prefix=f"o-{unique}"))
            feed = ServiceEventFeed(store, ServiceEventFeedConfig(prefix=f"f-{unique}"))
            sink = ObservationStoreSink(obs, feed)
            calls: list[int] = []
            original = sink.send_batch

            async def counting(events: Any) -> None:
                calls.append(len(events))
                await original(events)

            sink.send_batch = counting  # type: ignore[method-assign]
            pump = ObservationPump(sink, buffer=1000, max_batch=64)
            for n in range(200):
                pump.emit(received(f"t{n % 4}", n))
            pump.close()
            await pump.run()
            assert sum(calls) == 200
            assert len(calls) < 200 / 32  # batched, not one round trip per event
            assert sink.written == 200
            assert sum([len(await obs.history(f"t{i}")) for i in range(4)]) == 200
            page = await feed.read(limit=500)
            assert len(page.items) == 200
            assert page.items[0]["source_kind"] == "observation"
            assert page.items[0]["event_type"] == "TaskMessageReceived"


async def test_observation_and_feed_entry_are_one_atomic_write(store_url: str, unique: str) -> None:
    """The sink's write stores the observation and appends its feed entry in one
    script: a duplicate goes to neither, the feed item carries the token as its
    event id, and a broken feed key fails the write with nothing stored (no
    marker), so the retry stores it once."""
    with anyio.fail_after(10):
        async with opened(store_url) as store:
            obs = ObservationStore(store, ObservationStoreConfig(prefix=f"o-{unique}"))
            feed = ServiceEventFeed(store, ServiceEventFeedConfig(prefix=f"f-{unique}"))
            sink = ObservationStoreSink(obs, feed)
            first, second = received("t1", 0), received("t1", 1, task_type="resize")
            await sink.send_batch([first, second, first])  # the repeat is a duplicate
            assert (sink.written, sink.duplicates) == (2, 1)
            await sink.send_batch([second])
            assert (sink.written, sink.duplicates) == (2, 2)
            stored = await obs.history("t1")
            assert [h["retry_attempt"] for h in stored] == [1, 0]
            assert stored[0]["task_type"] == "resize"
            items = (await feed.read()).items
            assert [i["event_id"] for i in items] == [
                observation_token(observation_record(first)),
                observation_token(observation_record(second)),
            ]
            assert items[1]["payload"] == stored[0]
            await store.delete(f"f-{unique}:feed")
            await store.set(f"f-{unique}:feed", b"not a list")
            third = received("t2", 0)
            with pytest.raises(StoreError):  # the pump counts it as a sink error
                await sink.send_batch([third])
            assert sink.failed == 1
            assert await obs.history("t2") == []
            await store.delete(f"f-{unique}:feed")
            await sink.send_batch([third])
            assert [h["task_id"] for h in await obs.history("t2")] == ["t2"]
            assert [i["task_id"] for i in (await feed.read()).items] == ["t2"]


@pytest.mark.parametrize("cluster", [False, True], ids=["default-layout", "cluster-layout"])
async def test_a_batch_isolates_a_broken_history_key(
    store_url: str, unique: str, cluster: bool
) -> None:
    """One script writes the whole batch (one per task in the cluster layout):
    a task whose history key has the wrong type fails alone (a StoreError in
    its place), the rest of the batch is stored and fed in order, trimmed per
    task, with one feed sequence each."""
    with anyio.fail_after(10):
        async with opened(store_url) as store:
            obs = ObservationStore(
                store,
                ObservationStoreConfig(prefix=f"o-{unique}", history_maxlen=2, cluster=cluster),
            )
            feed = ServiceEventFeed(
                store, ServiceEventFeedConfig(prefix=f"f-{unique}", cluster=cluster)
            )
            await store.set(obs.history_key("bad"), b"not a list")
            batch = [received("a", 0), received("bad", 0), received("a", 1), received("b", 0)]
            batch += [received("a", 2), received("bad", 1), batch[0]]  # the last: a repeat
            results = await obs.write_many(batch, feed=feed)
            assert [type(r).__name__ if isinstance(r, StoreError) else r for r in results] == [
                True, "ScriptError", True, True, True, "ScriptError", False,
            ]  # fmt: skip
            assert [h["retry_attempt"] for h in await obs.history("a")] == [2, 1]  # trimmed
            assert [h["task_id"] for h in await obs.history("b")] == ["b"]
            page = await feed.read()
            assert [(i["task_id"], i["payload"]["retry_attempt"]) for i in page.items] == [
                ("a", 0), ("a", 1), ("b", 0), ("a", 2),
            ]  # fmt: skip
            _, seq = parse_feed_cursor(page.next_cursor or "")
            assert seq == 4
            # the broken key repaired, the failed ones go in once
            await store.delete(obs.history_key("bad"))
            assert await obs.write_many([batch[1], batch[5], batch[1]], feed=feed) == [
                True, True, False,
            ]  # fmt: skip
            assert len((await feed.read()).items) == 6


async def test_status_writes_append_to_the_feed_atomically(store_url: str, unique: str) -> None:
    with anyio.fail_after(10):
        async with opened(store_url) as store:
            feed = ServiceEventFeed(store, ServiceEventFeedConfig(prefix=f"f-{unique}"))
            status = StatusStore(store, StatusStoreConfig(prefix=f"s-{unique}"), feed=feed)
            child = {**status_event("c1", 1), "meta": {"parent_task_id": "p1"}}
            assert await status.write_many([status_event("t1", 1), child]) == [True, True]
            assert await status.write(status_event("t1", 1)) is False  # duplicate: no entry
            page = await feed.read()
            assert [(i["task_id"], i["event_type"]) for i in page.items] == [
                ("t1", "status.running"),
                ("c1", "status.running"),
            ]
            assert page.items[1]["parent_task_id"] == "p1"
            assert await status.children("p1") == ["c1"]
            # a broken feed key fails the whole write: no history, no marker; a retry works
            await store.delete(f"f-{unique}:feed")
            await store.set(f"f-{unique}:feed", b"not a list")
            with pytest.raises(StoreError):
                await status.write(status_event("t2", 1))
            assert await status.history("t2") == []
            await store.delete(f"f-{unique}:feed")
            assert await status.write(status_event("t2", 1)) is True
            assert [e["event_id"] for e in await status.history("t2")] == ["e1"]
            assert [i["task_id"] for i in (await feed.read()).items] == ["t2"]


def status_event(task: str, n: int) -> dict[str, Any]:
    return {"task_id": task, "event_id": f"e{n}", "status": "running"}

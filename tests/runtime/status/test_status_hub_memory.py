"""StatusHub on the memory broker and memory store, both backends."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from _picky_store import PickyStore

from relayna.contracts import StatusEvent, encode_status
from relayna.errors import ConnectionLost, StoreConnectionLost
from relayna.status import StatusHub, StatusHubConfig, StatusStore
from relayna.topology import StatusTopologyBase
from relayna.transport import Broker, Script, Store, open_broker, open_store

pytestmark = pytest.mark.anyio


def body(task_id: str, n: int, status: str = "running", **extra: Any) -> bytes:
    return encode_status(
        StatusEvent(task_id=task_id, status=status, event_id=f"{task_id}-{n}", **extra)
    )


@asynccontextmanager
async def hub_env(
    unique: str, store: Store | None = None, **config: Any
) -> AsyncIterator[tuple[Broker, StatusStore, StatusTopologyBase, list[StatusHub]]]:
    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    # These tests are about writing events; the offset record has its own
    # (test_status_hub_offset_memory.py), and would take injected failures.
    config.setdefault("persist_offset", False)
    async with open_broker("memory://") as broker, open_store("memory://") as raw:
        await topology.plan().apply(broker)
        status = StatusStore(store or raw)
        hubs: list[StatusHub] = []
        async with anyio.create_task_group() as tg:

            async def add_hub() -> StatusHub:
                hub = StatusHub(
                    broker,
                    status,
                    StatusHubConfig(queue=topology.status_queue, offset="first", **config),
                )
                await tg.start(hub.run)
                hubs.append(hub)
                return hub

            await add_hub()
            yield broker, status, topology, hubs
            tg.cancel_scope.cancel()


async def wait_for(predicate: Any) -> None:
    while True:  # poll: the condition is another task's counter
        if not (not predicate()):
            break
        await anyio.sleep(0.005)


@pytest.mark.parametrize("shards", [1, 3])
async def test_events_are_stored_in_order_per_task(unique: str, shards: int) -> None:
    with anyio.fail_after(10):
        async with hub_env(unique, prefetch=32, write_concurrency=shards) as (
            broker,
            status,
            topo,
            hubs,
        ):
            tasks = [f"task{i}" for i in range(6)]
            counters = dict.fromkeys(tasks, 0)
            order = random.Random(7)
            for _ in range(300):
                task = order.choice(tasks)
                await broker.publish(topo.status_exchange, task, body(task, counters[task]))
                counters[task] += 1
            await wait_for(lambda: hubs[0].stats.stored == 300)
            for task in tasks:
                history = await status.history(task)
                expected = [f"{task}-{n}" for n in range(counters[task])][::-1][:50]
                assert [e["event_id"] for e in history] == expected


class _SlowStore:
    """Every round trip takes a random moment, so deliveries arrive while one is out."""

    def __init__(self, store: Store, seed: int) -> None:
        self._store = store
        self._random = random.Random(seed)
        self.round_trips = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def run_script_many(self, script: Script, calls: Sequence[Any]) -> list[Any]:
        self.round_trips += 1
        await anyio.sleep(self._random.choice([0, 0.001, 0.003]))
        return [await self._store.run_script(script, keys, args) for keys, args in calls]


async def test_order_holds_when_lone_events_and_bursts_mix(unique: str) -> None:
    # A quiet hub writes a lone event from its dispatch loop, a busy one through
    # its shard: bursts right after a quiet moment, and lone events while a
    # burst is still being written, must keep each task's order.
    with anyio.fail_after(20):
        async with open_store("memory://") as raw:
            slow = _SlowStore(raw, seed=3)
            async with hub_env(unique, store=slow, prefetch=16) as (broker, status, topo, hubs):
                rng = random.Random(11)
                counters = {"a": 0, "b": 0}
                published = 0
                while published < 400:
                    for _ in range(rng.choice([1, 1, 2, 3, 5])):
                        task = rng.choice("ab")
                        await broker.publish(topo.status_exchange, task, body(task, counters[task]))
                        counters[task] += 1
                        published += 1
                    await anyio.sleep(rng.choice([0, 0, 0.001, 0.004]))
                await wait_for(lambda: hubs[0].stats.stored == published)
                for task, count in counters.items():
                    history = await status.history(task)
                    expected = [f"{task}-{n}" for n in range(count)][::-1][:50]
                    assert [e["event_id"] for e in history] == expected
                # Both paths ran: some round trips carried several events.
                assert published > slow.round_trips > published // 10


async def test_malformed_messages_are_acked_and_counted(unique: str) -> None:
    with anyio.fail_after(10):
        async with hub_env(unique) as (broker, _status, topo, hubs):
            bad: Sequence[bytes] = [
                b"not json",
                b"[]",
                b'{"task_id": "a b", "status": "x"}',
                b'{"status": "x"}',
                b"\xff\xfe",
                b"[" * 10_000,
            ]
            for raw in bad:
                await broker.publish(topo.status_exchange, "x", raw)
            await broker.publish(topo.status_exchange, "ok", body("ok", 1))
            await wait_for(lambda: hubs[0].stats.stored == 1)
            stats = hubs[0].stats
            assert sum(stats.malformed.values()) == len(bad)
            assert set(stats.malformed) <= {"invalid_json", "schema", "decode_error", "too_deep"}
            assert stats.received == len(bad) + 1


async def test_meta_is_sanitised_and_alias_accepted(unique: str) -> None:
    with anyio.fail_after(10):
        async with hub_env(unique) as (broker, status, topo, hubs):
            await broker.publish(
                topo.status_exchange,
                "t",
                b'{"documentId": "doc-1", "status": "running", "event_id": "x1",'
                b' "meta": {"auth_token": "secret", "parent_task_id": "p1", "k": 1}}',
            )
            await wait_for(lambda: hubs[0].stats.stored == 1)
            latest = await status.latest("doc-1")
            assert latest is not None
            assert latest["meta"] == {"parent_task_id": "p1", "k": 1}
            assert await status.children("p1") == ["doc-1"]


async def test_event_id_is_filled_when_missing(unique: str) -> None:
    with anyio.fail_after(10):
        async with hub_env(unique) as (broker, status, topo, hubs):
            await broker.publish(topo.status_exchange, "t", b'{"task_id": "t", "status": "queued"}')
            await wait_for(lambda: hubs[0].stats.stored == 1)
            latest = await status.latest("t")
            assert latest is not None
            assert len(str(latest["event_id"])) == 64


async def test_several_hubs_write_each_event_once(unique: str) -> None:
    with anyio.fail_after(10):
        async with hub_env(unique) as (broker, status, topo, hubs):
            for n in range(40):
                await broker.publish(topo.status_exchange, "t", body("t", n))
            hub_b = StatusHub(broker, status, hubs[0].config)
            async with anyio.create_task_group() as tg:
                await tg.start(hub_b.run)
                await wait_for(lambda: hubs[0].stats.stored + hub_b.stats.stored == 40)
                await wait_for(lambda: hubs[0].stats.received == hub_b.stats.received == 40)
                await wait_for(lambda: hubs[0].stats.duplicates + hub_b.stats.duplicates == 40)
                tg.cancel_scope.cancel()
            assert len(await status.history("t")) == 40


class _FlakyStore:
    """A store whose scripts fail ``failures`` times before working."""

    def __init__(self, store: Store, failures: int) -> None:
        self._store = store
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def run_script(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise StoreConnectionLost("injected")
        return await self._store.run_script(script, keys, args)

    async def run_script_many(self, script: Script, calls: Sequence[Any]) -> list[Any]:
        if self.failures > 0:
            self.failures -= 1
            raise StoreConnectionLost("injected")  # the whole round trip failed
        return list(await self._store.run_script_many(script, calls))


async def test_store_failure_is_retried_in_place(unique: str) -> None:
    with anyio.fail_after(10):
        async with open_store("memory://") as raw:
            flaky = _FlakyStore(raw, failures=3)
            async with hub_env(unique, store=flaky, retry_initial=0.01) as (
                broker,
                status,
                topo,
                hubs,
            ):
                for n in range(3):
                    await broker.publish(topo.status_exchange, "t", body("t", n))
                await wait_for(lambda: hubs[0].stats.stored == 3)
                assert hubs[0].stats.store_failures == 3
                assert [e["event_id"] for e in await status.history("t")] == ["t-2", "t-1", "t-0"]


async def test_a_task_whose_writes_fail_is_parked_while_others_proceed(unique: str) -> None:
    with anyio.fail_after(10):
        async with open_store("memory://") as raw:
            picky = PickyStore(raw, bad="bad")
            async with hub_env(unique, store=picky, retry_initial=0.01, retry_max=0.02) as (
                broker,
                status,
                topo,
                hubs,
            ):
                for n in range(5):
                    await broker.publish(topo.status_exchange, "b", body("bad", n))
                    await broker.publish(topo.status_exchange, "g", body("good", n))
                # The healthy task is not held up by the failing one...
                await wait_for(lambda: hubs[0].stats.stored == 5)
                await wait_for(lambda: hubs[0].stats.store_failures >= 7)
                assert [e["event_id"] for e in await status.history("good")] == [
                    f"good-{n}" for n in range(4, -1, -1)
                ]
                assert await status.history("bad") == []
                # ...and the failing one keeps its order once the store heals.
                picky.failing = False
                await wait_for(lambda: hubs[0].stats.stored == 10)
                assert [e["event_id"] for e in await status.history("bad")] == [
                    f"bad-{n}" for n in range(4, -1, -1)
                ]


class _DroppingBroker:
    """Delegates to a broker; the first consumer dies after ``after`` deliveries."""

    def __init__(self, broker: Broker, after: int) -> None:
        self._broker = broker
        self.after = after
        self.offsets: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._broker, name)

    def consume(self, queue: str, **kwargs: Any) -> Any:
        self.offsets.append(kwargs.get("offset"))
        return self._consume(queue, kwargs)

    @asynccontextmanager
    async def _consume(self, queue: str, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        async with self._broker.consume(queue, **kwargs) as consumer:
            yield _DyingConsumer(consumer, self.after if len(self.offsets) == 1 else None)


class _DyingConsumer:
    def __init__(self, inner: Any, after: int | None) -> None:
        self.inner = inner
        self.after = after

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        count = 0
        async for delivery in self.inner:
            if self.after is not None and count == self.after:
                raise ConnectionLost("injected connection loss")
            count += 1
            yield delivery


async def test_lost_consumer_is_reopened_from_the_unsettled_offset(unique: str) -> None:
    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    with anyio.fail_after(10):
        async with open_broker("memory://") as broker, open_store("memory://") as raw:
            await topology.plan().apply(broker)
            for n in range(30):
                await broker.publish(topology.status_exchange, "t", body("t", n))
            dropping = _DroppingBroker(broker, after=12)
            hub = StatusHub(
                dropping,
                StatusStore(raw),
                StatusHubConfig(queue=topology.status_queue, offset="first", retry_initial=0.01),
            )
            async with anyio.create_task_group() as tg:
                await tg.start(hub.run)
                # A batch written just before the consumer died is stored but
                # not counted (its lane was cancelled); the redelivery then
                # counts it as a duplicate.
                await wait_for(lambda: hub.stats.stored + hub.stats.duplicates >= 30)
                while True:  # poll: the hub's writes are another task's
                    if len(await StatusStore(raw).history("t")) >= 30:
                        break
                    await anyio.sleep(0.005)
                tg.cancel_scope.cancel()
            assert hub.stats.consumer_restarts == 1
            assert dropping.offsets[0] == "first"
            assert isinstance(dropping.offsets[1], int)
            assert dropping.offsets[1] <= 12  # resumed at the lowest unsettled offset
            assert hub.stats.received >= 30
            history = await StatusStore(raw).history("t")
            assert [e["event_id"] for e in history] == [f"t-{n}" for n in range(30)][::-1][:50]


@pytest.mark.parametrize("ack_delay", [0.0, 0.001, 0.05])
async def test_acks_return_the_credit_whatever_the_ack_delay(unique: str, ack_delay: float) -> None:
    # prefetch 4 and 40 events: the hub only gets past the 4th if acks come back.
    with anyio.fail_after(10):
        async with hub_env(unique, prefetch=4, ack_delay=ack_delay) as (broker, status, topo, hubs):
            for n in range(40):
                await broker.publish(topo.status_exchange, "t", body("t", n))
            await wait_for(lambda: hubs[0].stats.stored == 40)
            await wait_for(lambda: broker.unacked_count(topo.status_queue) == 0)  # type: ignore[attr-defined]
            assert [e["event_id"] for e in await status.history("t")][:3] == [
                "t-39",
                "t-38",
                "t-37",
            ]


@pytest.mark.parametrize("bad", [-0.001, float("nan"), float("inf")])
def test_ack_delay_must_be_a_finite_non_negative_number(bad: float) -> None:
    with pytest.raises(ValueError, match="ack_delay"):
        StatusHubConfig(queue="q", ack_delay=bad)

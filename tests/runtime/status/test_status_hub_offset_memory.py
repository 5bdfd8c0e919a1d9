"""The status hub's offset record on the memory transports, both backends.

The record is written only after the events before it are stored, a lagging
hub of the same name never moves it back, a hub without one starts at its
configured offset, and a record that is not an offset stops the hub loudly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from _picky_store import PickyStore

from relayna.contracts import StatusEvent, encode_status
from relayna.errors import ConfigurationError, StoreConnectionLost
from relayna.status import StatusHub, StatusHubConfig, StatusStore
from relayna.status._hub_offset import bounded_start
from relayna.topology import StatusTopologyBase
from relayna.transport import Broker, Store, open_broker, open_store

pytestmark = pytest.mark.anyio


class _Env:
    def __init__(self, broker: Broker, store: Store, topology: StatusTopologyBase) -> None:
        self.broker = broker
        self.store = store
        self.topology = topology
        self.status = StatusStore(store)
        self.record = "relayna:hub:api:offset"

    def config(self, **overrides: Any) -> StatusHubConfig:
        settings: dict[str, Any] = {
            "queue": self.topology.status_queue,
            "name": "api",
            "offset_commit_interval": 0.01,
            "retry_initial": 0.01,
            "retry_max": 0.05,
        }
        settings.update(overrides)
        return StatusHubConfig(**settings)

    def hub(self, store: Any = None, **overrides: Any) -> StatusHub:
        status = StatusStore(store) if store is not None else self.status
        return StatusHub(self.broker, status, self.config(**overrides))

    async def publish(self, task: str, n: int) -> None:
        event = StatusEvent(task_id=task, status="running", event_id=f"{task}-{n}")
        await self.broker.publish(self.topology.status_exchange, task, encode_status(event))

    async def record_offset(self) -> int | None:
        raw = await self.store.hget(self.record, "offset")
        return None if raw is None else int(raw)


@asynccontextmanager
async def env(unique: str) -> AsyncIterator[_Env]:
    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    async with open_broker("memory://") as broker, open_store("memory://") as store:
        await topology.plan().apply(broker)
        yield _Env(broker, store, topology)


async def wait_for(predicate: Any) -> None:
    while not predicate():  # noqa: ASYNC110 - polling another task's counter
        await anyio.sleep(0.005)


async def wait_for_record(e: _Env, value: int) -> None:
    while await e.record_offset() != value:  # noqa: ASYNC110 - polling the store
        await anyio.sleep(0.005)


async def test_the_record_never_passes_an_event_that_is_not_stored(unique: str) -> None:
    with anyio.fail_after(10):
        async with env(unique) as e:
            stuck = PickyStore(e.store, bad="stuck")
            first = e.hub(stuck, offset="first")
            await e.publish("a", 0)  # offset 0
            await e.publish("stuck", 0)  # offset 1: its write keeps failing
            for n in range(1, 11):  # offsets 2..11
                await e.publish("a", n)
            async with anyio.create_task_group() as tg:
                await tg.start(first.run)
                await wait_for(lambda: first.stats.stored == 11)
                await wait_for_record(e, 1)  # a-0 is stored; stuck-0 is not
                tg.cancel_scope.cancel()  # stops with stuck-0 unstored
            assert await e.record_offset() == 1
            assert await e.status.history("stuck") == []

            second = e.hub()  # the store works again
            async with anyio.create_task_group() as tg:
                await tg.start(second.run)
                await wait_for(lambda: second.stats.stored + second.stats.duplicates == 11)
                await wait_for_record(e, 12)
                tg.cancel_scope.cancel()
            assert second.stats.resumed_from == 1
            assert (second.stats.stored, second.stats.duplicates) == (1, 10)  # at least once
            assert [ev["event_id"] for ev in await e.status.history("stuck")] == ["stuck-0"]


async def test_a_lagging_hub_of_the_same_name_never_moves_the_record_back(unique: str) -> None:
    with anyio.fail_after(10):
        async with env(unique) as e:
            ahead = e.hub(offset="first")
            stuck = PickyStore(e.store, bad="stuck")
            behind = e.hub(stuck, offset="first")
            await e.publish("stuck", 0)
            for n in range(20):
                await e.publish("a", n)
            async with anyio.create_task_group() as tg:
                await tg.start(ahead.run)
                await tg.start(behind.run)
                await wait_for_record(e, 21)  # the hub that stored everything
                await wait_for(lambda: behind.stats.stored + behind.stats.duplicates == 20)
                await wait_for(lambda: behind.stats.offset_commits >= 1)  # it tried offset 0
                assert await e.record_offset() == 21
                tg.cancel_scope.cancel()  # both commit once more on the way out
            assert await e.record_offset() == 21


async def test_without_a_record_the_configured_offset_applies_and_only_then(
    unique: str,
) -> None:
    with anyio.fail_after(10):
        async with env(unique) as e:
            for n in range(5):
                await e.publish("a", n)  # before any hub ever ran
            first = e.hub(offset="first")
            async with anyio.create_task_group() as tg:
                await tg.start(first.run)
                await wait_for(lambda: first.stats.stored == 5)
                tg.cancel_scope.cancel()
            assert first.stats.resumed_from is None
            assert await e.record_offset() == 5
            for n in range(5, 8):
                await e.publish("a", n)
            second = e.hub(offset="first")  # the record wins over "first"
            async with anyio.create_task_group() as tg:
                await tg.start(second.run)
                await wait_for(lambda: second.stats.stored == 3)
                tg.cancel_scope.cancel()
            assert second.stats.resumed_from == 5
            assert second.stats.duplicates == 0
            assert len(await e.status.history("a")) == 8


class _Blip:
    """A store whose first ``failures`` HGETs lose the connection."""

    def __init__(self, store: Store, failures: int) -> None:
        self._store = store
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def hget(self, key: str, field: str) -> bytes | None:
        if self.failures > 0:
            self.failures -= 1
            raise StoreConnectionLost("injected")
        return await self._store.hget(key, field)


async def test_reading_the_record_survives_a_store_blip(unique: str) -> None:
    with anyio.fail_after(10):
        async with env(unique) as e:
            await e.store.hset(e.record, {"offset": "0"})
            blip = _Blip(e.store, failures=2)
            hub = e.hub(blip)
            await e.publish("a", 0)
            async with anyio.create_task_group() as tg:
                await tg.start(hub.run)
                await wait_for(lambda: hub.stats.stored == 1)
                tg.cancel_scope.cancel()
            assert blip.failures == 0
            assert hub.stats.resumed_from == 0


async def test_a_record_that_is_not_an_offset_stops_the_hub_with_a_clear_error(
    unique: str,
) -> None:
    with anyio.fail_after(10):
        async with env(unique) as e:
            await e.store.hset(e.record, {"offset": "-3"})
            with pytest.raises(ConfigurationError, match="relayna:hub:api:offset"):
                await e.hub().run()


async def test_hub_names_are_identifiers(unique: str) -> None:
    with pytest.raises(ValueError, match="name"):
        StatusHubConfig(queue="q", name="a b")
    async with env(unique) as e:
        with pytest.raises(ConfigurationError, match=r"StatusHubConfig\(name=\.\.\.\)"):
            StatusHub(e.broker, e.status, StatusHubConfig(queue="status queue"))
        # a classic status queue has no offsets: nothing to name
        StatusHub(e.broker, e.status, StatusHubConfig(queue="status queue", offset=None))


def test_catch_up_bounds_only_old_starts() -> None:
    now = datetime.now(UTC)
    start = bounded_start("first", 60.0)
    assert isinstance(start, datetime)
    assert now - timedelta(seconds=61) < start < now - timedelta(seconds=59)
    old = datetime(2020, 1, 1)  # naive: UTC
    bounded = bounded_start(old, 60.0)
    assert isinstance(bounded, datetime)
    assert bounded > now - timedelta(seconds=61)
    recent = now - timedelta(seconds=5)
    assert bounded_start(recent, 60.0) == recent
    for offset in ("last", "next", 42, None):
        assert bounded_start(offset, 60.0) == offset  # type: ignore[arg-type]
    assert bounded_start("first", None) == "first"

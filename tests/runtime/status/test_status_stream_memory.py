"""open_status_stream on the memory store, both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import pytest

from relayna.errors import ContractError, SlowSubscriberError, StoreConnectionLost
from relayna.status import (
    AlreadyComplete,
    Emit,
    KeepAlive,
    Ready,
    Resync,
    StatusStore,
    StatusStoreConfig,
    StatusStreamItem,
    StatusStreamStats,
    open_status_stream,
)
from relayna.transport import (
    PubSubEvent,
    PubSubReconnected,
    Store,
    Subscription,
    open_store,
)

pytestmark = pytest.mark.anyio


def ev(n: int, status: str = "running", task: str = "t1") -> dict[str, Any]:
    return {"task_id": task, "event_id": f"e{n}", "status": status, "message": f"step {n}"}


def names(items: Sequence[StatusStreamItem]) -> list[str]:
    out = []
    for item in items:
        if isinstance(item, Emit):
            out.append(item.event_id)
        elif isinstance(item, Resync):
            out.append(f"resync:{item.reason}")
        else:
            out.append(type(item).__name__)
    return out


@asynccontextmanager
async def status_store(max_history: int = 50) -> AsyncIterator[StatusStore]:
    async with open_store("memory://") as store:
        yield StatusStore(store, StatusStoreConfig(max_history=max_history))


async def collect(stream: Any, n: int | None = None) -> list[StatusStreamItem]:
    items: list[StatusStreamItem] = []
    async for item in stream:
        items.append(item)
        if n is not None and len(items) >= n:
            break
    return items


async def test_history_then_live_then_terminal() -> None:
    with anyio.fail_after(5):
        async with status_store() as status:
            for n in (1, 2):
                await status.write(ev(n))
            async with open_status_stream(status, "t1") as items:
                first = await collect(items, 3)
                assert names(first) == ["Ready", "e1", "e2"]
                await status.write(ev(3))
                await status.write(ev(2))  # duplicate: not stored, not sent
                await status.write(ev(4, "completed"))
                await status.write(ev(5))
                rest = await collect(items)
            assert names(rest) == ["e3", "e4"]
            assert isinstance(rest[1], Emit)
            assert rest[1].event["message"] == "step 4"


async def test_resume_unknown_and_after_terminal() -> None:
    with anyio.fail_after(5):
        async with status_store() as status:
            for n in (1, 2, 3):
                await status.write(ev(n))
            async with open_status_stream(status, "t1", last_event_id="e2") as items:
                assert names(await collect(items, 2)) == ["Ready", "e3"]
            async with open_status_stream(status, "t1", last_event_id="nope") as items:
                assert names(await collect(items, 5)) == [
                    "Ready", "resync:unknown_last_event_id", "e1", "e2", "e3",
                ]  # fmt: skip
            await status.write(ev(4, "failed"))
            async with open_status_stream(status, "t1", last_event_id="e4") as items:
                only = await collect(items)
            assert names(only) == ["AlreadyComplete"]
            assert isinstance(only[0], AlreadyComplete)
            assert only[0].terminal_status == "failed"


async def test_keepalive_when_idle() -> None:
    with anyio.fail_after(5):
        async with status_store() as status:
            async with open_status_stream(status, "t1", keepalive=0.05) as items:
                got = await collect(items, 3)
            assert isinstance(got[0], Ready)
            assert all(isinstance(i, KeepAlive) for i in got[1:])


async def test_slow_client_is_disconnected_without_blocking_others() -> None:
    stats = StatusStreamStats()
    with anyio.fail_after(5):
        async with status_store() as status:
            async with open_status_stream(status, "t1", stats=stats) as fast:
                assert names(await collect(fast, 1)) == ["Ready"]
                written: list[str] = []
                with pytest.raises(SlowSubscriberError):  # noqa: PT012
                    async with open_status_stream(status, "t1", buffer_size=3, stats=stats):
                        for n in range(10):
                            await status.write(ev(n))
                            written.append(f"e{n}")
                            await anyio.sleep(0.01)
                        await anyio.sleep_forever()
                assert len(written) < 10  # the slow client was cut off while writes went on
                for n in range(len(written), 10):
                    await status.write(ev(n))
                assert names(await collect(fast, 10)) == [f"e{n}" for n in range(10)]
    assert stats.slow_disconnects == 1
    assert stats.opened == stats.closed == 2


async def test_shutdown_ends_streams() -> None:
    shutdown = anyio.Event()
    with anyio.fail_after(5):
        async with status_store() as status:
            await status.write(ev(1))
            async with open_status_stream(status, "t1", shutdown=shutdown) as items:
                assert names(await collect(items, 2)) == ["Ready", "e1"]
                shutdown.set()
                assert await collect(items) == []


async def test_invalid_task_id_is_rejected_before_io() -> None:
    async with status_store() as status:
        for bad in ["", "a b", "x" * 300, "a\r\nb", "*"]:
            with pytest.raises(ContractError):
                async with open_status_stream(status, bad):
                    pass


class _LossyStore:
    """Delegates to a store; its subscriptions can lose messages and then
    report a reconnect, like a real pubsub connection that dropped."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.lose = False
        self.reconnect = anyio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def subscribe(self, *channels: str) -> AbstractAsyncContextManager[Subscription]:
        return self._subscribe(channels)

    @asynccontextmanager
    async def _subscribe(self, channels: tuple[str, ...]) -> AsyncIterator[Subscription]:
        async with self._store.subscribe(*channels) as inner:
            yield _LossySubscription(self, inner)


class _LossySubscription:
    def __init__(self, owner: _LossyStore, inner: Subscription) -> None:
        self.owner = owner
        self.inner = inner
        self.channels = inner.channels

    def __aiter__(self) -> AsyncIterator[PubSubEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[PubSubEvent]:
        async for event in self.inner:
            if self.owner.lose:
                continue
            if self.owner.reconnect.is_set():
                self.owner.reconnect = anyio.Event()
                yield PubSubReconnected()
            yield event


async def test_gap_fill_after_pubsub_reconnect() -> None:
    with anyio.fail_after(5):
        async with open_store("memory://") as raw:
            lossy = _LossyStore(raw)
            status = StatusStore(lossy, StatusStoreConfig(max_history=50))
            async with open_status_stream(status, "t1") as items:
                await status.write(ev(1))
                assert names(await collect(items, 2)) == ["Ready", "e1"]
                lossy.lose = True
                for n in (2, 3, 4):
                    await status.write(ev(n))
                lossy.lose = False
                lossy.reconnect.set()
                await status.write(ev(5, "completed"))
                assert names(await collect(items)) == ["e2", "e3", "e4", "e5"]


class _BrokenSubscriptionStore(_LossyStore):
    @asynccontextmanager
    async def _subscribe(self, channels: tuple[str, ...]) -> AsyncIterator[Subscription]:
        async with self._store.subscribe(*channels) as inner:
            yield _FailingSubscription(inner)


class _FailingSubscription:
    def __init__(self, inner: Subscription) -> None:
        self.channels = inner.channels

    def __aiter__(self) -> AsyncIterator[PubSubEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[PubSubEvent]:
        await anyio.sleep(0.01)
        raise StoreConnectionLost("pubsub gone for good")
        yield PubSubReconnected()  # pragma: no cover


async def test_store_failure_surfaces_as_itself() -> None:
    with anyio.fail_after(5):
        async with open_store("memory://") as raw:
            status = StatusStore(_BrokenSubscriptionStore(raw), StatusStoreConfig())
            with pytest.raises(StoreConnectionLost):  # noqa: PT012
                async with open_status_stream(status, "t1") as items:
                    async for _ in items:
                        pass


async def test_body_errors_are_not_wrapped_in_groups() -> None:
    with anyio.fail_after(5):
        async with status_store() as status:
            with pytest.raises(KeyError):
                async with open_status_stream(status, "t1"):
                    raise KeyError("mine")

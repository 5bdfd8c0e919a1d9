"""The status store on the memory store and on real Redis, both backends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from relayna.errors import ConfigurationError, ContractError, StoreError
from relayna.status import StatusStore, StatusStoreConfig
from relayna.transport import PubSubMessage, ShardedPubSub, open_store

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def status_store(url: str, unique: str, **config: Any) -> AsyncIterator[StatusStore]:
    async with open_store(url) as store:
        yield StatusStore(store, StatusStoreConfig(prefix=f"test-{unique}", **config))


def ev(n: int, task: str = "t1", **extra: Any) -> dict[str, Any]:
    return {"task_id": task, "event_id": f"e{n}", "status": "running", **extra}


async def test_write_dedupe_trim_and_reads(store_url: str, unique: str) -> None:
    with anyio.fail_after(10):
        async with status_store(store_url, unique, max_history=3, ttl_seconds=100) as status:
            assert await status.latest("t1") is None
            assert await status.history("t1") == []
            for n in range(5):
                assert await status.write(ev(n)) is True
            assert await status.write(ev(4)) is False  # duplicate
            assert await status.write(ev(1)) is False  # trimmed from history, still deduped
            history = await status.history("t1")
            assert [e["event_id"] for e in history] == ["e4", "e3", "e2"]
            assert [e["event_id"] for e in await status.history("t1", limit=2)] == ["e4", "e3"]
            assert await status.history("t1", limit=0) == []
            assert (await status.latest("t1")) == ev(4)
            ttl = await status.store.ttl(status.history_key("t1"))
            assert ttl is not None
            assert 90 < ttl <= 100
            ttl = await status.store.ttl(status.event_key("t1", "e0"))
            assert ttl is not None
            assert 90 < ttl <= 100


async def test_children(store_url: str, unique: str) -> None:
    with anyio.fail_after(10):
        async with status_store(store_url, unique) as status:
            await status.write(ev(1, "c2", meta={"parent_task_id": "p"}))
            await status.write(ev(1, "c1", meta={"parent_task_id": "p"}))
            await status.write(ev(1, "p", meta={"parent_task_id": "p"}))  # self: ignored
            await status.write(ev(2, "c3", meta={"parent_task_id": 7}))  # not a string: ignored
            assert await status.children("p") == ["c1", "c2"]
            assert await status.children("p", limit=1) == ["c1"]
            assert await status.children("nobody") == []
            ttl = await status.store.ttl(status.children_key("p"))
            assert ttl is not None
            assert ttl > 86000


async def test_write_publishes_on_the_task_channel(store_url: str, unique: str) -> None:
    with anyio.fail_after(10):
        async with status_store(store_url, unique) as status:
            async with status.store.subscribe(status.channel("t1")) as sub:
                await status.write(ev(1))
                await status.write(ev(1))  # duplicate: not published again
                await status.write(ev(2))
                got = []
                async for message in sub:
                    got.append(message)
                    if len(got) == 2:
                        break
            assert [m.data for m in got] == [  # type: ignore[union-attr]
                b'{"task_id":"t1","event_id":"e1","status":"running"}',
                b'{"task_id":"t1","event_id":"e2","status":"running"}',
            ]


@pytest.mark.parametrize("cluster", [False, True], ids=["default-layout", "cluster-layout"])
async def test_each_layout_publishes_on_its_own_kind_of_channel(
    store_url: str, unique: str, cluster: bool
) -> None:
    """The cluster layout publishes with SPUBLISH and ``subscribe`` follows the
    sharded channel; the default layout stays classic. A subscriber of the other
    kind on the same channel name hears nothing (the cut-over note in the docs)."""
    with anyio.fail_after(10):
        async with status_store(store_url, unique, cluster=cluster) as status:
            store = status.store
            assert isinstance(store, ShardedPubSub)
            channel = status.channel("t1")
            other = store.subscribe(channel) if cluster else store.ssubscribe(channel)
            async with status.subscribe("t1") as sub, other as wrong_kind:
                await status.write(ev(1))
                await status.write(ev(2))
                got = []
                async for message in sub:
                    assert isinstance(message, PubSubMessage)
                    got.append(json.loads(message.data)["event_id"])
                    if len(got) == 2:
                        break
                assert got == ["e1", "e2"]
                # The other kind's first message is a sentinel sent after the writes.
                sentinel = b"sentinel"
                await (store.publish if cluster else store.spublish)(channel, sentinel)
                async for message in wrong_kind:
                    assert message == PubSubMessage(channel=channel, data=sentinel)
                    break


async def test_cluster_layout_refuses_a_store_without_sharded_pubsub(unique: str) -> None:
    """Subscribing classic to statuses published with SPUBLISH would never hear one."""

    class ClassicOnly:  # a third-party store with classic pubsub only
        def __init__(self, inner: Any) -> None:
            self.subscribe = inner.subscribe

    async with open_store("memory://") as inner:
        status = StatusStore(ClassicOnly(inner), StatusStoreConfig(cluster=True))  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="sharded"):
            status.subscribe("t1")
        classic = StatusStore(ClassicOnly(inner))  # type: ignore[arg-type]
        async with classic.subscribe("t1") as sub:
            assert sub.channels == ("relayna:channel:t1",)


async def test_failed_write_leaves_no_marker(store_url: str, unique: str) -> None:
    with anyio.fail_after(10):
        async with status_store(store_url, unique) as status:
            await status.store.set(status.history_key("t1"), "not a list")
            with pytest.raises(StoreError):
                await status.write(ev(1))
            assert not await status.store.exists(status.event_key("t1", "e1"))
            await status.store.delete(status.history_key("t1"))
            assert await status.write(ev(1)) is True
            assert [e["event_id"] for e in await status.history("t1")] == ["e1"]


async def test_identifiers_are_validated_before_io(store_url: str, unique: str) -> None:
    async with status_store(store_url, unique) as status:
        for bad in ["", "a b", "a\r\nb", "x" * 300, "a*", "../x"]:
            with pytest.raises(ContractError):
                await status.latest(bad)
            with pytest.raises(ContractError):
                await status.write({"task_id": bad, "event_id": "e1", "status": "x"})
        with pytest.raises(ContractError):
            await status.write({"task_id": "ok", "event_id": "bad id", "status": "x"})


def test_config_validation() -> None:
    for bad in [{"prefix": ""}, {"prefix": "a b"}, {"ttl_seconds": 0}, {"max_history": 0}]:
        with pytest.raises(ValueError):
            StatusStoreConfig(**bad)  # type: ignore[arg-type]

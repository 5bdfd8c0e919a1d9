"""The native Redis Cluster store on the real 6-node cluster (both backends).

Redirects are produced by the servers themselves: ``CLUSTER SETSLOT`` moves
an empty slot to another primary behind the store's back (MOVED), or marks it
migrating/importing (ASK). Failover is a SIGKILL of the slot's primary.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
from redis_cluster import RedisCluster

from relayna.errors import CrossSlotError, StoreError
from relayna.status import WRITE_STATUS_SCRIPT
from relayna.transport import (
    PubSubEvent,
    PubSubMessage,
    PubSubReconnected,
    ShardedPubSub,
    open_store,
)
from relayna.transport.resp import ClusterRespStore, key_slot

pytestmark = [pytest.mark.anyio, pytest.mark.slow_tier]


def _cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def _node_id(cluster: RedisCluster, port: int) -> str:
    return next(str(n["id"]) for n in cluster.nodes() if n["port"] == port)


def _other_primary(cluster: RedisCluster, port: int) -> int:
    return next(
        int(str(n["port"]))
        for n in cluster.nodes()
        if n["role"] == "master" and n["slots"] and not n["failed"] and n["port"] != port
    )


@pytest.fixture
def cluster(redis_cluster: RedisCluster) -> Iterator[RedisCluster]:
    """The cluster, healed after the test: killed nodes restarted, replicas synced."""
    redis_cluster.wait_ok()
    yield redis_cluster
    for port in list(redis_cluster.killed):
        redis_cluster.restart(port)
    redis_cluster.wait_ok(timeout=60, replicas=True)


def _move_slot(cluster: RedisCluster, slot: int, source: int, target: int) -> None:
    """Move an empty slot as a resharding does (IMPORTING, MIGRATING, then NODE on
    the importing node first: it bumps its config epoch, so gossip agrees)."""
    src, dst = _node_id(cluster, source), _node_id(cluster, target)
    _cli(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", src)
    _cli(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", dst)
    _cli(target, "CLUSTER", "SETSLOT", str(slot), "NODE", dst)
    _cli(source, "CLUSTER", "SETSLOT", str(slot), "NODE", dst)


async def test_moved_is_followed_and_the_map_refreshed(cluster: RedisCluster, unique: str) -> None:
    key = f"relayna-test:moved:{unique}"
    slot = key_slot(key)
    owner = cluster.primary_of(slot)
    target = _other_primary(cluster, owner)
    with anyio.fail_after(20):
        async with open_store(cluster.url) as store:
            await store.get(key)  # the map is read: the slot belongs to `owner`
            _move_slot(cluster, slot, owner, target)
            try:
                assert await store.set(key, "v")  # answered MOVED by owner, sent to target
                assert _cli(target, "GET", key) == "v"
                assert await store.get(key) == b"v"
                assert isinstance(store, ClusterRespStore)
                assert store._slots[slot] == ("127.0.0.1", target)
            finally:
                _cli(target, "DEL", key)
                _move_slot(cluster, slot, target, owner)


async def test_ask_sends_asking_to_the_importing_node(cluster: RedisCluster, unique: str) -> None:
    key = f"relayna-test:ask:{unique}"
    slot = key_slot(key)
    owner = cluster.primary_of(slot)
    target = _other_primary(cluster, owner)
    _cli(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", _node_id(cluster, owner))
    _cli(owner, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", _node_id(cluster, target))
    try:
        with anyio.fail_after(20):
            async with open_store(cluster.url) as store:
                # The key is not on the migrating owner: it answers ASK.
                assert await store.set(key, "v")
                assert _cli(owner, "EXISTS", key).startswith("ASK ")  # still not there
                assert await store.get(key) == b"v"  # ASK again, to the importing node
                assert await store.delete(key) == 1
    finally:
        for port in (owner, target):
            _cli(port, "CLUSTER", "SETSLOT", str(slot), "STABLE")


async def test_script_keys_in_two_slots_are_refused_before_sending(
    cluster: RedisCluster, unique: str
) -> None:
    marker, history = f"relayna-test:{unique}:m", f"relayna-test:{unique}:h"
    assert key_slot(marker) != key_slot(history)
    with anyio.fail_after(20):
        async with open_store(cluster.url) as store:
            with pytest.raises(CrossSlotError) as caught:
                await store.run_script(
                    WRITE_STATUS_SCRIPT, [marker, history], ["p", 60000, 10, "ch", "t"]
                )
            assert caught.value.keys == (marker, history)
            assert marker in str(caught.value)
            assert history in str(caught.value)
            with pytest.raises(CrossSlotError):
                await store.run_script_many(
                    WRITE_STATUS_SCRIPT, [([marker, history], ["p", 60000, 10, "ch", "t"])]
                )
            assert await store.mget([marker, history]) == [None, None]  # nothing ran


async def test_multi_key_commands_and_batches_span_slots(
    cluster: RedisCluster, unique: str
) -> None:
    keys = [f"relayna-test:{unique}:{i}" for i in range(12)]
    assert len({cluster.primary_of(k) for k in keys}) > 1
    with anyio.fail_after(20):
        async with open_store(cluster.url) as store:
            for i, key in enumerate(keys[:8]):
                await store.set(key, str(i))
            assert await store.mget(keys) == [str(i).encode() for i in range(8)] + [None] * 4
            calls = [
                ([f"{{{k}}}:m", f"{{{k}}}:h"], [f"e{i}", 60000, 10, f"{{{k}}}:ch", "t"])
                for i, k in enumerate(keys)
            ]
            assert await store.run_script_many(WRITE_STATUS_SCRIPT, calls) == [1] * len(keys)
            assert await store.run_script_many(WRITE_STATUS_SCRIPT, calls) == [0] * len(keys)
            assert [await store.lrange(c[0][1], 0, -1) for c in calls] == [
                [f"e{i}".encode()] for i in range(len(keys))
            ]
            tagged = [k for c in calls for k in c[0]]
            assert await store.delete(*keys, *tagged) == 8 + len(tagged)


async def test_failover_writes_fail_typed_or_land_and_acked_waited_writes_survive(
    cluster: RedisCluster, unique: str
) -> None:
    """While the primary of the writers' slot dies: every write returns or raises a
    StoreError (none hangs), writes resume on the promoted replica, and every
    write that WAIT saw replicated is still there afterwards. The promoted
    replica has no replica of its own until the killed node is back, so WAIT
    acknowledges again only after the restart."""
    tag = f"{{relayna-test:{unique}}}"
    key = f"{tag}:set"
    acked: list[int] = []
    written: list[int] = []
    failed: list[BaseException] = []
    stop = anyio.Event()
    progress = [anyio.Event()]  # set (and replaced) on each write

    def tick() -> None:
        progress[0].set()
        progress[0] = anyio.Event()

    with anyio.fail_after(90):
        async with open_store(cluster.url + "?failover_timeout=15") as store:
            assert isinstance(store, ClusterRespStore)

            async def writer(w: int) -> None:
                i = 0
                while not stop.is_set():
                    n = w * 1_000_000 + i
                    i += 1
                    try:
                        await store.sadd(key, n)
                        written.append(n)
                        if await store.wait_replicated(1, 0.2) >= 1:
                            acked.append(n)
                    except StoreError as exc:
                        failed.append(exc)
                    tick()

            async def until(count: list[int], more: int) -> None:
                target = len(count) + more
                while len(count) < target:
                    await progress[0].wait()

            async with anyio.create_task_group() as tg:
                for w in range(4):
                    tg.start_soon(writer, w)
                await until(acked, 50)
                killed, _ = await anyio.to_thread.run_sync(cluster.fail_primary, tag)
                await until(written, 20)  # on the promoted replica
                await anyio.to_thread.run_sync(cluster.restart, killed)
                await until(acked, 20)  # the restarted node replicates it
                stop.set()
            members = {int(m) for m in await store.smembers(key)}
            assert set(acked) <= members
            assert all(isinstance(e, StoreError) for e in failed)
            await store.delete(key)


async def test_subscribers_hear_publishes_after_a_node_dies(
    cluster: RedisCluster, unique: str
) -> None:
    """Classic pubsub on one node: whichever node dies, a subscriber keeps
    receiving (after a PubSubReconnected marker when its node was the one)."""
    channel = f"relayna-test:{unique}:ch"
    with anyio.fail_after(60):
        async with open_store(cluster.url) as store, store.subscribe(channel) as sub:
            await store.publish(channel, "before")
            events = aiter(sub)
            assert await anext(events) == PubSubMessage(channel, b"before")
            await anyio.to_thread.run_sync(cluster.fail_primary, channel)
            got: list[object] = []
            while PubSubMessage(channel, b"after") not in got:
                await store.publish(channel, "after")
                with anyio.move_on_after(0.5):
                    got.append(await anext(events))
            assert set(map(type, got)) <= {PubSubMessage, PubSubReconnected}


def _channels_on_every_primary(cluster: RedisCluster, unique: str) -> dict[int, str]:
    """One channel name per primary (by the slot it hashes to)."""
    found: dict[int, str] = {}
    for i in range(10_000):
        channel = f"relayna-test:{unique}:sh{i}"
        found.setdefault(cluster.primary_of(channel), channel)
        if len(found) == 3:
            return found
    raise AssertionError("no channel for some primary")


def _shard_subscribers(port: int, channel: str) -> int:
    reply = _cli(port, "PUBSUB", "SHARDNUMSUB", channel).split()
    return int(reply[1])


async def _next_message(events: AsyncIterator[PubSubEvent]) -> PubSubMessage:
    event = await anext(events)
    assert isinstance(event, PubSubMessage), event
    return event


async def test_sharded_channels_are_followed_on_their_slots_primaries(
    cluster: RedisCluster, unique: str
) -> None:
    """One SSUBSCRIBE per channel on the node owning its slot, one connection per
    node; SPUBLISH is routed by slot and reaches only sharded subscribers."""
    by_port = _channels_on_every_primary(cluster, unique)
    channels = list(by_port.values())
    with anyio.fail_after(30):
        async with open_store(cluster.url) as store:
            assert isinstance(store, ShardedPubSub)
            async with store.ssubscribe(*channels) as sub, store.subscribe(*channels) as classic:
                for port, channel in by_port.items():
                    assert _shard_subscribers(port, channel) == 1
                    others = [p for p in by_port if p != port]
                    assert all(_shard_subscribers(p, channel) == 0 for p in others)
                for channel in channels:
                    assert await store.spublish(channel, f"s-{channel}") == 1
                events = aiter(sub)
                got = {(await _next_message(events)).channel for _ in channels}
                assert got == set(channels)
                assert store._sharded is not None
                assert store._sharded.statistics()["nodes"] == 3
                # The classic subscriber heard none of it: its first message is classic.
                await store.publish(channels[0], "classic")
                assert await anext(aiter(classic)) == PubSubMessage(channels[0], b"classic")


async def test_a_sharded_subscription_follows_its_slot_through_a_resharding(
    cluster: RedisCluster, unique: str
) -> None:
    """MOVED on SSUBSCRIBE (a stale map) sends the channel to the new owner; the
    server's sunsubscribe when the slot migrates again makes the reader subscribe
    at the next owner and tell the subscriber (PubSubReconnected) to re-read."""
    channel = f"relayna-test:{unique}:mig"
    slot = key_slot(channel)
    owner = cluster.primary_of(slot)
    target = _other_primary(cluster, owner)
    with anyio.fail_after(30):
        async with open_store(cluster.url) as store:
            assert isinstance(store, ShardedPubSub)
            await store.get(channel)  # the map is read: the slot belongs to `owner`
            _move_slot(cluster, slot, owner, target)
            try:
                async with store.ssubscribe(channel) as sub:  # owner answers MOVED
                    assert _shard_subscribers(target, channel) == 1
                    assert _shard_subscribers(owner, channel) == 0
                    await store.spublish(channel, "one")
                    events = aiter(sub)
                    assert await _next_message(events) == PubSubMessage(channel, b"one")
                    _move_slot(cluster, slot, target, owner)  # target: sunsubscribe
                    assert await anext(events) == PubSubReconnected()
                    assert _shard_subscribers(owner, channel) == 1
                    await store.spublish(channel, "two")
                    assert await _next_message(events) == PubSubMessage(channel, b"two")
            finally:
                if cluster.primary_of(slot) != owner:
                    _move_slot(cluster, slot, target, owner)


async def test_a_sharded_subscription_moves_to_the_promoted_replica(
    cluster: RedisCluster, unique: str
) -> None:
    """SIGKILL of the channel's primary: the reader subscribes on the promoted
    replica, the subscriber gets PubSubReconnected, then the messages again."""
    channel = f"relayna-test:{unique}:fo"
    with anyio.fail_after(60):
        async with open_store(cluster.url) as store, store.ssubscribe(channel) as sub:
            assert isinstance(store, ShardedPubSub)
            events = aiter(sub)
            await store.spublish(channel, "before")
            assert await _next_message(events) == PubSubMessage(channel, b"before")
            _, promoted = await anyio.to_thread.run_sync(cluster.fail_primary, channel)
            assert await anext(events) == PubSubReconnected()
            assert _shard_subscribers(promoted, channel) == 1
            await store.spublish(channel, "after")
            assert await _next_message(events) == PubSubMessage(channel, b"after")

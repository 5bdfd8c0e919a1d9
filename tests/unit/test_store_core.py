"""Pure, loop-free tests of the fan-out and the memory store core."""

from __future__ import annotations

import pytest

from relayna.errors import SlowSubscriberError, StoreError
from relayna.transport._pubsub_fanout import Fanout
from relayna.transport._store import DirectDelivery, PubSubMessage, PubSubReconnected
from relayna.transport._store_memory_core import MemoryCore


def test_fanout_drops_only_the_slow_subscriber() -> None:
    fanout = Fanout(buffer_size=2, url="redis://x")
    slow, fast = fanout.add(["c"]), fanout.add(["c"])
    for i in range(3):
        fanout.dispatch("c", b"%d" % i)
        if i < 2:
            assert fast._receive.receive_nowait() == PubSubMessage("c", b"%d" % i)
    assert slow.dropped
    assert not fast.dropped
    assert fanout.subscriber_count("c") == 1
    assert isinstance(slow._error, SlowSubscriberError)
    assert fanout.dispatch("c", b"x") == 2 - 1


def test_direct_delivery_only_when_nothing_is_buffered_and_in_order() -> None:
    fanout = Fanout(buffer_size=4)
    sub = fanout.add(["c"])
    assert isinstance(sub, DirectDelivery)
    got: list[bytes] = []
    fanout.dispatch("c", b"backlog")
    assert not sub.deliver_directly(lambda m: got.append(m.data))  # backlog first
    assert sub._receive.receive_nowait() == PubSubMessage("c", b"backlog")
    assert sub.deliver_directly(lambda m: got.append(m.data))
    assert fanout.dispatch("c", b"1") == 1
    assert fanout.dispatch("c", b"2") == 1
    assert got == [b"1", b"2"]
    assert sub._send.statistics().current_buffer_used == 0  # nothing buffered twice


def test_direct_delivery_hands_a_reconnect_back_to_the_buffer() -> None:
    fanout = Fanout(buffer_size=4)
    sub = fanout.add(["c"])
    got: list[bytes] = []
    assert sub.deliver_directly(lambda m: got.append(m.data))
    fanout.broadcast(PubSubReconnected())
    fanout.dispatch("c", b"after")  # buffered behind the notice, not handed over
    assert got == []
    assert sub._receive.receive_nowait() == PubSubReconnected()
    assert sub._receive.receive_nowait() == PubSubMessage("c", b"after")
    assert sub.deliver_directly(lambda m: got.append(m.data))  # re-armed by the owner


def test_a_failing_handler_drops_only_its_subscriber() -> None:
    fanout = Fanout(buffer_size=4)
    bad, good = fanout.add(["c"]), fanout.add(["c"])

    def boom(_message: PubSubMessage) -> None:
        raise RuntimeError("bug")

    assert bad.deliver_directly(boom)
    assert fanout.dispatch("c", b"x") == 1
    assert bad.dropped
    assert isinstance(bad._error, StoreError)
    assert "subscriber handler failed" in str(bad._error)
    assert good._receive.receive_nowait() == PubSubMessage("c", b"x")
    assert not bad.deliver_directly(lambda m: None)  # a dropped subscriber stays dropped
    assert fanout.subscriber_count("c") == 1


def test_memory_core_lazy_ttl_and_types() -> None:
    now = [100.0]
    core = MemoryCore(lambda: now[0], Fanout(), "memory://")
    core.set("k", "v", ttl=0.5)
    assert core.ttl("k") == pytest.approx(0.5)
    now[0] += 0.5
    assert core.get("k") is None
    core.rpush("l", "a")
    with pytest.raises(StoreError, match="WRONGTYPE"):
        core.get("l")
    assert core.zadd("z", {"m": 1}) == 1
    with pytest.raises(StoreError, match="WRONGTYPE"):
        core.lpush("z", "x")

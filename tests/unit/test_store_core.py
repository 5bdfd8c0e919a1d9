"""Pure, loop-free tests of the fan-out and the memory store core."""

from __future__ import annotations

import pytest

from relayna.errors import SlowSubscriberError, StoreError
from relayna.transport._pubsub_fanout import Fanout
from relayna.transport._store import PubSubMessage
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

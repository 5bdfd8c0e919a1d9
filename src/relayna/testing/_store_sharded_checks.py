"""Conformance checks for sharded pubsub (``SPUBLISH``/``SSUBSCRIBE``).

Redis's semantics: a sharded channel is a namespace of its own, so a sharded
publish reaches only sharded subscribers of the channel and a classic publish
only classic ones; ``SPUBLISH`` may be called from a script (on a cluster,
in the slot of the script's keys). Every store shipped with relayna passes
these (the status store's cluster layout depends on them).
"""

from __future__ import annotations

import anyio

from relayna.transport import PubSubMessage, Script, ShardedPubSub, Store, Subscription

__all__ = [
    "check_sharded_awkward_payloads",
    "check_sharded_namespace",
    "check_sharded_refcount",
    "check_sharded_script",
]

#: KEYS[1] a counter in the channel's slot, ARGV[1] the channel, ARGV[2] the message.
#: (Not a module-level Script: the differential suite runs production scripts only.)
_SPUBLISH_LUA = "redis.call('INCR', KEYS[1])\nreturn redis.call('SPUBLISH', ARGV[1], ARGV[2])"

#: Payloads a channel must carry unchanged: empty, NUL, CR LF and RESP framing,
#: bytes that are not UTF-8, and one larger than a socket read.
AWKWARD_PAYLOADS = [
    b"",
    b"\x00",
    b"\r\n",
    b"*3\r\n$7\r\nmessage\r\n",
    bytes(range(256)),
    b"\xff\xfe\xfd",
    b"x" * 70_000,
]


def _sharded(store: Store) -> ShardedPubSub:
    assert isinstance(store, ShardedPubSub), f"{type(store).__name__} has no sharded pubsub"
    return store


async def _next(sub: Subscription) -> PubSubMessage:
    async for event in sub:
        assert isinstance(event, PubSubMessage), event
        return event
    raise AssertionError("the subscription ended")


async def check_sharded_namespace(store: Store, prefix: str) -> None:
    """A sharded publish reaches sharded subscribers only, a classic one classic only."""
    sharded = _sharded(store)
    ch = prefix + "ns"
    with anyio.fail_after(10):
        async with sharded.ssubscribe(ch) as s_sub, store.subscribe(ch) as c_sub:
            assert s_sub.channels == (ch,)
            assert await sharded.spublish(ch, "s1") == 1
            await store.publish(ch, "c1")  # (a cluster node counts its own clients only)
            assert await sharded.spublish(ch, "s2") == 1
            await store.publish(ch, "c2")
            # In order, and nothing of the other namespace in between.
            assert await _next(s_sub) == PubSubMessage(channel=ch, data=b"s1")
            assert await _next(s_sub) == PubSubMessage(channel=ch, data=b"s2")
            assert await _next(c_sub) == PubSubMessage(channel=ch, data=b"c1")
            assert await _next(c_sub) == PubSubMessage(channel=ch, data=b"c2")
        # Nobody left: a sharded publish reaches no one.
        assert await sharded.spublish(ch, "gone") == 0


async def check_sharded_refcount(store: Store, prefix: str) -> None:
    """Two sharded subscribers of a channel; the first keeps receiving after the second left."""
    sharded = _sharded(store)
    ch, other = prefix + "src", prefix + "src2"
    with anyio.fail_after(10):
        async with sharded.ssubscribe(ch, other) as one:
            async with sharded.ssubscribe(ch) as two:
                assert await sharded.spublish(ch, "both") >= 1  # Redis counts connections
                assert await _next(two) == PubSubMessage(channel=ch, data=b"both")
            assert await _next(one) == PubSubMessage(channel=ch, data=b"both")
            assert await sharded.spublish(ch, "still") == 1
            assert await sharded.spublish(other, "too") == 1
            assert await _next(one) == PubSubMessage(channel=ch, data=b"still")
            assert await _next(one) == PubSubMessage(channel=other, data=b"too")
        async with sharded.ssubscribe(ch) as again:  # re-subscribe after the last left
            assert await sharded.spublish(ch, "back") == 1
            assert await _next(again) == PubSubMessage(channel=ch, data=b"back")


async def check_sharded_script(store: Store, prefix: str) -> None:
    """``SPUBLISH`` from a script reaches sharded subscribers, not classic ones."""
    sharded = _sharded(store)
    ch, counter = prefix + "scr", prefix + "scr-n"
    with anyio.fail_after(10):
        async with sharded.ssubscribe(ch) as s_sub, store.subscribe(ch) as c_sub:
            script = Script(name="relayna.testing.spublish", lua=_SPUBLISH_LUA)
            assert await store.run_script(script, [counter], [ch, b"from-lua"]) == 1
            assert await _next(s_sub) == PubSubMessage(channel=ch, data=b"from-lua")
            await store.publish(ch, "classic")
            # The classic subscriber's first message is the classic one.
            assert await _next(c_sub) == PubSubMessage(channel=ch, data=b"classic")
    assert await store.get(counter) == b"1"
    await store.delete(counter)


async def check_sharded_awkward_payloads(store: Store, prefix: str) -> None:
    """Any bytes arrive unchanged and in order, on channels with awkward names."""
    sharded = _sharded(store)
    channels = [prefix + "aw", prefix + "aw é\r\n\x00x"]
    with anyio.fail_after(10):
        async with sharded.ssubscribe(*channels) as sub:
            for ch in channels:
                for payload in AWKWARD_PAYLOADS:
                    assert await sharded.spublish(ch, payload) == 1
            for ch in channels:
                for payload in AWKWARD_PAYLOADS:
                    assert await _next(sub) == PubSubMessage(channel=ch, data=payload)

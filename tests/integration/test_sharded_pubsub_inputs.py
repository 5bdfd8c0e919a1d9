"""Sharded pubsub with generated channel names and payloads: the memory store
and the real Redis (native client), both backends. Any channel name (any
Unicode text but lone surrogates, which have no UTF-8 form) and any bytes
arrive unchanged, in order, and never cross into the classic namespace."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayna.transport import PubSubMessage, ShardedPubSub, open_store

pytestmark = pytest.mark.anyio

_channels = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
_payloads = st.lists(st.binary(max_size=300), min_size=1, max_size=8)


async def _check(url: str, prefix: str, channel: str, payloads: list[bytes]) -> None:
    name = prefix + channel
    async with open_store(url) as store:
        assert isinstance(store, ShardedPubSub)
        async with store.ssubscribe(name) as sharded, store.subscribe(name) as classic:
            for payload in payloads:
                await store.spublish(name, payload)
            await store.publish(name, b"classic")
            got = []
            async for event in sharded:
                assert isinstance(event, PubSubMessage)
                got.append(event)
                if len(got) == len(payloads):
                    break
            assert got == [PubSubMessage(channel=name, data=p) for p in payloads]
            async for event in classic:  # the sharded publishes never reached it
                assert event == PubSubMessage(channel=name, data=b"classic")
                break


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(channel=_channels, payloads=_payloads)
async def test_any_channel_and_bytes_on_the_memory_store(
    channel: str, payloads: list[bytes]
) -> None:
    with anyio.fail_after(10):
        await _check("memory://", "", channel, payloads)


@pytest.mark.redis
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(channel=_channels, payloads=_payloads)
async def test_any_channel_and_bytes_on_redis(
    redis_url: str, unique: str, channel: str, payloads: list[bytes]
) -> None:
    with anyio.fail_after(10):
        await _check(redis_url, f"relayna-test:{unique}:", channel, payloads)

"""Parts the pubsub readers share: subscribe commands, channel refcounts and
confirmation waits, the keepalive PING loop."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import anyio

from relayna.errors import StoreConnectionError, StoreConnectionLost

__all__ = [
    "ChannelState",
    "SubscribeBySend",
    "hold_channels",
    "ping_forever",
    "release_channels",
    "subscribe_commands",
    "unsubscribe_commands",
    "wait_confirmed",
]


def subscribe_commands(channels: Sequence[str], *, sharded: bool) -> list[tuple[bytes, list[str]]]:
    """(command, channels): SUBSCRIBE for all ``channels``, or one SSUBSCRIBE
    each (on a cluster the channels of one SSUBSCRIBE must share a slot)."""
    if sharded:
        return [(b"SSUBSCRIBE", [channel]) for channel in channels]
    return [(b"SUBSCRIBE", list(channels))]


def unsubscribe_commands(
    channels: Sequence[str], *, sharded: bool
) -> list[tuple[bytes, list[str]]]:
    """(command, channels): UNSUBSCRIBE for all ``channels``, or one SUNSUBSCRIBE each."""
    if sharded:
        return [(b"SUNSUBSCRIBE", [channel]) for channel in channels]
    return [(b"UNSUBSCRIBE", list(channels))]


class ChannelState:
    """A subscribed channel: how many subscribers hold it, and whether the
    server confirmed its subscription on the current connection."""

    def __init__(self) -> None:
        self.refs = 0
        self.confirmed = anyio.Event()


_C = TypeVar("_C", bound=ChannelState)


def hold_channels(
    table: dict[str, _C], channels: Sequence[str], make: Callable[[], _C]
) -> list[str]:
    """Count one more subscriber of each channel; the channels new to ``table``."""
    new = []
    for channel in channels:
        state = table.get(channel)
        if state is None:
            state = table[channel] = make()
            new.append(channel)
        state.refs += 1
    return new


def release_channels(table: dict[str, _C], channels: Sequence[str]) -> list[tuple[str, _C]]:
    """Count one subscriber less of each channel; those nobody holds any more."""
    gone = []
    for channel in channels:
        state = table[channel]
        state.refs -= 1
        if state.refs == 0:
            del table[channel]
            gone.append((channel, state))
    return gone


async def wait_confirmed(
    table: Mapping[str, ChannelState],
    channels: Sequence[str],
    within: float,
    *,
    verb: str,
    url: str | None,
) -> None:
    """Until every channel is confirmed at once (a reconnect may un-confirm
    one while waiting for another); :class:`StoreConnectionError` after ``within`` seconds."""
    with anyio.move_on_after(within) as scope:
        while True:
            pending = [c for c in channels if not table[c].confirmed.is_set()]
            if not pending:
                return
            await table[pending[0]].confirmed.wait()
    if scope.cancelled_caught:
        raise StoreConnectionError(
            f"the server did not confirm {verb} {' '.join(channels)} within {within:g}s",
            url=url,
        )


class _Pingable(Protocol):
    async def ping(self) -> None: ...


async def ping_forever(conn: _Pingable, keepalive: float, url: str | None) -> None:
    """PING ``conn`` every ``keepalive`` seconds; no answer within one more
    interval raises :class:`~relayna.errors.StoreConnectionLost` (a half-open
    connection shows no other way)."""
    while True:
        await anyio.sleep(keepalive)
        try:
            with anyio.fail_after(keepalive):
                await conn.ping()
        except TimeoutError:
            raise StoreConnectionLost(
                f"no answer to the pubsub keepalive PING within {keepalive:g}s", url=url
            ) from None


class SubscribeBySend:
    """``subscribe``/``unsubscribe`` of a :class:`RawPubSub` over its ``_send``."""

    async def _send(self, *args: Any) -> None:
        raise NotImplementedError

    async def subscribe(self, channels: Sequence[str], *, sharded: bool = False) -> None:
        for name, args in subscribe_commands(channels, sharded=sharded):
            await self._send(name, *args)

    async def unsubscribe(self, channels: Sequence[str], *, sharded: bool = False) -> None:
        for name, args in unsubscribe_commands(channels, sharded=sharded):
            await self._send(name, *args)

"""Sharded pubsub on a Redis Cluster: each channel followed on its slot's primary.

Theory of operation
-------------------
A sharded channel lives on the node serving its hash slot: ``SPUBLISH``
delivers there only, and ``SSUBSCRIBE`` must be sent there. This reader keeps
**one connection per node** that owns subscribed channels (a node reader task,
started the first time a channel is placed on that node, in the store's task
group) and one :class:`~relayna.transport._pubsub_fanout.Fanout` for all
subscribers, with the same refcounting, confirmation wait and bounded buffers
as the single-server :class:`~relayna.transport._pubsub.PubSubMultiplexer`.

A channel is *placed* on the primary of its slot per the store's slot map
and confirmed by the node's ``ssubscribe`` reply. It is *lost* when:

* the node's connection drops (the node died, a keepalive PING went
  unanswered): every channel of that node is lost; the reader re-reads the
  slot map and places them again (on the promoted replica once the cluster
  has failed over; until then on the same address, retried with backoff);
* the node answers ``-MOVED`` to an ``SSUBSCRIBE`` (the map was stale): the
  channels of that slot move to the node named;
* the node sends an unsolicited ``sunsubscribe`` (the slot migrated away):
  the channel is placed again after a map re-read.

When a lost channel is confirmed again, each subscriber of it that was
*armed* (its ``subscribe`` had returned) gets one
:class:`~relayna.transport.PubSubReconnected`: messages published in between
are gone (pubsub is at most once), so it re-reads its durable history (the
status stream's gap fill). A subscriber that joined while the channel was
lost reads its history after the confirmation and gets no notice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import attrs
from anyio.abc import TaskGroup

from relayna.errors import StoreConnectionError, StoreConnectionLost, StoreError, unwrap_groups
from relayna.transport._pubsub import (
    ChannelState,
    RawMessage,
    RawSubscribed,
    hold_channels,
    ping_forever,
    push_event,
    release_channels,
    wait_confirmed,
)
from relayna.transport._pubsub_fanout import DEFAULT_SUBSCRIBER_BUFFER, Fanout, Subscriber
from relayna.transport._store import PubSubReconnected, Subscription
from relayna.transport._store_resp import reply_error
from relayna.transport.resp._cluster import ClusterRespStore
from relayna.transport.resp._cluster_url import key_slot
from relayna.transport.resp._cluster_util import Address, redirect_of
from relayna.transport.resp._connect import open_connection
from relayna.transport.resp._protocol import ErrorReply
from relayna.transport.resp._store import _NativePubSub

__all__ = ["ClusterShardedPubSub"]

log = logging.getLogger("relayna.transport.pubsub")


@attrs.frozen
class _Moved:
    """``-MOVED slot host:port`` in answer to an SSUBSCRIBE."""

    slot: int
    target: Address


@attrs.frozen
class _Unsubscribed:
    """A ``sunsubscribe`` reply: ours, or the server's when the slot migrated."""

    channel: str


class _NodePubSub(_NativePubSub):
    """A node's sharded pubsub connection: redirects and unsubscribe notices
    are events here, not connection failures."""

    async def next_sharded(self) -> RawMessage | RawSubscribed | _Moved | _Unsubscribed:
        while True:
            reply = await self._conn.read_reply()
            if isinstance(reply, ErrorReply):
                redirect = redirect_of(reply.message)
                if redirect is not None and redirect[0] == "MOVED":
                    return _Moved(redirect[1], redirect[2])
                error = reply_error(reply.message, self._conn.params.url, "read")
                if isinstance(error, StoreConnectionError):
                    raise error
                raise StoreConnectionLost(  # CLUSTERDOWN, TRYAGAIN, LOADING...: start over
                    f"Redis answered a sharded pubsub connection with: {reply.message}",
                    url=self._conn.params.url,
                )
            if _is_sunsubscribe(reply):
                return _Unsubscribed(bytes(reply[1]).decode())
            event = push_event(reply)
            if event is not None:
                return event
            if reply == b"PONG" or (isinstance(reply, list) and reply and reply[0] == b"pong"):
                self._answered()


def _is_sunsubscribe(reply: Any) -> bool:
    return (
        isinstance(reply, list)
        and len(reply) == 3
        and isinstance(reply[0], bytes)
        and reply[0].lower() == b"sunsubscribe"
        and isinstance(reply[1], bytes)
    )


class _Channel(ChannelState):
    def __init__(self) -> None:
        super().__init__()
        self.lost = False  # confirmed once, then lost: its armed subscribers get a notice
        self.node: Address | None = None


class _Node:
    __slots__ = ("address", "channels", "conn", "unsubscribing", "wake")

    def __init__(self, address: Address) -> None:
        self.address = address
        self.channels: set[str] = set()
        self.conn: _NodePubSub | None = None
        self.unsubscribing: Counter[str] = Counter()  # our SUNSUBSCRIBEs not yet answered
        self.wake = anyio.Event()


class ClusterShardedPubSub:
    """Sharded subscriptions on a cluster (see the module docs).

    Args:
        store: the cluster store whose slot map places channels.
        task_group: the store's task group; node readers run there.
        subscribe_timeout: how long ``subscribe`` waits for every channel's
            confirmation (a failover in progress included).
    """

    def __init__(
        self,
        store: ClusterRespStore,
        task_group: TaskGroup,
        *,
        buffer_size: int = DEFAULT_SUBSCRIBER_BUFFER,
        subscribe_timeout: float = 10.0,
        keepalive: float = 15.0,
        backoff: tuple[float, float] = (0.05, 0.25),
    ) -> None:
        self._store = store
        self._tg = task_group
        self._url = store.url
        self._fanout = Fanout(buffer_size=buffer_size, url=self._url)
        self._subscribe_timeout = subscribe_timeout
        self._keepalive = keepalive
        self._backoff = backoff
        self._channels: dict[str, _Channel] = {}
        self._nodes: dict[Address, _Node] = {}
        self._armed: set[Subscriber] = set()
        self._closed = False
        self.reconnects = 0  # channels confirmed again after a loss

    def subscribe(self, *channels: str) -> AbstractAsyncContextManager[Subscription]:
        return self._subscription(tuple(dict.fromkeys(channels)))

    @asynccontextmanager
    async def _subscription(self, channels: tuple[str, ...]) -> AsyncIterator[Subscription]:
        if not channels:
            raise ValueError("ssubscribe() needs at least one channel")
        if self._closed:
            raise StoreError("the store is closed", url=self._url)
        sub = self._fanout.add(channels)
        new = hold_channels(self._channels, channels, _Channel)
        try:
            for channel in new:
                await self._place(channel)
            await wait_confirmed(
                self._channels,
                channels,
                self._subscribe_timeout,
                verb="SSUBSCRIBE",
                url=self._url,
            )
            self._armed.add(sub)
            yield sub
        finally:
            self._armed.discard(sub)
            self._fanout.remove(sub)
            for channel, state in release_channels(self._channels, channels):
                with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
                    await self._leave(channel, state)

    async def _leave(self, channel: str, state: _Channel) -> None:
        node = self._nodes.get(state.node) if state.node is not None else None
        if node is None or channel not in node.channels:
            return
        node.channels.discard(channel)
        if node.conn is not None:
            node.unsubscribing[channel] += 1
            try:
                await node.conn.unsubscribe([channel], sharded=True)
            except StoreConnectionError as exc:  # a new connection will not subscribe it
                log.info("SUNSUBSCRIBE failed on a lost connection: %s", exc)

    # -- placing channels --------------------------------------------------------
    async def _place(self, channel: str, owner: Address | None = None) -> None:
        """Put ``channel`` on its slot's primary and subscribe it there."""
        if owner is None:
            owner = await self._store.slot_owner(key_slot(channel))
        state = self._channels.get(channel)
        if state is None:  # the last subscriber left meanwhile
            return
        node = self._nodes.get(owner)
        if node is None:
            node = self._nodes[owner] = _Node(owner)
            self._tg.start_soon(self._run_node, node)
        state.node = owner
        node.channels.add(channel)
        conn = node.conn
        if conn is not None:
            try:
                await conn.subscribe([channel], sharded=True)
            except StoreConnectionError as exc:  # the reader re-places it
                log.info("SSUBSCRIBE failed, waiting for the node's reader: %s", exc)
        else:
            node.wake.set()

    def _lose(self, node: _Node, channels: set[str]) -> list[str]:
        """Take ``channels`` off ``node``; they wait to be placed again."""
        lost = []
        for channel in channels:
            node.channels.discard(channel)
            state = self._channels.get(channel)
            if state is None or state.node != node.address:
                continue
            state.node = None
            if state.confirmed.is_set():
                state.confirmed = anyio.Event()
                state.lost = True
            lost.append(channel)
        return lost

    async def _replace(self, channels: list[str], epoch: int) -> None:
        await self._store.reread_slots(epoch)
        for channel in channels:
            await self._place(channel)

    def _confirmed(self, channel: str, node: _Node) -> None:
        state = self._channels.get(channel)
        if state is None or state.node != node.address:
            return  # left, or placed elsewhere since
        state.confirmed.set()
        if state.lost:
            state.lost = False
            self.reconnects += 1
            notice = PubSubReconnected()
            for sub in self._fanout.subscribers(channel):
                if sub in self._armed:
                    sub.offer(notice, self._url)

    # -- node readers ------------------------------------------------------------
    async def _run_node(self, node: _Node) -> None:
        first, max_delay = self._backoff
        delay = first
        while True:
            if not node.channels:
                node.wake = anyio.Event()
                await node.wake.wait()
                continue
            epoch = self._store.epoch
            try:
                conn = await open_connection(self._store.node_params(node.address))
                delay = first  # the node answers: a later loss retries quickly
                try:
                    node.conn = _NodePubSub(conn)
                    await self._session(node, node.conn)
                finally:
                    node.conn = None
                    node.unsubscribing.clear()
                    with anyio.CancelScope(shield=True):
                        await conn.aclose()
            except StoreConnectionError as exc:
                level = logging.WARNING if delay == first else logging.DEBUG
                log.log(level, "sharded pubsub on %s:%s lost (%s)", *node.address, exc)
            # Every channel here is lost; re-read the map and place them again
            # (here again until the cluster promoted a replica: retried).
            lost = self._lose(node, set(node.channels))
            await anyio.sleep(delay)
            delay = min(delay * 2, max_delay)
            await self._replace(lost, epoch)

    async def _session(self, node: _Node, conn: _NodePubSub) -> None:
        channels = list(node.channels)
        if channels:
            await conn.subscribe(channels, sharded=True)
        with unwrap_groups():  # a lost connection leaves as itself
            async with anyio.create_task_group() as tg:
                tg.start_soon(ping_forever, conn, self._keepalive, self._url)
                await self._read(node, conn)

    async def _read(self, node: _Node, conn: _NodePubSub) -> None:
        while True:
            event = await conn.next_sharded()
            if isinstance(event, RawMessage):
                self._fanout.dispatch(event.channel, event.data)
            elif isinstance(event, RawSubscribed):
                self._confirmed(event.channel, node)
            elif isinstance(event, _Unsubscribed):
                await self._on_unsubscribed(node, event.channel)
            else:
                await self._on_moved(node, event)

    async def _on_unsubscribed(self, node: _Node, channel: str) -> None:
        if node.unsubscribing[channel] > 0:  # the answer to our SUNSUBSCRIBE
            node.unsubscribing[channel] -= 1
            return
        epoch = self._store.epoch
        lost = self._lose(node, {channel})
        if lost:
            log.info("sharded channel %s left %s:%s (slot migrated)", channel, *node.address)
            await self._replace(lost, epoch)

    async def _on_moved(self, node: _Node, moved: _Moved) -> None:
        epoch = self._store.epoch
        await self._store.reread_slots(epoch, (moved.slot, moved.target))
        here = {c for c in node.channels if key_slot(c) == moved.slot}
        for channel in self._lose(node, here):
            await self._place(channel, moved.target)

    def statistics(self) -> dict[str, int]:
        return {
            "channels": len(self._channels),
            "nodes": sum(1 for n in self._nodes.values() if n.channels),
            "reconnects": self.reconnects,
            "dropped_subscribers": self._fanout.dropped_total,
        }

    def close(self) -> None:
        """End every subscription with StoreError (called when the store closes)."""
        self._closed = True
        self._fanout.close(StoreError("the store was closed", url=self._url))

"""The native Redis Cluster store: :class:`RespStore` commands routed by hash slot.

One :class:`~relayna.transport.resp._connect.SharedConnection` per node (the
same pipelined connection as the single-node store), a slot map read with
``CLUSTER SLOTS``, and a router:

* a command goes to the primary of its key's slot; multi-key ``MGET`` and
  ``DEL`` are split by slot; a script's keys must share one slot, else
  :class:`~relayna.errors.CrossSlotError` naming them, before anything is sent;
* ``MOVED`` updates the slot and re-reads the map, ``ASK`` sends ``ASKING``
  and the command to the importing node once (a slot being migrated);
* ``CLUSTERDOWN``/``TRYAGAIN`` and a node that refuses connections (a primary
  just died) are retried on the re-read map until ``failover_timeout``, then
  raise :class:`~relayna.errors.StoreConnectionError`: nothing was sent, so
  a retry cannot apply a write twice;
* a connection lost mid-command re-reads the map; a read is sent once more,
  a write or script raises :class:`~relayna.errors.StoreConnectionLost` (it
  may or may not have been applied: the caller decides, as on one node).

Keyless commands: ``PING`` and classic ``PUBLISH`` go to any node (a classic
publish reaches every node's subscribers over the cluster bus), ``SCRIPT
LOAD`` to every primary. ``SPUBLISH`` is routed by its channel's slot, as a key. :meth:`ClusterRespStore.wait_replicated` sends
``WAIT`` to the primaries of some keys on the connections their writes used.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import anyio

from relayna.errors import (
    ScriptError,
    StoreAuthenticationError,
    StoreConnectionError,
    StoreConnectionLost,
    StoreError,
)
from relayna.transport._pubsub import PubSubMultiplexer
from relayna.transport._store import Script, Value
from relayna.transport._store_resp import CallKind, NoScript, RespStore, reply_error
from relayna.transport.resp._cluster_url import SLOTS, ClusterParams, check_one_slot, key_slot
from relayna.transport.resp._cluster_util import Address, gather, redirect_of, text
from relayna.transport.resp._connect import SharedConnection
from relayna.transport.resp._connection import RespConnection
from relayna.transport.resp._protocol import ErrorReply
from relayna.transport.resp._url import RespParams

__all__ = ["ClusterRespStore"]

#: Commands whose keys are all their arguments after the name.
_MULTI_KEY = {b"MGET", b"DEL"}
#: Commands without a key: any node answers.
_ANY_NODE = {b"PING", b"PUBLISH"}
#: Redirects one command may follow (a slot moves at most twice during a resharding).
_MAX_REDIRECTS = 16
#: Pause between attempts while the cluster cannot serve a slot.
_RETRY_PAUSE = 0.05


class ClusterRespStore(RespStore):
    """A :class:`~relayna.transport.Store` on a Redis Cluster (see module docs)."""

    def __init__(self, params: ClusterParams, pubsub: PubSubMultiplexer) -> None:
        self._params = params
        self._url = params.url
        self._pubsub = pubsub
        self._connections: dict[Address, SharedConnection] = {}
        self._slots: list[Address | None] = [None] * SLOTS
        self._primaries: list[Address] = []
        # node -> the connection its last write went through (see wait_replicated)
        self._written: dict[Address, RespConnection | None] = {}
        self._epoch = 0  # bumped by each map read
        self._refreshing = anyio.Lock()
        self._closed = False

    # -- nodes and the slot map --------------------------------------------------
    def _connection(self, address: Address) -> SharedConnection:
        conn = self._connections.get(address)
        if conn is None:
            if self._closed:
                raise StoreConnectionError("the store was closed", url=self._url)
            conn = SharedConnection(self._params.node(*address))
            self._connections[address] = conn
        return conn

    def _candidates(self) -> list[Address]:
        """Nodes to read the slot map from: known primaries, then the seeds."""
        known = list(dict.fromkeys([*self._primaries, *self._connections]))
        random.shuffle(known)
        seeds = [(s.host, s.port) for s in self._params.seeds]
        return list(dict.fromkeys([*known, *seeds]))

    async def refresh(self, seen: int | None = None) -> None:
        """Read the slot map (``CLUSTER SLOTS``) from the first node that answers;
        a no-op when someone re-read it since epoch ``seen``."""
        async with self._refreshing:
            if seen is not None and self._epoch != seen:
                return
            last: StoreError | None = None
            for address in self._candidates():
                try:
                    (reply,) = await self._connection(address).roundtrip(((b"CLUSTER", b"SLOTS"),))
                except StoreAuthenticationError:
                    raise
                except StoreConnectionError as exc:
                    last = exc
                    continue
                if isinstance(reply, ErrorReply):
                    last = reply_error(reply.message, self._url, "read")
                    if isinstance(last, StoreAuthenticationError):
                        raise last
                    continue
                if self._apply(reply, address):
                    return
            raise StoreConnectionError(
                f"no Redis Cluster node answered CLUSTER SLOTS with a full map ({last})",
                url=self._url,
            )

    def _apply(self, reply: Any, source: Address) -> bool:
        slots: list[Address | None] = [None] * SLOTS
        primaries: list[Address] = []
        for entry in reply or ():
            start, end, primary = int(entry[0]), int(entry[1]), entry[2]
            host = text(primary[0]) or source[0]
            address = (host, int(primary[1]))
            slots[start : end + 1] = [address] * (end - start + 1)
            primaries.append(address)
        if None in slots:
            return False  # a node that has not heard of every slot's owner yet
        self._slots = slots
        self._primaries = list(dict.fromkeys(primaries))
        self._epoch += 1
        return True

    async def _owner(self, slot: int | None) -> Address:
        address = self._slots[slot if slot is not None else 0]
        if address is None:
            await self.refresh(self._epoch)
            address = self._slots[slot if slot is not None else 0]
            assert address is not None
        return address

    # -- one command -------------------------------------------------------------
    @staticmethod
    def _slot_of(args: Sequence[Value]) -> int | None:
        name = args[0]
        if name in _ANY_NODE or len(args) < 2:
            return None
        if name == b"EVALSHA":
            count = int(args[2])
            return check_one_slot([text(k) for k in args[3 : 3 + count]], "EVALSHA")
        return key_slot(text(args[1]))

    async def _call(self, kind: CallKind, *args: Value) -> Any:
        name = args[0]
        if name in _MULTI_KEY and len(args) > 2:
            return await self._split(kind, args)
        if name == b"SCRIPT":
            return await self._on_primaries(kind, args)
        return await self._routed(kind, self._slot_of(args), args)

    async def _routed(self, kind: CallKind, slot: int | None, args: Sequence[Value]) -> Any:
        deadline = anyio.current_time() + self._params.failover_timeout
        retried = False
        redirects = 0
        ask: Address | None = None
        while True:
            epoch = self._epoch
            address = ask or await self._owner(slot)
            commands: tuple[Sequence[Value], ...] = ((b"ASKING",), args) if ask else (args,)
            ask = None
            try:
                shared = self._connection(address)
                reply = (await shared.roundtrip(commands))[-1]
                if kind != "read":
                    self._written[address] = shared.current
            except StoreConnectionLost:
                await self._refresh_quietly(epoch)
                if kind == "read" and not retried:
                    retried = True
                    continue
                raise
            except StoreAuthenticationError:
                raise
            except StoreConnectionError as exc:  # nothing was sent: the node is down
                await self._pause(deadline, epoch, exc)
                continue
            if not isinstance(reply, ErrorReply):
                return reply
            redirect = redirect_of(reply.message)
            if redirect is not None:
                redirects += 1
                if redirects > _MAX_REDIRECTS:  # nodes disagreeing about a slot
                    raise StoreError(
                        f"Redis Cluster: more than {_MAX_REDIRECTS} redirects for one "
                        f"command, the last {reply.message}",
                        url=self._url,
                    )
                verb, moved_slot, target = redirect
                if verb == "ASK":
                    ask = target
                else:
                    # Re-read the map for the other slots, but trust the MOVED
                    # for this one: the node asked may not have heard of it yet.
                    await self._refresh_quietly(epoch)
                    self._slots[moved_slot] = target
                continue
            code = reply.message.split(" ", 1)[0]
            if code in ("CLUSTERDOWN", "TRYAGAIN"):
                error = StoreConnectionError(f"Redis Cluster: {reply.message}", url=self._url)
                await self._pause(deadline, epoch, error)
                continue
            raise reply_error(reply.message, self._url, kind)

    async def _refresh_quietly(self, epoch: int) -> None:
        try:
            await self.refresh(epoch)
        except StoreAuthenticationError:
            raise
        except StoreConnectionError:
            pass  # the next attempt routes on the old map, and fails or retries

    async def _pause(self, deadline: float, epoch: int, error: StoreConnectionError) -> None:
        """Wait for the cluster to serve the slot again, or give up at ``deadline``."""
        if anyio.current_time() >= deadline:
            raise StoreConnectionError(
                f"{error} (still failing after failover_timeout="
                f"{self._params.failover_timeout:g}s)",
                url=self._url,
            ) from error
        await anyio.sleep(_RETRY_PAUSE)
        await self._refresh_quietly(epoch)

    async def _split(self, kind: CallKind, args: Sequence[Value]) -> Any:
        """MGET/DEL over keys in several slots: one command per slot."""
        name, keys = args[0], list(args[1:])
        by_slot: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            by_slot.setdefault(key_slot(text(key)), []).append(i)
        results: dict[int, Any] = {}

        async def one(slot: int, positions: list[int]) -> None:
            results[slot] = await self._routed(kind, slot, [name, *(keys[i] for i in positions)])

        await gather([(one, (slot, pos)) for slot, pos in by_slot.items()])
        if name == b"DEL":
            return sum(int(r) for r in results.values())
        out: list[Any] = [None] * len(keys)
        for slot, positions in by_slot.items():
            for i, value in zip(positions, results[slot], strict=True):
                out[i] = value
        return out

    async def _on_primaries(self, kind: CallKind, args: Sequence[Value]) -> Any:
        """A keyless command every primary must run (SCRIPT LOAD): the last reply."""
        if not self._primaries:
            await self.refresh()
        replies: dict[Address, Any] = {}

        async def one(address: Address) -> None:
            (reply,) = await self._connection(address).roundtrip((args,))
            if isinstance(reply, ErrorReply):
                raise reply_error(reply.message, self._url, kind)
            replies[address] = reply

        await gather([(one, (address,)) for address in self._primaries])
        return replies[self._primaries[-1]]

    # -- batches -----------------------------------------------------------------
    async def run_script(self, script: Script, keys: Sequence[str], args: Sequence[Value]) -> Any:
        check_one_slot(keys, script.name)
        return await super().run_script(script, keys, args)

    async def run_script_many(
        self, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[Value]]]
    ) -> list[Any]:
        for keys, _ in calls:
            check_one_slot(keys, script.name)
        return await super().run_script_many(script, calls)

    async def _pipeline(self, commands: Sequence[Sequence[Value]]) -> list[Any]:
        """One pipeline per node, concurrently; a command redirected or refused
        for a failover is sent again alone through the router."""
        by_node: dict[Address, list[int]] = {}
        for i, command in enumerate(commands):
            address = await self._owner(self._slot_of(command))
            by_node.setdefault(address, []).append(i)
        results: list[Any] = [None] * len(commands)
        again: list[int] = []

        async def one(address: Address, positions: list[int]) -> None:
            try:
                shared = self._connection(address)
                replies = await shared.roundtrip([commands[i] for i in positions])
                # scripts write: wait_replicated must WAIT on this connection too
                self._written[address] = shared.current
            except StoreConnectionLost:
                raise
            except StoreAuthenticationError:
                raise
            except StoreConnectionError:
                again.extend(positions)  # nothing was sent
                return
            for i, reply in zip(positions, replies, strict=True):
                if isinstance(reply, ErrorReply):
                    code = reply.message.split(" ", 1)[0]
                    if code in ("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN"):
                        again.append(i)
                        continue
                    results[i] = reply_error(reply.message, self._url, "script")
                else:
                    results[i] = reply

        epoch = self._epoch
        await gather([(one, (address, positions)) for address, positions in by_node.items()])
        if again:
            await self._refresh_quietly(epoch)
        for i in sorted(again):
            try:
                results[i] = await self._routed("script", self._slot_of(commands[i]), commands[i])
            except (ScriptError, NoScript) as exc:
                results[i] = exc
        return results

    async def wait_replicated(
        self, replicas: int, within: float, keys: Sequence[str] | None = None
    ) -> int:
        """``WAIT replicas within`` on every primary this store wrote to (or only
        those serving ``keys``), on the very connection the writes went through;
        the fewest replicas that acknowledged. At least ``replicas`` means every
        earlier write of this store to those nodes reached that many replicas.

        Raises:
            StoreConnectionLost: a node's connection was replaced since a write
                went through it, or the node is no longer a primary (a failover):
                whether that write was replicated is unknown (write again, then
                wait).
        """
        if keys is None:
            # a node written to that is no longer a primary (it died and its
            # replica took over) may have lost those writes: not skipped, failed
            addresses = list(self._written)
        else:
            addresses = list(dict.fromkeys([await self._owner(key_slot(k)) for k in keys]))
        acked: list[int] = []
        command = (b"WAIT", replicas, max(1, round(within * 1000)))

        async def one(address: Address) -> None:
            conn = self._written.get(address)
            if address not in self._primaries:
                self._written.pop(address, None)
                raise StoreConnectionLost(
                    f"{address[0]}:{address[1]} is no longer a primary since a write went "
                    "to it: its replication is unknown",
                    url=self._url,
                )
            if conn is None or conn.broken or self._connection(address).current is not conn:
                self._written.pop(address, None)
                raise StoreConnectionLost(
                    f"the connection to {address[0]}:{address[1]} was replaced after a write: "
                    "its replication is unknown",
                    url=self._url,
                )
            with anyio.move_on_after(within + self._params.seeds[0].connect_timeout):
                (reply,) = await conn.roundtrip((command,))
                if isinstance(reply, ErrorReply):
                    raise reply_error(reply.message, self._url, "write")
                acked.append(int(reply))
                return
            raise StoreConnectionLost(
                f"WAIT on {address[0]}:{address[1]} did not return", url=self._url
            )

        await gather([(one, (address,)) for address in addresses])
        return min(acked, default=replicas)

    # -- for the sharded pubsub readers (resp._cluster_pubsub) --------------------
    @property
    def epoch(self) -> int:
        """Bumped by each slot map read."""
        return self._epoch

    async def slot_owner(self, slot: int) -> Address:
        """The primary serving ``slot`` on the current map (read first if needed)."""
        return await self._owner(slot)

    async def reread_slots(self, epoch: int, moved: tuple[int, Address] | None = None) -> None:
        """Re-read the map unless someone did since ``epoch`` (no error if no
        node answers); ``moved``: a MOVED's slot and target, trusted for that slot."""
        await self._refresh_quietly(epoch)
        if moved is not None:
            self._slots[moved[0]] = moved[1]

    def node_params(self, address: Address) -> RespParams:
        """Connection parameters for the node at ``address``."""
        return self._params.node(*address)

    def pubsub_candidates(self) -> list[RespParams]:
        """Nodes a pubsub connection may use (any node hears classic publishes)."""
        return [self._params.node(*address) for address in self._candidates()]

    async def aclose(self) -> None:
        self._closed = True
        for conn in list(self._connections.values()):
            await conn.aclose()

"""``ReplicaBarrier``: a broker message is acked only after its store writes reached replicas.

Redis replicates asynchronously: a primary acknowledges a write before any
replica has it, and a primary killed right after loses it when its replica
is promoted. A component that acks a broker message after writing its effect
(a DLQ record, a workflow step, a cancel claim, an idempotency mark) would
then have acked an effect that vanished. On a store that can wait for its
replicas (a Redis Cluster store: ``wait_replicated``) the barrier sends
``WAIT n`` to every primary the store wrote to, on the connections the
writes used, before the ack.

Group commit: callers that arrive while a round is in flight share the next
round, so a busy worker pays one ``WAIT`` per node per batch of acks, not one
per message. A round that fails (too few replicas within ``wait``, or a
connection replaced since the writes: their fate is unknown) fails every
caller whose writes it may have carried; those do not ack (the store scripts
are idempotent, so writing again or a redelivery is safe).

``acks=None`` means 1 on a store that can wait, 0 (no-op) elsewhere; asking
for replicas of a store that cannot wait is a :class:`ConfigurationError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio

from relayna.errors import ConfigurationError, StoreConnectionError, StoreError

__all__ = ["ReplicaBarrier", "can_wait_for_replicas"]

_Wait = Callable[[int, float], Awaitable[int]]


def _waiter(store: Any) -> _Wait | None:
    wait = getattr(store, "wait_replicated", None)
    return wait if callable(wait) else None


def can_wait_for_replicas(store: Any) -> bool:
    """Whether ``store`` can wait for its replicas (a Redis Cluster store)."""
    return _waiter(store) is not None


class _Rounds:
    """Group-committed ``WAIT`` rounds on one store (see the module docs)."""

    def __init__(self, wait: _Wait, acks: int, within: float, what: str) -> None:
        self._wait = wait
        self._acks = acks
        self._within = within
        self._what = what
        self._issued = 0  # tickets handed out (one per caller, after its writes)
        self._confirmed = 0  # every ticket up to this one is replicated
        self._failed = 0  # every ticket up to this one (not confirmed) failed
        self._error = ""
        self._round: anyio.Event | None = None
        self.rounds = 0

    async def wait(self) -> None:
        self._issued += 1
        ticket = self._issued
        while True:
            if ticket <= self._confirmed:
                return
            if ticket <= self._failed:
                raise StoreConnectionError(f"{self._what}: {self._error}")
            if self._round is not None:
                await self._round.wait()
                continue
            await self._run_round()

    async def _run_round(self) -> None:
        self._round = done = anyio.Event()
        covers = self._issued
        self.rounds += 1
        try:
            acked = await self._wait(self._acks, self._within)
            if acked < self._acks:
                raise StoreConnectionError(
                    f"{acked} of {self._acks} replicas acknowledged the writes "
                    f"within {self._within:g}s"
                )
        except StoreError as exc:
            # every caller whose writes may have gone through the failed round
            self._failed = max(self._failed, self._issued)
            self._error = str(exc)
        else:
            self._confirmed = max(self._confirmed, covers)
        finally:
            self._round = None
            done.set()


class ReplicaBarrier:
    """Wait until the writes made so far through ``stores`` reached ``acks`` replicas.

    Args:
        stores: the stores a component writes to before it acks (duplicates
            are waited for once).
        acks: replicas that must hold the writes; ``None``: 1 when a store can
            wait for replicas (a Redis Cluster store), 0 elsewhere.
        wait: seconds one ``WAIT`` may take before the round fails.
        what: names the component in errors.

    Raises:
        ConfigurationError: ``acks`` > 0 and a store cannot wait for
            replicas, or a negative ``acks`` / non-positive ``wait``.
    """

    def __init__(
        self,
        stores: Iterable[Any],
        acks: int | None = None,
        wait: float = 1.0,
        *,
        what: str = "the store writes",
    ) -> None:
        if acks is not None and (type(acks) is not int or acks < 0):
            raise ConfigurationError(f"replica_acks must be an integer >= 0, got {acks!r}")
        if not wait > 0:
            raise ConfigurationError(f"replica_wait must be > 0 seconds, got {wait!r}")
        unique = list({id(s): s for s in stores if s is not None}.values())
        waiters = [_waiter(s) for s in unique]
        if acks is None:
            acks = 1 if any(w is not None for w in waiters) else 0
        elif acks and any(w is None for w in waiters):
            raise ConfigurationError(
                f"replica_acks={acks} for {what} needs a store that can wait for its "
                "replicas (a Redis Cluster store)"
            )
        self.acks = acks
        self.wait_seconds = wait
        self._rounds = (
            [_Rounds(w, acks, wait, what) for w in waiters if w is not None] if acks else []
        )

    @property
    def enabled(self) -> bool:
        return bool(self._rounds)

    @property
    def rounds(self) -> int:
        """``WAIT`` rounds sent so far (one per node written to, per round)."""
        return sum(r.rounds for r in self._rounds)

    async def wait(self) -> None:
        """Return once every write made before the call reached the replicas.

        Raises:
            StoreConnectionError: too few replicas within ``wait``, or a
                connection a write went through was replaced (the writes'
                replication is unknown): write again, or leave the message
                for redelivery.
        """
        for rounds in self._rounds:
            await rounds.wait()

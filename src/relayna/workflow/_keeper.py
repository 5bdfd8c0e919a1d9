"""``GuardKeeper``: one renewal loop per consumer for the in-flight guards of its handlers.

Theory of operation. A handler runs while its stage holds an in-flight guard
(``owner|expires_ms`` in the in-flight hash). Renewing each guard from its
own task costs a task group and a task per delivery, which is a large part of
a short handler's cost; the keeper instead holds a table of the guards its
consumer's handlers hold, and one loop renews them all every
``heartbeat_interval``. A guard that another owner holds when renewed (it
expired and a worker took the message over) cancels its handler; a store
that keeps failing until the guard may have expired does the same. A guard
registered just after a tick is renewed at the next one: within
``heartbeat_interval``, as with a loop per guard.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import anyio
import attrs
from anyio.abc import TaskStatus

from relayna.consumer import LeasePolicy
from relayna.errors import StoreError

from ._store import Guard

__all__ = ["GuardKeeper", "HeldGuard"]

logger = logging.getLogger("relayna.workflow")
T = TypeVar("T")
#: Bound on the shielded release of a guard whose handler was cancelled.
RELEASE_TIMEOUT = 5.0


@attrs.define(eq=False)
class HeldGuard:
    """One guard a handler holds: ``scope`` is cancelled when it is lost."""

    guard: Guard
    field: str
    owner: str
    expires_at: float
    scope: anyio.CancelScope = attrs.field(factory=anyio.CancelScope)
    lost: str | None = None


@attrs.define(eq=False)
class GuardKeeper:
    policy: LeasePolicy
    held: dict[int, HeldGuard] = attrs.field(factory=dict)
    running: bool = False

    @contextmanager
    def holding(self, guard: Guard, field: str, owner: str) -> Iterator[HeldGuard]:
        """Keep ``field`` renewed while the block runs (run the handler in ``.scope``)."""
        entry = HeldGuard(guard, field, owner, anyio.current_time() + self.policy.ttl)
        self.held[id(entry)] = entry
        try:
            yield entry
        finally:
            del self.held[id(entry)]

    async def call(
        self, guard: Guard, field: str, owner: str, call: Callable[[], Awaitable[T]]
    ) -> T | None:
        """Run ``call`` while ``field`` is renewed; None when the guard was lost
        (``call`` was cancelled then). The guard stays held when ``call``
        returns (the completion or failure script releases it); when ``call``
        is cancelled or raises, it is released (shielded, bounded)."""
        with self.holding(guard, field, owner) as entry:
            try:
                with entry.scope:
                    return await call()
            except BaseException:
                if entry.lost is None:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(RELEASE_TIMEOUT):
                        try:
                            await guard.release(field, owner)
                        except StoreError as exc:
                            logger.warning("guard %s release failed (%r)", field, exc)
                raise
        return None  # the scope was cancelled: the guard was lost

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Renew every held guard each ``heartbeat_interval`` until cancelled."""
        self.running = True
        task_status.started()
        try:
            while True:
                await anyio.sleep(self.policy.heartbeat_interval)
                for entry in list(self.held.values()):
                    await self._renew(entry)
        finally:
            self.running = False

    async def _renew(self, entry: HeldGuard) -> None:
        if entry.lost is not None:
            return
        try:
            held = await entry.guard.renew(entry.field, entry.owner, self.policy.ttl)
        except StoreError as exc:
            # A blip is survivable while the guard cannot have expired yet.
            if anyio.current_time() + self.policy.heartbeat_interval < entry.expires_at:
                logger.warning("guard %s renewal failed (%r); retrying", entry.field, exc)
                return
            self._lose(entry, "renew_failed")
            return
        if not held:
            self._lose(entry, "not_owner")
            return
        entry.expires_at = anyio.current_time() + self.policy.ttl

    @staticmethod
    def _lose(entry: HeldGuard, reason: str) -> None:
        entry.lost = reason
        entry.scope.cancel()

"""Leases for long tasks: one owner per task id across workers.

Theory of operation
-------------------
A lease is a store key ``{prefix}:{lease_id}`` whose value is the owner id
and which expires after ``ttl``. Three scripts, each one atomic round trip
(the same Lua on Redis and on the memory store):

* acquire: ``SET key owner NX PX ttl``; if the key exists but already holds
  ``owner`` (a redelivery to the same worker) the TTL is refreshed. Returns
  1 when ``owner`` holds the lease afterwards, else 0.
* renew: ``PEXPIRE`` only if the value is ``owner``; 1 / 0.
* release: ``DEL`` only if the value is ``owner``; 1 / 0.

The consumer (``lease_id = task_id``) acquires before the handler, renews
every ``heartbeat_interval`` in a task group owned by the delivery's scope,
cancels the handler when a renewal answers "not the owner" (or when
renewals kept failing until the lease may have expired), and releases in a
shielded, time-bounded scope.

On conflict (another worker holds the lease) the delivery is *not*
requeued at once — that would hot-loop between the workers. It is held for
``conflict_delay`` seconds (a sleep inside the delivery's scope, so a drain
cuts it short) and then nack-requeued. At most ``prefetch`` conflicting
deliveries per ``conflict_delay`` reach the broker again per worker, and no
retry attempt is spent on them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import anyio
import attrs
from anyio import CancelScope

from relayna.errors import ConfigurationError, StoreError
from relayna.transport import Script, Store

__all__ = [
    "LEASE_ACQUIRE_SCRIPT",
    "LEASE_RELEASE_SCRIPT",
    "LEASE_RENEW_SCRIPT",
    "LeaseLost",
    "LeasePolicy",
    "LeaseStore",
    "Renewable",
    "call_with_lease",
]

logger = logging.getLogger("relayna.consumer")

T = TypeVar("T")

#: Upper bound for the shielded release.
RELEASE_TIMEOUT = 5.0

_ACQUIRE_LUA = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then
  return 1
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
"""

_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
"""

_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


LEASE_ACQUIRE_SCRIPT = Script(name="relayna.consumer.lease.acquire", lua=_ACQUIRE_LUA)
LEASE_RENEW_SCRIPT = Script(name="relayna.consumer.lease.renew", lua=_RENEW_LUA)
LEASE_RELEASE_SCRIPT = Script(name="relayna.consumer.lease.release", lua=_RELEASE_LUA)


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ConfigurationError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen
class LeasePolicy:
    """How long a lease lives and how often it is renewed.

    Args:
        ttl: lease lifetime in seconds; a worker that stops renewing loses it
            after this long.
        heartbeat_interval: seconds between renewals (must be < ``ttl``).
        conflict_delay: seconds a delivery whose lease another worker holds
            is held before it is nack-requeued (cut short by a drain).
    """

    ttl: float = 30.0
    heartbeat_interval: float = 10.0
    conflict_delay: float = 1.0

    def __attrs_post_init__(self) -> None:
        _positive(self, attrs.fields(LeasePolicy).ttl, self.ttl)
        _positive(self, attrs.fields(LeasePolicy).heartbeat_interval, self.heartbeat_interval)
        if self.heartbeat_interval >= self.ttl:
            raise ConfigurationError("heartbeat_interval must be smaller than ttl")
        if self.conflict_delay < 0:
            raise ConfigurationError("conflict_delay must be >= 0")

    @property
    def ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))


@attrs.define
class LeaseStore:
    """Leases on a :class:`~relayna.transport.Store` under ``{prefix}:{lease_id}``.

    Every method is one script round trip and raises
    :class:`~relayna.errors.StoreError` when the store fails.
    """

    store: Store
    prefix: str = "relayna:lease"

    def key(self, lease_id: str) -> str:
        return f"{self.prefix}:{lease_id}"

    async def acquire(self, lease_id: str, owner: str, ttl: float) -> bool:
        """Take the lease (or refresh it if ``owner`` holds it). False: another owner holds it."""
        return await self._run(LEASE_ACQUIRE_SCRIPT, lease_id, owner, ttl)

    async def renew(self, lease_id: str, owner: str, ttl: float) -> bool:
        """Extend the lease to ``ttl`` from now. False: ``owner`` does not hold it."""
        return await self._run(LEASE_RENEW_SCRIPT, lease_id, owner, ttl)

    async def release(self, lease_id: str, owner: str) -> bool:
        """Delete the lease if ``owner`` holds it. False: it had expired or moved on."""
        result: Any = await self.store.run_script(
            LEASE_RELEASE_SCRIPT, [self.key(lease_id)], [owner]
        )
        return int(result) == 1

    async def owner(self, lease_id: str) -> str | None:
        value = await self.store.get(self.key(lease_id))
        return None if value is None else value.decode("utf-8", "replace")

    async def _run(self, script: Script, lease_id: str, owner: str, ttl: float) -> bool:
        ttl_ms = max(1, int(ttl * 1000))
        result: Any = await self.store.run_script(script, [self.key(lease_id)], [owner, ttl_ms])
        return int(result) == 1


class Renewable(Protocol):
    """What :func:`call_with_lease` needs of a lease: renew and release by owner.

    :class:`LeaseStore` is one; the workflow runtime's in-flight guards are
    another.
    """

    async def renew(self, lease_id: str, owner: str, ttl: float) -> bool: ...

    async def release(self, lease_id: str, owner: str) -> bool: ...


@attrs.frozen
class LeaseLost:
    """The handler was cancelled because the lease was lost."""

    reason: str


async def _renew_loop(
    leases: Renewable,
    policy: LeasePolicy,
    lease_id: str,
    owner: str,
    lost: list[LeaseLost],
    handler_scope: CancelScope,
) -> None:
    expires_at = anyio.current_time() + policy.ttl
    while True:
        await anyio.sleep(policy.heartbeat_interval)
        try:
            held = await leases.renew(lease_id, owner, policy.ttl)
        except StoreError as exc:
            # A blip is survivable while the lease cannot have expired yet.
            if anyio.current_time() + policy.heartbeat_interval < expires_at:
                logger.warning("lease %s renewal failed (%r); retrying", lease_id, exc)
                continue
            lost.append(LeaseLost("renew_failed"))
            handler_scope.cancel()
            return
        if not held:
            lost.append(LeaseLost("not_owner"))
            handler_scope.cancel()
            return
        expires_at = anyio.current_time() + policy.ttl


async def call_with_lease(
    leases: Renewable,
    policy: LeasePolicy,
    lease_id: str,
    owner: str,
    call: Callable[[], Awaitable[T]],
    *,
    release: bool = True,
) -> T | LeaseLost:
    """Run ``call`` while renewing the (already acquired) lease, then release it.

    Returns the result of ``call``, or :class:`LeaseLost` when the renewal
    found another owner (or kept failing until the lease may have expired);
    ``call`` was cancelled then. The release runs shielded, bounded by
    :data:`RELEASE_TIMEOUT`; a failed release is logged (the lease expires).
    With ``release=False`` the lease stays held when ``call`` ends (the
    caller releases it together with its own effects).
    """
    lost: list[LeaseLost] = []
    result: list[T] = []
    handler_scope = CancelScope()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_renew_loop, leases, policy, lease_id, owner, lost, handler_scope)
            with handler_scope:
                result.append(await call())
            tg.cancel_scope.cancel()
    finally:
        if release or not result:
            with CancelScope(shield=True), anyio.move_on_after(RELEASE_TIMEOUT):
                try:
                    await leases.release(lease_id, owner)
                except StoreError as exc:
                    logger.warning("lease %s release failed (%r); it will expire", lease_id, exc)
    if result:
        return result[0]
    if lost:
        return lost[0]
    raise AssertionError("lease call ended without result")  # pragma: no cover

"""Which task ids exist: one atomic claim in the store per published task.

Keys (``prefix`` is the status store's, ``relayna`` by default)::

    {prefix}:task:{task_id}      string: the claim of the publish, TTL
    {prefix}:history:{task_id}   the status history (read only here)

A task id *exists* while its claim lives (a publish through a client with
:class:`TaskIds`, ``ttl_seconds``, a day by default, like the status data) or
while it has a status history (its statuses, whoever published the task).
:meth:`TaskIds.claim` checks both and writes the claim in one script, so two
producers publishing the same id at once cannot both see it as new.

``if_exists`` of :meth:`~relayna.rabbitmq.RelaynaClient.publish_task`:

* ``"run"`` (default): publish anyway (the task runs again, as in the
  original); the claim is written only when there was none;
* ``"skip"``: publish nothing and return the task as given;
* ``"error"``: raise :class:`~relayna.errors.DuplicateTaskError`.

With ``cluster=True`` (the status store's Redis Cluster layout) the task id
is both keys' hash tag (``{prefix}:task:{{task_id}}``,
``{prefix}:history:{{task_id}}``): the claim script touches one slot.

A claim whose publish then failed is released (only that claim: a token
compare), so a retry of the same publish is not refused as a duplicate.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Literal, TypeAlias

import anyio

from relayna.contracts import validate_identifier
from relayna.errors import ConfigurationError, DuplicateTaskError, StoreError
from relayna.transport import Script, Store, check_cluster_prefix

__all__ = [
    "CLAIM_TASK_SCRIPT",
    "RELEASE_TASK_SCRIPT",
    "IfExists",
    "TaskIds",
    "check_if_exists",
    "publish_once",
]

logger = logging.getLogger("relayna.rabbitmq")

#: How long a failed publish may spend releasing its claim.
_RELEASE_TIMEOUT = 2.0

#: What publishing a task id that already exists does.
IfExists: TypeAlias = Literal["run", "skip", "error"]

_CLAIM_LUA = """
-- KEYS: claim, history   ARGV: token, ttl_ms
-- 1: claimed (new id); 0: the id exists (nothing written)
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


_RELEASE_LUA = """
-- KEYS: claim   ARGV: token
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


#: Claim a task id unless it exists (claim or status history).
CLAIM_TASK_SCRIPT = Script(name="relayna.task.claim", lua=_CLAIM_LUA)
#: Delete a claim if it is still the given one.
RELEASE_TASK_SCRIPT = Script(name="relayna.task.release", lua=_RELEASE_LUA)


def check_if_exists(value: object) -> IfExists:
    """``value`` when it is ``"run"``, ``"skip"`` or ``"error"``.

    Raises:
        ConfigurationError: anything else.
    """
    if value == "run" or value == "skip" or value == "error":
        return value
    raise ConfigurationError(f"if_exists must be one of run, skip, error; got {value!r}")


class TaskIds:
    """Task id claims in a store (see the module docs).

    Args:
        store: an open store (the runtime's: the status history must be there).
        prefix: the status store's key prefix.
        ttl_seconds: how long a claim lives (default: the status TTL, a day).
        cluster: the status store's Redis Cluster key layout (module docs).
    """

    def __init__(
        self,
        store: Store,
        *,
        prefix: str = "relayna",
        ttl_seconds: float = 86400.0,
        cluster: bool = False,
    ):
        if not ttl_seconds > 0:
            raise ConfigurationError(f"ttl_seconds must be > 0, got {ttl_seconds!r}")
        self.store = store
        self.prefix = check_cluster_prefix(prefix) if cluster else prefix
        self._open, self._close = ("{", "}") if cluster else ("", "")
        self._ttl_ms = max(1, round(ttl_seconds * 1000))

    def key(self, task_id: str) -> str:
        task = validate_identifier(task_id)
        return f"{self.prefix}:task:{self._open}{task}{self._close}"

    def history_key(self, task_id: str) -> str:
        """The status store's history key (``StatusStore.history_key``)."""
        task = validate_identifier(task_id)
        return f"{self.prefix}:history:{self._open}{task}{self._close}"

    async def claim(self, task_id: str) -> str | None:
        """Claim ``task_id``: a token to :meth:`release` it with, or ``None`` if it exists.

        Raises:
            ContractError: invalid ``task_id``.
            StoreError: the store failed (nothing was claimed).
        """
        token = secrets.token_hex(8)
        keys = [self.key(task_id), self.history_key(task_id)]
        claimed = await self.store.run_script(CLAIM_TASK_SCRIPT, keys, [token, self._ttl_ms])
        return token if int(claimed) else None

    async def exists(self, task_id: str) -> bool:
        """Whether ``task_id`` has a claim or a status history (a read, no claim)."""
        return await self.store.exists(self.key(task_id)) or await self.store.exists(
            self.history_key(task_id)
        )

    async def release(self, task_id: str, token: str) -> bool:
        """Delete the claim if it is still ``token``'s; whether it was deleted."""
        released = await self.store.run_script(RELEASE_TASK_SCRIPT, [self.key(task_id)], [token])
        return bool(int(released))


async def publish_once(
    ids: TaskIds | None, task_id: str, mode: IfExists, publish: Callable[[], Awaitable[None]]
) -> bool:
    """Claim ``task_id``, then ``publish()`` unless ``mode`` says not to; whether it ran.

    A claim whose publish fails (or is cancelled) is released, shielded and
    bounded; a release that fails is logged and the claim expires with its TTL.

    Raises:
        ConfigurationError: ``ids`` is ``None`` (``"skip"``/``"error"`` need a store).
        DuplicateTaskError: ``mode="error"`` and the id exists.
        StoreError: the claim failed (nothing was published).
    """
    if ids is None:
        raise ConfigurationError(
            f"if_exists={mode!r} needs a store: open the client with task_ids=TaskIds(store)"
        )
    token = await ids.claim(task_id)
    if token is None and mode != "run":
        if mode == "error":
            raise DuplicateTaskError(task_id)
        return False
    try:
        await publish()
    except BaseException:
        if token is not None:  # not published: the id is not taken
            with anyio.CancelScope(shield=True), anyio.move_on_after(_RELEASE_TIMEOUT):
                try:
                    await ids.release(task_id, token)
                except StoreError as exc:
                    logger.warning("could not release the claim of task %s: %s", task_id, exc)
        raise
    return True

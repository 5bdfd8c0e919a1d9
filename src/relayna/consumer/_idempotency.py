"""Durable idempotency: a completed key makes redeliveries no-ops.

The consumer asks :meth:`Idempotency.is_completed` before calling the handler
and :meth:`Idempotency.mark_completed` after the handler's effects (status
included) were confirmed and *before* acking. A crash between the mark and
the ack leads to a redelivery that is acked without calling the handler.
Both operations are one atomic script round trip on the :class:`Store`
(durable in Redis, not in-process). Failed attempts never mark a key, so
broker retries and manual-retry hand-offs still run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from relayna.contracts import TaskEnvelope, is_valid_identifier
from relayna.transport import Script, Store

__all__ = ["IDEMPOTENCY_SCRIPT", "Idempotency", "default_idempotency_key"]

_LUA = """
if ARGV[1] == 'complete' then
  redis.call('SET', KEYS[1], 'done', 'PX', tonumber(ARGV[2]))
  return 1
end
if redis.call('GET', KEYS[1]) == 'done' then
  return 1
end
return 0
"""


IDEMPOTENCY_SCRIPT = Script(name="relayna.consumer.idempotency", lua=_LUA)


def default_idempotency_key(task: TaskEnvelope) -> str:
    """``extra["idempotency_key"]`` when it is a valid identifier, else the task_id."""
    key = task.extra.get("idempotency_key")
    return key if isinstance(key, str) and is_valid_identifier(key) else task.task_id


@attrs.define
class Idempotency:
    """Idempotency keys in ``store`` under ``<prefix>:<key>`` for ``ttl_seconds``.

    Args:
        store: an open :class:`~relayna.transport.Store`.
        key: ``task -> key`` (None skips idempotency for that task).
    """

    store: Store
    key: Callable[[TaskEnvelope], str | None] = default_idempotency_key
    ttl_seconds: float = 86_400.0
    prefix: str = "relayna:idempotency"

    def key_for(self, task: TaskEnvelope) -> str | None:
        value = self.key(task)
        return None if value is None else f"{self.prefix}:{value}"

    async def is_completed(self, key: str) -> bool:
        result: Any = await self.store.run_script(IDEMPOTENCY_SCRIPT, [key], ["check", "0"])
        return int(result) == 1

    @property
    def ttl_ms(self) -> int:
        return max(1, int(self.ttl_seconds * 1000))

    async def mark_completed(self, key: str) -> None:
        await self.store.run_script(IDEMPOTENCY_SCRIPT, [key], ["complete", str(self.ttl_ms)])

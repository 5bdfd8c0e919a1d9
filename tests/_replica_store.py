"""A memory store with a scripted ``wait_replicated`` (the method a Redis Cluster
store has), for the replica-wait paths without a cluster: the real cluster
runs them in tests/integration/cluster/."""

from __future__ import annotations

from typing import Any

import anyio

from relayna.transport import Store


class WaitingStore:
    """``inner`` whose WAIT answers the scripted replica counts, then 1.

    ``gate``: when set, each WAIT first waits for it (a round held in flight).
    """

    def __init__(self, inner: Store, answers: list[int] | None = None) -> None:
        self._inner = inner
        self.answers = list(answers or [])
        self.calls: list[tuple[int, float]] = []
        self.writes_before_wait: list[int] = []
        self.writes = 0
        self.gate: anyio.Event | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def run_script(self, script: Any, keys: Any, args: Any = ()) -> Any:
        self.writes += 1
        return await self._inner.run_script(script, keys, args)

    async def run_script_many(self, script: Any, calls: Any) -> Any:
        self.writes += 1
        return await self._inner.run_script_many(script, calls)

    async def wait_replicated(self, replicas: int, within: float) -> int:
        self.calls.append((replicas, within))
        self.writes_before_wait.append(self.writes)
        if self.gate is not None:
            await self.gate.wait()
        return self.answers.pop(0) if self.answers else 1

"""The in-memory broker's TTL timer: message deadlines and the task that expires them.

Theory of operation: each queue has at most one *armed* deadline, the earliest
it asked for; :meth:`ExpiryTimer.schedule` re-arms only for an earlier one.
Deadlines sit in a heap and superseded entries are skipped when popped.
:meth:`ExpiryTimer.run` sleeps (on anyio's clock, so a mock clock works) until
the earliest deadline or until an earlier one is scheduled, then has every due
queue expire its messages, even when no consumer is present.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import anyio
import anyio.abc
import anyio.lowlevel

from relayna.transport.memory_broker._queues import ClassicQueue, QueueBase

__all__ = ["ExpiryTimer"]


class ExpiryTimer:
    """Message-expiry deadlines of the queues of one broker."""

    def __init__(self, next_seq: Callable[[], int]) -> None:
        self._next_seq = next_seq  # heap tie-breaker, shared with the broker's sequence
        self._timers: list[tuple[float, int, ClassicQueue]] = []
        self._armed: dict[int, float] = {}  # id(queue) -> earliest pending deadline
        self._wake = anyio.Event()
        self._waiting_until = math.inf

    def schedule(self, deadline: float, queue: ClassicQueue) -> None:
        """Have ``queue`` expire its messages at ``deadline`` (or earlier)."""
        armed = self._armed.get(id(queue))
        if armed is not None and armed <= deadline:
            return
        self._armed[id(queue)] = deadline
        heapq.heappush(self._timers, (deadline, self._next_seq(), queue))
        if deadline < self._waiting_until:
            self._wake.set()

    def forget(self, queue: QueueBase) -> None:
        """Disarm a deleted queue."""
        self._armed.pop(id(queue), None)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Expire messages as their deadlines pass, until cancelled."""
        task_status.started()
        while True:
            self._wake = anyio.Event()
            now = anyio.current_time()
            due: list[ClassicQueue] = []
            while self._timers and self._timers[0][0] <= now:
                deadline, _, queue = heapq.heappop(self._timers)
                if self._armed.get(id(queue)) == deadline:
                    del self._armed[id(queue)]
                    due.append(queue)
            for queue in due:
                if not queue.deleted:
                    queue.expire(now)
            if due:
                await anyio.lowlevel.checkpoint()
                continue
            self._waiting_until = self._timers[0][0] if self._timers else math.inf
            with anyio.move_on_after(self._waiting_until - now):
                await self._wake.wait()
            self._waiting_until = math.inf

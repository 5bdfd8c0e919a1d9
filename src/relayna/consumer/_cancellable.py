"""``CancellableConsumer``: what the task and workflow consumers share for cancels and deadlines.

A consumer with ``cancels`` runs two companions beside its consume session:
the control listener (cancels of running handlers, and the set of pending
cancel ids) and the :class:`~relayna.consumer.StepBatcher` (the store steps
of concurrent deliveries in one round trip). A handler runs inside the
cancel scope of its :class:`~relayna.consumer.Running` entry, with the
deadline (plus the clock-skew tolerance) on that scope: a cancel or the
deadline ends the run as :class:`Cancelled` or :class:`Expired`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import attrs

from relayna.errors import BrokerError, ConfigurationError, unwrap_groups
from relayna.rabbitmq import CancelStore, GateResult, RelaynaClient, Step

from ._base import ConsumerBase
from ._cancel import InFlight, Running, StepBatcher, run_control_listener
from ._decide import Cancelled, Decision, Expired, ExpiryAction, Stop, decide, terminal_status
from ._runtime import Session

__all__ = ["CancellableConsumer"]

T = TypeVar("T")


@attrs.define(eq=False, kw_only=True)
class CancellableConsumer(ConsumerBase):
    """A consumer that applies cancels and deadlines (see the module docs).

    Args:
        cancels: the cancellation keys (see :class:`~relayna.rabbitmq.CancelStore`).
        cancel_grace: seconds a cancelled handler's ``ctx.cleanup_scope()`` may run.
        deadline_tolerance: seconds of clock skew forgiven: a message expires
            when the worker's clock is past ``deadline + tolerance``.
        on_expiry: an expired message stops (``EXPIRE``, default) or is
            dead-lettered for a replay (``DEAD_LETTER``).
    """

    cancels: CancelStore | None = None
    cancel_grace: float = 5.0
    deadline_tolerance: float = 1.0
    on_expiry: ExpiryAction = ExpiryAction.EXPIRE
    #: The handler runs a cancel can reach (read by tests and benchmarks).
    runs: InFlight = attrs.field(init=False, factory=InFlight)
    #: Batches the store steps of concurrent deliveries (set while consuming).
    batcher: StepBatcher | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if not self.cancel_grace >= 0 or not self.deadline_tolerance >= 0:
            raise ConfigurationError("cancel_grace and deadline_tolerance must be >= 0")

    def _on_expiry(self) -> ExpiryAction:
        return self.on_expiry

    async def _consume(
        self, client: RelaynaClient, session: Session, ready: Callable[[], None]
    ) -> None:
        """The session, and beside it (with ``cancels``) the control listener and batcher."""
        cancels = self.cancels
        if cancels is None:
            await session.run(ready)
            return

        async def listen(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            try:
                await run_control_listener(
                    client.broker,
                    cancels,
                    self.runs,
                    consumer_name=self.consumer_name,
                    task_status=task_status,
                )
            except BrokerError:
                session.stop()  # drain; the consumer then reconnects
                raise

        self.batcher = StepBatcher(cancels)
        with unwrap_groups():
            async with anyio.create_task_group() as tg:
                await tg.start(self.batcher.run)
                await tg.start(listen)
                await session.run(ready)
                tg.cancel_scope.cancel()

    def _expired(self, deadline: float | None) -> bool:
        return deadline is not None and time.time() > deadline + self.deadline_tolerance

    def _remaining_ms(self, deadline: float | None) -> float | None:
        """Milliseconds left before ``deadline`` (plus the tolerance); ``None``: no deadline."""
        if deadline is None:
            return None
        return (deadline + self.deadline_tolerance - time.time()) * 1000.0

    async def _step(self, cancels: CancelStore, step: Step) -> GateResult:
        if self.batcher is not None:
            return await self.batcher.step(step)
        return (await cancels.steps([step]))[0]

    async def _claim(
        self,
        cancels: CancelStore,
        task_id: str,
        batch_id: str | None,
        decision: Decision,
        *,
        once: bool = False,
    ) -> Decision:
        """The store's ``finish`` step: a cancel that came first wins; an ending that
        another delivery already claimed is not reported twice. ``once``: the ``end``
        step (any ending claimed before wins: a workflow run reports its expiry once)."""
        status = terminal_status(decision)
        if once:
            step = cancels.end_step(task_id, status)
        else:
            step = cancels.finish_step(task_id, status, batch_id=batch_id)
        gate = await self._step(cancels, step)
        if gate.state == "cancelled":
            phase = decision.phase if isinstance(decision, Stop) else "running"
            return decide(Cancelled(gate.detail or "cancelled", phase), None, 0)
        if gate.state == "terminal":
            return Stop(None, "already_ended")
        return decision

    async def _in_scope(
        self, run: Running, deadline: float | None, call: Callable[[], Awaitable[T]]
    ) -> T | Cancelled | Expired:
        """``call()`` inside the run's cancel scope, held to ``deadline`` (+ tolerance).

        A cancel that reached the worker makes the outcome :class:`Cancelled`
        whatever the call did (a sync handler cannot be interrupted and may
        have run to the end): the store's ``finish`` step has the last word.
        """
        outcome: T | Cancelled | Expired = Expired("running")
        with run.scope:
            if deadline is not None:
                left = deadline + self.deadline_tolerance - time.time()
                run.scope.deadline = anyio.current_time() + left
            outcome = await call()
        if run.reason is not None:
            return Cancelled(run.reason, "running")
        return outcome

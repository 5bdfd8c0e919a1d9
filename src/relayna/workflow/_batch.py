"""``StageStepBatcher``: the enter and settle steps of a stage's concurrent deliveries,
one store round trip per batch.

Each delivery's store steps are the ``enter`` before its handler and the
``settle`` after it (:mod:`relayna.workflow._scripts`). A consumer at
prefetch N has up to N deliveries between those steps; the batcher (a
:class:`~relayna.consumer.GroupCommit`) runs the steps waiting at a time in
one :meth:`WorkflowStore.steps` call (:data:`STAGE_STEPS_SCRIPT`), so the
steps that arrive during one call's round trip go out together in the next.
Each step stays atomic on its own; the steps of a call run in the order they
were submitted.

Nothing about a delivery's safety changes: its step is in the store before
the call returns, and the delivery is acked (or its handler started) only
after its own step's answer, as with one call per step. A store failure
fails every step of that call (each caller handles it as before: the
delivery is requeued); a step refused for a key of the wrong type fails
only its own caller. A crash between a settle step and the ack is what it
was: the redelivery finds the completion marker and is acked as a duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from relayna.consumer import GroupCommit

from ._store import Entry, StageStep, WorkflowStore

__all__ = ["StageStepBatcher"]


@attrs.define(eq=False)
class StageStepBatcher(GroupCommit[StageStep, "Entry | bool"]):
    """Group commit of one consumer's workflow store steps (see the module docs)."""

    workflow: WorkflowStore

    async def call(self, items: Sequence[StageStep]) -> Sequence[Entry | bool | Exception]:
        return await self.workflow.steps(items)

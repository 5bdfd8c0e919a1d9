"""The values the workflow store's steps take and answer (see :mod:`._store`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["Arrival", "Entry", "Handoff", "StageStep"]


@attrs.frozen
class StageStep:
    """One enter or settle step for :meth:`WorkflowStore.steps` (4 keys: run,
    in-flight, dedup marker, fan-in)."""

    verb: str
    keys: list[str]
    args: list[Any]


@attrs.frozen
class Entry:
    """What :meth:`WorkflowStore.enter` decided: ``go`` (run the handler),
    ``duplicate`` (completed before: ack), ``busy`` (another worker runs it)."""

    verdict: str
    detail: str


@attrs.frozen
class Arrival:
    """A branch recorded at a join: ``waiting``, ``done`` (the join completed
    before), ``busy`` (another worker runs the join) or ``release``."""

    verdict: str
    arrived: int
    new: bool
    branches: tuple[tuple[str, bytes], ...] = ()


@attrs.frozen
class Handoff:
    """A message a handler published (recorded as queued at its target)."""

    target: str
    message_id: str
    lineage: Mapping[str, Any]

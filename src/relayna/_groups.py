"""Exception groups stop at relayna's public boundaries.

Task groups wrap even a lone error in an exception group. relayna's public
context managers (brokers, stores, pipelines, consumers) promise plain typed
errors, so each boundary re-raises a group holding one real error as that
error. Cancellation leaves do not count: they are the siblings the task group
cancelled because of the real error.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager

from anyio import get_cancelled_exc_class

__all__ = ["sole_exception", "unwrap_groups"]


def sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The only non-cancellation leaf of a (possibly nested) group, else ``None``."""
    cancelled = get_cancelled_exc_class()
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        elif not isinstance(exc, cancelled):
            leaves.append(exc)
    return leaves[0] if len(leaves) == 1 else None


@contextmanager
def unwrap_groups() -> Generator[None, None, None]:
    """Re-raise a group holding exactly one real error as that error."""
    try:
        yield
    except BaseExceptionGroup as group:
        sole = sole_exception(group)
        if sole is None:
            raise
        raise sole from None

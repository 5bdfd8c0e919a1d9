"""Exception-group hygiene for context managers that own a task group.

anyio task groups wrap every escaping exception in an ``ExceptionGroup``,
including one raised by the ``async with`` body. A stream or consumer that a
caller enters should raise the error itself (``SlowSubscriberError``, the
caller's own ``AssertionError``), so single-exception groups are unwrapped.
Groups of several real errors are re-raised unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["unwrap_single_group"]


@contextmanager
def unwrap_single_group() -> Iterator[None]:
    try:
        yield
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if leaf is group:
            raise
        raise leaf from None

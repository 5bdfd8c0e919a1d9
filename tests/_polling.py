"""Waiting for a condition in a test: polling with a deadline, never a bare sleep."""

from __future__ import annotations

from collections.abc import Callable

import anyio

__all__ = ["wait_until"]


async def wait_until(condition: Callable[[], bool], what: str, within: float = 5.0) -> None:
    """Return once ``condition()`` is true; AssertionError naming ``what`` after ``within`` s."""
    deadline = anyio.current_time() + within
    while not condition():  # polling a condition with a deadline
        if anyio.current_time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await anyio.sleep(0.005)

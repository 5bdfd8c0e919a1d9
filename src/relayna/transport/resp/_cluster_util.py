"""Small helpers of the cluster router: replies' text, redirects, concurrent calls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio

from relayna.errors import unwrap_groups

__all__ = ["Address", "gather", "redirect_of", "text"]

Address = tuple[str, int]


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def redirect_of(message: str) -> tuple[str, int, Address] | None:
    """``MOVED 3999 127.0.0.1:6381`` → (``MOVED``, 3999, address)."""
    parts = message.split()
    if len(parts) != 3 or parts[0] not in ("MOVED", "ASK"):
        return None
    host, _, port = parts[2].rpartition(":")
    return parts[0], int(parts[1]), (host, int(port))


async def gather(calls: Sequence[tuple[Any, tuple[Any, ...]]]) -> None:
    """Run ``calls`` concurrently; a lone call runs in this task. The first
    error cancels the rest and leaves as itself, not wrapped in a group."""
    if len(calls) == 1:
        func, args = calls[0]
        await func(*args)
        return
    with unwrap_groups():
        async with anyio.create_task_group() as tg:
            for func, args in calls:
                tg.start_soon(func, *args)

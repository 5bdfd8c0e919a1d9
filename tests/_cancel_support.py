"""Helpers of the cancellation and deadline tests (issue 27)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import relayna

TERMINAL = {"completed", "failed", "cancelled", "expired"}


@asynccontextmanager
async def running(app: relayna.App) -> AsyncIterator[relayna.App]:
    async with app.open(worker=True):
        yield app


def statuses(history: list[dict[str, Any]]) -> list[str]:
    return [str(e["status"]) for e in history]


def assert_one_ending(history: list[dict[str, Any]]) -> str:
    """History is consistent: exactly one terminal status, and it is the last."""
    seen = statuses(history)
    ends = [s for s in seen if s in TERMINAL]
    assert len(ends) == 1, seen
    assert seen[-1] == ends[0], seen
    return ends[0]

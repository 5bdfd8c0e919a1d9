"""Helpers of the cancellation and deadline tests (issue 27)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

import relayna
import relayna.app
from relayna.consumer import TaskContext

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


class OneSlot:
    """An app with one worker slot that a ``block`` task holds until :attr:`gate` is set;
    ``work_type`` tasks record their ids in :attr:`ran` (the app needs ``prefetch=1``)."""

    def __init__(self, app: relayna.App, work_type: str = "work") -> None:
        self.gate, self.started, self.ran = anyio.Event(), anyio.Event(), list[str]()

        @app.task("block")
        async def block(ctx: TaskContext, payload: dict[str, Any]) -> None:
            self.started.set()
            await self.gate.wait()

        @app.task(work_type)
        async def work(ctx: TaskContext, payload: dict[str, Any]) -> None:
            self.ran.append(ctx.task_id)

    async def occupy(self, app: relayna.App) -> relayna.app.TaskHandle:
        """Publish the blocker and wait until it holds the slot: later tasks wait in the queue."""
        handle = await app.publish("block")
        await self.started.wait()
        return handle


def always_failing(app: relayna.App, task_type: str = "flaky") -> list[int]:
    """Register a ``task_type`` task that always raises; the attempts it saw, in order."""
    attempts: list[int] = []

    @app.task(task_type)
    async def flaky(ctx: TaskContext, payload: dict[str, Any]) -> None:
        attempts.append(ctx.attempt)
        raise RuntimeError("fails every time")

    return attempts

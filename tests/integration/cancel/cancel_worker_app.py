"""The App a subprocess worker runs in the cancellation process tests (named by environment)."""

from __future__ import annotations

import os
from typing import Any

import anyio

import relayna
from relayna.consumer import TaskContext

app = relayna.App(name=f"ck-{os.environ.get('RELAYNA_TEST_CANCEL_UNIQUE', 'x')}", prefetch=2)


@app.task("slow")
async def slow(ctx: TaskContext, payload: dict[str, Any]) -> None:
    await ctx.publish_status(status="running", meta={"pid": os.getpid()})
    await anyio.sleep(float(payload.get("sleep", 60)))

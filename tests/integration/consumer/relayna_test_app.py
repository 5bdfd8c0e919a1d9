"""A relayna.App run by ``relayna worker relayna_test_app:app`` in the CLI tests."""

from __future__ import annotations

import os
from typing import Any

import anyio

import relayna
from relayna.consumer import RetryPolicy, TaskContext


def make_app(broker: str, store: str, unique: str) -> relayna.App:
    app = relayna.App(name=f"it-app-{unique}", broker=broker, store=store)

    @app.task("report.render", retry=RetryPolicy(max_retries=1, delay_ms=200))
    async def render(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        if payload.get("fail_always"):
            raise RuntimeError("this report cannot be rendered")
        if payload.get("fail_first") and ctx.attempt == 0:
            raise RuntimeError("first attempt fails")
        await ctx.publish_status(status="running", meta={"progress": 0.5})
        await anyio.sleep(0.01)
        return {"pages": payload.get("pages", 1), "attempt": ctx.attempt}

    @app.task("report.sync")
    def sync_task(ctx: TaskContext, payload: dict[str, Any]) -> int:
        return int(payload["n"]) * 2

    return app


app = make_app(
    os.environ.get("RELAYNA_BROKER_URL", "memory://"),
    os.environ.get("RELAYNA_STORE_URL", "memory://"),
    os.environ.get("RELAYNA_TEST_APP_UNIQUE", "x"),
)

"""Task deadlines end to end (issue 27): before start, during a run, across a retry
delay, into child tasks; on memory and on RabbitMQ + Redis, both backends."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

import relayna
from _cancel_support import (  # tests/ is on sys.path
    OneSlot,
    always_failing,
    assert_one_ending,
    running,
    statuses,
)
from relayna.consumer import RetryPolicy, TaskContext
from relayna.contracts import format_deadline
from relayna.contracts import headers as h
from relayna.errors import ContractError

pytestmark = pytest.mark.anyio


async def test_a_task_whose_deadline_passed_in_the_queue_never_starts(
    anyio_backend: str, make_app: Callable[..., relayna.App]
) -> None:
    app = make_app(prefetch=1)
    slot = OneSlot(app)
    with anyio.fail_after(30):
        async with running(app):
            await slot.occupy(app)
            late = await app.publish("work", timeout=0.2)
            deadline = time.time() + 0.2
            while time.time() <= deadline:  # noqa: ASYNC110 - the deadline passes in the queue
                await anyio.sleep(0.02)
            slot.gate.set()
            event = await late.wait()
            assert event["status"] == "expired"
            assert event["meta"] == {"reason": "deadline_exceeded", "phase": "before_start"}
            assert slot.ran == []
            assert statuses(await late.history()) == ["expired"]
            assert (await late.cancel()).state == "terminal"


async def test_a_running_handler_is_stopped_at_its_deadline_and_not_retried(
    anyio_backend: str, make_app: Callable[..., relayna.App]
) -> None:
    app = make_app(retry=RetryPolicy(max_retries=3, delay_ms=50))
    effects: list[str] = []

    @app.task("slow")
    async def slow(ctx: TaskContext, payload: dict[str, Any]) -> None:
        assert ctx.deadline is not None
        assert ctx.remaining() is not None
        try:
            await anyio.sleep(60)
        finally:
            effects.append("finally")

    with anyio.fail_after(30):
        async with running(app):
            handle = await app.publish(
                "slow", deadline=datetime.now(UTC) + timedelta(milliseconds=400)
            )
            event = await handle.wait()
            assert event["status"] == "expired"
            assert event["meta"] == {"reason": "deadline_exceeded", "phase": "running"}
            assert effects == ["finally"]
            history = await handle.history()
            assert assert_one_ending(history) == "expired"
            assert "retrying" not in statuses(history)


async def test_a_retry_never_outlives_the_deadline(
    anyio_backend: str, make_app: Callable[..., relayna.App]
) -> None:
    app = make_app(retry=RetryPolicy(max_retries=5, delay_ms=2_000))
    attempts = always_failing(app)

    with anyio.fail_after(30):
        async with running(app):
            # 1 s left, 2 s retry delay: the retry would run late, the task expires now
            handle = await app.publish("flaky", timeout=1.0)
            event = await handle.wait()
            assert event["status"] == "expired"
            assert event["meta"]["reason"] == "deadline_before_retry"
            assert attempts == [0]
            assert "retrying" not in statuses(await handle.history())


async def test_the_deadline_runs_out_across_a_retry_delay(
    anyio_backend: str, make_app: Callable[..., relayna.App]
) -> None:
    app = make_app(retry=RetryPolicy(max_retries=5, delay_ms=300))
    attempts = always_failing(app)

    with anyio.fail_after(30):
        async with running(app):
            handle = await app.publish("flaky", timeout=1.0)  # room for two or three retries
            event = await handle.wait()
            assert event["status"] == "expired"
            history = await handle.history()
            assert assert_one_ending(history) == "expired"
            assert attempts == list(range(len(attempts)))
            retries = statuses(history).count("retrying")
            # the budget ran out either at a failure (no retry scheduled that would
            # run late) or while the last retry copy waited (it expired on pickup)
            if event["meta"]["reason"] == "deadline_before_retry":
                assert retries == len(attempts) - 1
            else:
                assert (event["meta"]["reason"], event["meta"]["phase"]) == (
                    "deadline_exceeded",
                    "before_start",
                )
                assert retries == len(attempts)
            assert retries >= 1


async def test_a_child_task_inherits_the_remaining_budget(
    anyio_backend: str, make_app: Callable[..., relayna.App]
) -> None:
    app = make_app()
    seen: dict[str, Any] = {}

    @app.task("parent")
    async def parent(ctx: TaskContext, payload: dict[str, Any]) -> None:
        seen["parent"] = ctx.deadline
        inherited = await ctx.publish({"task_id": f"{ctx.task_id}-a", "task_type": "child"})
        shorter = await ctx.publish(
            {"task_id": f"{ctx.task_id}-b", "task_type": "child"}, timeout=5
        )
        longer = await ctx.publish(
            {"task_id": f"{ctx.task_id}-c", "task_type": "child"}, timeout=3600
        )
        seen["children"] = [inherited.task_id, shorter.task_id, longer.task_id]

    @app.task("child")
    async def child(ctx: TaskContext, payload: dict[str, Any]) -> None:
        seen[ctx.task_id] = ctx.deadline

    with anyio.fail_after(30):
        async with running(app):
            before = time.time()
            handle = await app.publish("parent", timeout=60)
            after = time.time()
            assert (await handle.wait())["status"] == "completed"
            a, b, c = seen["children"]
            for child_id in (a, b, c):
                assert (await app.handle(child_id).wait())["status"] == "completed"
    parent_deadline = seen["parent"]
    assert parent_deadline is not None
    # 60 s from the moment of publishing (the header carries milliseconds)
    assert before + 60 - 0.001 <= parent_deadline <= after + 60 + 0.001
    assert seen[a] == pytest.approx(parent_deadline, abs=0.001)  # inherited unchanged
    assert seen[b] < parent_deadline - 50  # its own, shorter budget
    assert seen[c] == pytest.approx(parent_deadline, abs=0.001)  # never longer than the parent's


async def test_bad_deadlines_publish_nothing(
    anyio_backend: str, make_app: Callable[..., relayna.App]
) -> None:
    app = make_app()
    ran: list[str] = []

    @app.task("work")
    async def work(ctx: TaskContext, payload: dict[str, Any]) -> None:
        ran.append(ctx.task_id)

    with anyio.fail_after(30):
        async with running(app):
            for options in (
                {"deadline": datetime.now(UTC) - timedelta(seconds=1)},
                {"deadline": datetime.now()},  # naive
                {"timeout": 0},
                {"timeout": -1},
                {"timeout": float("nan")},
                {"timeout": 1e12},
                {"timeout": 5, "deadline": datetime.now(UTC) + timedelta(seconds=5)},
            ):
                with pytest.raises(ContractError) as caught:
                    await app.publish("work", task_id="never", **options)
                assert caught.value.reason in ("deadline_passed", "invalid_deadline")
            # a forged header is poison: dead-lettered with a reason, the worker goes on
            bad = await app.publish("work", headers={h.DEADLINE: "soon"})
            assert (await bad.wait())["status"] == "failed"
            ok = await app.publish("work", headers={h.DEADLINE: format_deadline(time.time() + 30)})
            assert (await ok.wait())["status"] == "completed"
            assert (await app.cancel("never")).state == "unknown"  # nothing was published
    assert ran == [ok.task_id]


async def test_a_hand_off_keeps_the_deadline(
    anyio_backend: str, make_app: Callable[..., relayna.App]
) -> None:
    """A manual-retry hand-off (the stage-to-stage path of a pipeline of task types)
    carries the same absolute deadline: the budget is not reset by a hop."""
    app = make_app()
    seen: dict[str, float | None] = {}

    @app.task("first")
    async def first(ctx: TaskContext, payload: dict[str, Any]) -> None:
        seen["first"] = ctx.deadline
        ctx.manual_retry(task_type="second", reason="next stage")

    @app.task("second")
    async def second(ctx: TaskContext, payload: dict[str, Any]) -> None:
        seen["second"] = ctx.deadline

    with anyio.fail_after(30):
        async with running(app):
            handle = await app.publish("first", timeout=120)
            assert (await handle.wait())["status"] == "completed"
    assert seen["first"] is not None
    assert seen["second"] == pytest.approx(seen["first"], abs=0.001)

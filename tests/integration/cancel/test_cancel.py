"""Cancellation end to end (issue 27): every phase, on memory and on RabbitMQ + Redis.

Each test runs a :class:`relayna.App` with its worker in this process, on the
memory transports and on the real RabbitMQ + Redis started by
``scripts/services.py``, under asyncio and trio. The handler's side effects
are the evidence: never started, ``finally`` ran, ran to completion.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
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
from relayna.errors import ContractError

pytestmark = pytest.mark.anyio


async def test_a_queued_task_is_cancelled_before_it_starts(
    anyio_backend: str, make_app: Callable[..., relayna.App]
) -> None:
    app = make_app(prefetch=1)
    slot = OneSlot(app)
    with anyio.fail_after(30):
        async with running(app):
            blocker = await slot.occupy(app)  # "work" now waits in the queue
            queued = await app.publish("work")
            result = await queued.cancel("not needed any more")
            assert (result.state, result.reason) == ("requested", "not needed any more")
            again = await app.cancel(queued.task_id, "twice")
            assert again.state == "pending"  # idempotent: the first reason stands
            slot.gate.set()
            event = await queued.wait()
            assert event["status"] == "cancelled"
            assert event["message"] == "not needed any more"
            assert event["meta"]["phase"] == "before_start"
            assert (await blocker.wait())["status"] == "completed"
            assert slot.ran == []  # never started
            assert statuses(await queued.history()) == ["cancelled"]
            late = await queued.cancel()
            assert (late.state, late.status) == ("terminal", "cancelled")


async def test_a_running_async_handler_is_cancelled_and_its_finally_runs(
    anyio_backend: str, make_app: Callable[..., relayna.App]
) -> None:
    app = make_app(retry=RetryPolicy(max_retries=3, delay_ms=100))
    started, effects = anyio.Event(), []

    @app.task("slow")
    async def slow(ctx: TaskContext, payload: dict[str, Any]) -> None:
        started.set()
        try:
            await anyio.sleep(60)
            effects.append("finished")
        finally:
            effects.append("finally")
            with ctx.cleanup_scope():
                await anyio.sleep(0.01)  # async cleanup in a cancelled task
                effects.append("cleaned up")

    with anyio.fail_after(30):
        async with running(app):
            handle = await app.publish("slow")
            await started.wait()
            result = await handle.cancel("operator stop")
            assert result.state == "requested"
            event = await handle.wait()
            assert (event["status"], event["message"]) == ("cancelled", "operator stop")
            assert event["meta"] == {"reason": "cancelled", "phase": "running"}
            assert effects == ["finally", "cleaned up"]
            history = await handle.history()
            assert assert_one_ending(history) == "cancelled"
            assert "retrying" not in statuses(history)  # acked, never retried
            assert (await handle.cancel()).state == "terminal"


async def test_a_sync_handler_cooperates_or_runs_to_completion(
    anyio_backend: str, make_app: Callable[..., relayna.App]
) -> None:
    app = make_app()
    started = {"polite": threading.Event(), "stubborn": threading.Event()}
    release, effects = threading.Event(), []

    @app.task("polite")
    def polite(ctx: TaskContext, payload: dict[str, Any]) -> None:
        started["polite"].set()
        while True:  # a worker thread cannot be interrupted: it asks
            ctx.raise_if_cancelled()
            release.wait(0.01)

    contexts: list[TaskContext] = []

    @app.task("stubborn")
    def stubborn(ctx: TaskContext, payload: dict[str, Any]) -> None:
        contexts.append(ctx)
        started["stubborn"].set()
        release.wait(20)
        effects.append(("stubborn ran to the end", ctx.cancelled))

    with anyio.fail_after(30):
        async with running(app):
            polite_handle = await app.publish("polite")
            stubborn_handle = await app.publish("stubborn")
            for kind in started.values():
                await anyio.to_thread.run_sync(kind.wait, 10)
            await polite_handle.cancel("enough")
            assert (await polite_handle.wait())["status"] == "cancelled"
            await stubborn_handle.cancel("enough too")
            while not contexts[0].cancelled:  # noqa: ASYNC110 - the control message is on its way
                await anyio.sleep(0.005)
            release.set()
            event = await stubborn_handle.wait()
            assert (event["status"], event["message"]) == ("cancelled", "enough too")
            assert effects == [("stubborn ran to the end", True)]


async def test_finished_and_unknown_tasks_are_refused(
    anyio_backend: str, make_app: Callable[..., relayna.App]
) -> None:
    app = make_app()

    @app.task("quick")
    async def quick(ctx: TaskContext, payload: dict[str, Any]) -> int:
        return 1

    with anyio.fail_after(30):
        async with running(app):
            handle = await app.publish("quick")
            assert (await handle.wait())["status"] == "completed"
            result = await handle.cancel("too late")
            assert (result.state, result.status) == ("terminal", "completed")
            assert statuses(await handle.history())[-1] == "completed"  # nothing changed
            assert (await app.cancel("no-such-task")).state == "unknown"
            with pytest.raises(ContractError) as caught:
                await app.cancel(handle.task_id, "r" * 501)
            assert caught.value.reason == "invalid_reason"


async def test_a_task_waiting_in_the_retry_queue_is_cancelled_on_pickup(
    anyio_backend: str, make_app: Callable[..., relayna.App]
) -> None:
    app = make_app(retry=RetryPolicy(max_retries=3, delay_ms=400))
    attempts = always_failing(app)

    with anyio.fail_after(30):
        async with running(app):
            handle = await app.publish("flaky")
            async with handle.events() as events:
                async for event in events:
                    if event["status"] == "retrying":
                        break
            assert (await handle.cancel("stop retrying")).state == "requested"
            event = await handle.wait()
            assert (event["status"], event["meta"]["phase"]) == ("cancelled", "before_start")
            assert attempts == [0]  # the retry copy never ran
            assert assert_one_ending(await handle.history()) == "cancelled"


async def test_cancel_racing_completion_ends_each_task_exactly_once(
    anyio_backend: str, make_app: Callable[..., relayna.App], unique: str
) -> None:
    """200 tasks, each cancelled at a random moment around its completion."""
    app = make_app(prefetch=16)
    rng = random.Random(2027)
    finished: set[str] = set()
    started: dict[str, anyio.Event] = {}

    @app.task("race")
    async def race(ctx: TaskContext, payload: dict[str, Any]) -> str:
        started[ctx.task_id].set()
        await anyio.sleep(payload["work"])
        finished.add(ctx.task_id)
        return "done"

    answers: dict[str, str] = {}
    with anyio.fail_after(120):
        async with running(app):

            async def one(i: int) -> None:
                task_id = f"race-{i}-{unique}"
                started[task_id] = anyio.Event()
                handle = await app.publish("race", {"work": rng.random() * 0.003}, task_id=task_id)
                await started[task_id].wait()
                await anyio.sleep(rng.random() * 0.008)  # before, during or after completion
                answers[handle.task_id] = (await handle.cancel("race")).state

            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(one, i)
            ends: dict[str, int] = {"completed": 0, "cancelled": 0}
            for task_id, state in answers.items():
                handle = app.handle(task_id)
                event = await handle.wait()
                ending = assert_one_ending(await handle.history())
                assert event["status"] == ending
                if state == "terminal":  # the completion came first
                    assert ending == "completed"
                else:  # the cancel came first: whatever the handler did, it is cancelled
                    assert state == "requested"
                    assert ending == "cancelled"
                if ending == "completed":
                    assert task_id in finished
                ends[ending] += 1
    assert sum(ends.values()) == 200
    # random timing reached both orders (else this run proved nothing about the race)
    assert ends["completed"] > 0
    assert ends["cancelled"] > 0


async def test_cancel_one_item_or_a_whole_batch(
    anyio_backend: str, make_app: Callable[..., relayna.App], unique: str
) -> None:
    app = make_app(prefetch=1)
    slot = OneSlot(app, "item")
    with anyio.fail_after(30):
        async with running(app):
            await slot.occupy(app)
            whole = [
                {"task_id": f"w{i}-{unique}", "task_type": "item", "payload": {}} for i in range(3)
            ]
            part = [
                {"task_id": f"p{i}-{unique}", "task_type": "item", "payload": {}} for i in range(3)
            ]
            await app.client.publish_batch(whole, batch_id=f"bw-{unique}")
            await app.client.publish_batch(part, batch_id=f"bp-{unique}")
            assert (await app.cancel_batch(f"bw-{unique}", "drop the batch")).accepted
            # one item of the other batch: it has no status yet (not even fanned out)
            assert (await app.cancel(f"p1-{unique}")).state == "unknown"
            one = await app.client.cancel(f"p1-{unique}", "just this one", require_known=False)
            assert one.state == "requested"
            slot.gate.set()
            ends = {t["task_id"]: (await app.handle(t["task_id"]).wait())
                    for t in whole + part}  # fmt: skip
            assert all(ends[t["task_id"]]["status"] == "cancelled" for t in whole)
            assert ends[f"p1-{unique}"]["message"] == "just this one"
            assert ends[f"p0-{unique}"]["status"] == ends[f"p2-{unique}"]["status"] == "completed"
            assert sorted(slot.ran) == [f"p0-{unique}", f"p2-{unique}"]

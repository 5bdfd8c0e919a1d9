"""The cancellation steps in the store: each one atomic, same answers on Redis and memory.

The race at the heart of issue 27: a cancel racing the worker's ``finish``
(completion, failure, retry scheduling) must leave exactly one terminal
status. Here the two run concurrently, 200 times, with random timing, on
the real Redis and on the memory store, both backends; every test in the
default key layout and in the Redis Cluster layout (``cluster=True``, where
each script call is also checked to touch one slot).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from _slot_recorder import SlotRecorder
from relayna.errors import ConfigurationError, ContractError
from relayna.rabbitmq import CancelStore, TaskIds
from relayna.transport import Store, open_store

pytestmark = pytest.mark.anyio


@pytest.fixture(params=[False, True], ids=["default-layout", "cluster-layout"])
async def cancels(
    store_url: str, unique: str, request: pytest.FixtureRequest
) -> AsyncIterator[CancelStore]:
    async with open_store(store_url) as store:
        recorder = SlotRecorder(store)
        yield CancelStore(recorder, prefix=f"cx-{unique}", cluster=request.param)  # type: ignore[arg-type]
        if request.param:
            assert recorder.cross_slot() == []


async def _known(store: Store, prefix: str, task_id: str, cluster: bool = False) -> None:
    assert await TaskIds(store, prefix=prefix, cluster=cluster).claim(task_id) is not None


async def test_a_cancel_before_pickup_is_applied_at_start(
    anyio_backend: str, cancels: CancelStore
) -> None:
    with anyio.fail_after(10):
        await _known(cancels.store, cancels.prefix, cluster=cancels.cluster, task_id="t1")
        result = await cancels.request("t1", "stop it")
        assert (result.state, result.reason) == ("requested", "stop it")
        again = await cancels.request("t1", "other words")  # idempotent: the first reason stays
        assert (again.state, again.reason) == ("pending", "stop it")
        gate = await cancels.start("t1")
        assert (gate.state, gate.detail) == ("cancelled", "stop it")
        assert await cancels.terminal("t1") == "cancelled"
        # a redelivery (or the same id published again) is not run, not reported twice
        assert (await cancels.start("t1")).state == "terminal"
        late = await cancels.request("t1", "too late")
        assert (late.state, late.status) == ("terminal", "cancelled")


async def test_pending_ids_list_the_live_markers(anyio_backend: str, cancels: CancelStore) -> None:
    with anyio.fail_after(10):
        assert await cancels.pending_ids() == set()
        await cancels.request("b-1", "x", require_known=False)
        await cancels.request("b-2", "y", require_known=False)
        assert await cancels.pending_ids() == {"b-1", "b-2"}
        short = CancelStore(
            cancels.store, prefix=cancels.prefix, ttl_seconds=0.05, cluster=cancels.cluster
        )
        await short.request("b-3", require_known=False)
        with anyio.fail_after(5):
            while "b-3" in await cancels.pending_ids():  # noqa: ASYNC110 - its marker expires
                await anyio.sleep(0.02)
        assert await cancels.pending_ids() == {"b-1", "b-2"}


async def test_unknown_ids_and_finished_tasks_are_refused(
    anyio_backend: str, cancels: CancelStore
) -> None:
    with anyio.fail_after(10):
        assert (await cancels.request("never-published")).state == "unknown"
        assert (await cancels.request("batch-1", require_known=False)).state == "requested"
        await _known(cancels.store, cancels.prefix, cluster=cancels.cluster, task_id="t2")
        assert (await cancels.start("t2")).state == "run"
        assert (await cancels.finish("t2", "completed")).state == "ok"
        result = await cancels.request("t2", "late")
        assert (result.state, result.status) == ("terminal", "completed")
        # a redelivery of a completed task runs again (at-least-once, as without cancels),
        # and its ending replaces the earlier one
        assert (await cancels.start("t2")).state == "run"
        assert (await cancels.finish("t2", "failed")).state == "ok"
        assert await cancels.terminal("t2") == "failed"


async def test_a_retry_meets_the_cancel_and_a_batch_cancel_reaches_its_items(
    anyio_backend: str, cancels: CancelStore
) -> None:
    with anyio.fail_after(10):
        await _known(cancels.store, cancels.prefix, cluster=cancels.cluster, task_id="t3")
        assert (await cancels.start("t3")).state == "run"
        await cancels.request("t3", "while failing")
        gate = await cancels.finish("t3", "")  # the worker wanted to schedule a retry
        assert (gate.state, gate.detail) == ("cancelled", "while failing")
        await cancels.request("b1", "whole batch", require_known=False)
        item = await cancels.start("item-1", batch_id="b1")
        assert (item.state, item.detail) == ("cancelled", "whole batch")
        assert (await cancels.start("item-2", batch_id="b2")).state == "run"


async def test_idempotency_is_checked_in_the_same_step(
    anyio_backend: str, cancels: CancelStore
) -> None:
    with anyio.fail_after(10):
        key = f"{cancels.prefix}:idem:k"
        await cancels.store.set(key, b"done")
        assert (await cancels.start("t4", idempotency_key=key)).state == "duplicate"
        assert (await cancels.start("t5", idempotency_key=f"{key}-other")).state == "run"


async def test_the_mark_step_makes_the_next_start_a_duplicate(
    anyio_backend: str, cancels: CancelStore
) -> None:
    """In the cluster layout the idempotency key is in another slot than the task's
    keys: the step is refused there (the worker marks the key with a call of its own)
    and nothing is written."""
    with anyio.fail_after(10):
        key = f"{cancels.prefix}:idem:m"
        assert (await cancels.start("t7", idempotency_key=key)).state == "run"
        if cancels.cluster:
            with pytest.raises(ConfigurationError):
                await cancels.steps([cancels.mark_step("t7", key, 60_000)])
            assert await cancels.store.get(key) is None
            return
        [marked] = await cancels.steps([cancels.mark_step("t7", key, 60_000)])
        assert marked.state == "ok"
        assert (await cancels.start("t7", idempotency_key=key)).state == "duplicate"
        ttl = await cancels.store.ttl(key)
        assert ttl is not None
        assert 0 < ttl <= 60
        assert await cancels.terminal("t7") is None  # it claims no ending


@pytest.mark.parametrize("reason", ["x" * 501, "line\nbreak", "nul\x00", "\x7f"])
async def test_bad_reasons_are_refused_before_the_store(
    anyio_backend: str, cancels: CancelStore, reason: str
) -> None:
    with pytest.raises(ContractError) as caught:
        await cancels.request("t6", reason, require_known=False)
    assert caught.value.reason == "invalid_reason"
    assert (await cancels.start("t6")).state == "run"  # nothing was written


@pytest.mark.parametrize("task_id", ["", "a b", "x" * 300, "a\r\nb", "../x"])
async def test_bad_ids_are_refused(anyio_backend: str, cancels: CancelStore, task_id: str) -> None:
    with pytest.raises(ContractError):
        await cancels.request(task_id, require_known=False)


async def test_cancel_racing_finish_leaves_exactly_one_terminal_status(
    anyio_backend: str, cancels: CancelStore
) -> None:
    rng = random.Random(27)
    outcomes = {"cancelled": 0, "completed": 0, "failed": 0, "retry": 0}
    with anyio.fail_after(60):
        for i in range(200):
            task_id = f"race-{i}"
            await _known(cancels.store, cancels.prefix, cluster=cancels.cluster, task_id=task_id)
            assert (await cancels.start(task_id)).state == "run"
            ending = rng.choice(["completed", "failed", ""])
            delays = (rng.random() * 0.002, rng.random() * 0.002)
            answers: dict[str, Any] = {}

            async def cancel(
                task_id: str = task_id, delay: float = delays[0], out: dict[str, Any] = answers
            ) -> None:
                await anyio.sleep(delay)
                out["cancel"] = await cancels.request(task_id, "race")

            async def finish(
                task_id: str = task_id,
                delay: float = delays[1],
                ending: str = ending,
                out: dict[str, Any] = answers,
            ) -> None:
                await anyio.sleep(delay)
                out["finish"] = await cancels.finish(task_id, ending)

            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel)
                tg.start_soon(finish)
            request, gate = answers["cancel"], answers["finish"]
            terminal = await cancels.terminal(task_id)
            if gate.state == "cancelled":
                # the cancel came first: the worker reports cancelled, nothing else
                assert request.state == "requested"
                assert terminal == "cancelled"
                outcomes["cancelled"] += 1
            elif ending:
                # the worker's ending came first: the cancel was refused, changed nothing
                assert gate.state == "ok"
                assert (request.state, request.status) == ("terminal", ending)
                assert terminal == ending
                outcomes[ending] += 1
            else:
                # a retry was scheduled first: the cancel waits for the retry copy
                assert request.state == "requested"
                assert terminal is None
                assert (await cancels.start(task_id)).state == "cancelled"
                outcomes["retry"] += 1
    assert sum(outcomes.values()) == 200
    # random timing reached both orders (else this test proved nothing about the race)
    assert outcomes["cancelled"] > 0
    assert outcomes["completed"] + outcomes["failed"] > 0

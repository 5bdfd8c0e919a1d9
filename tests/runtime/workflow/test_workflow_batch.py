"""The workflow store's batched steps (one script call for the enter and settle steps
of concurrent deliveries): the same answers and state as one call per step, a key
of the wrong type fails only its own step, concurrent callers share calls.
Memory store and real Redis, both backends."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest

from _slot_recorder import SlotRecorder
from relayna.errors import ScriptError
from relayna.transport import Store
from relayna.workflow import WorkflowStore, WorkflowStoreConfig
from relayna.workflow._batch import StageStepBatcher
from relayna.workflow._store import Entry, Handoff, StageStep

pytestmark = pytest.mark.anyio


def _enter(w: WorkflowStore, task: str, mid: str, owner: str, sig: str | None = None) -> StageStep:
    return w.enter_step(
        task_id=task, stage="s", message_id=mid, guard=f"msg:{mid}", owner=owner,
        guard_ttl_ms=60_000, envelope=b'{"m": 1}', lineage={"message_id": mid},
        dedup_signature=sig,
    )  # fmt: skip


def _script(w: WorkflowStore) -> list[StageStep]:
    """Two runs through enter, a busy duplicate, completion (with a hand-off and a
    dedup marker), a duplicate after completion, and a failure."""
    handoff = Handoff("t", "h1", {"message_id": "h1", "stage": "t"})
    return [
        _enter(w, "r1", "m1", "a", sig="x"),
        _enter(w, "r1", "m1", "b", sig="x"),  # busy: a holds the guard
        _enter(w, "r2", "m2", "a"),
        w.complete_step(
            task_id="r1",
            stage="s",
            message_id="m1",
            guard="msg:m1",
            owner="a",
            handoffs=[handoff],
            dedup_signature="x",
        ),
        _enter(w, "r1", "m1", "c", sig="x"),  # completed before: duplicate
        _enter(w, "r1", "m9", "c", sig="x"),  # another message, same signature: duplicate
        w.fail_step(
            task_id="r2",
            stage="s",
            message_id="m2",
            guard="msg:m2",
            owner="z",
            status="retrying",
            error={"reason": "boom"},
        ),
    ]


async def _one_by_one(w: WorkflowStore, steps: list[StageStep]) -> list[Any]:
    out: list[Any] = []
    for step in steps:
        out.append((await w.steps([step]))[0])
    return out


async def _state(w: WorkflowStore) -> dict[str, Any]:
    """The run hashes, without the timestamps (the two runs happen at different times)."""
    out: dict[str, Any] = {}
    for task in ("r1", "r2"):
        for field, raw in sorted((await w.read_run(task)).items()):
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                value = raw
            if isinstance(value, dict):
                value = {k: v for k, v in value.items() if not k.endswith("_at") and k != "at"}
                for k in ("last_error",):
                    if isinstance(value.get(k), dict):
                        value[k] = {a: b for a, b in value[k].items() if a != "at"}
            out[f"{task}/{field.decode()}"] = value
    return out


async def test_one_batched_call_answers_and_writes_as_one_call_per_step(
    store: Store, unique: str
) -> None:
    batched = WorkflowStore(store, WorkflowStoreConfig(prefix=f"b-{unique}"))
    single = WorkflowStore(store, WorkflowStoreConfig(prefix=f"s-{unique}"))
    with anyio.fail_after(10):
        together = await batched.steps(_script(batched))
        apart = await _one_by_one(single, _script(single))
        state_together, state_apart = await _state(batched), await _state(single)
    assert together == apart
    assert together == [
        Entry("go", "1"), Entry("busy", "msg:m1"), Entry("go", "1"), True,
        Entry("duplicate", "message"), Entry("duplicate", "dedup"), False,
    ]  # fmt: skip
    assert state_together == state_apart
    assert state_together["r1/s:s"]["status"] == "completed"
    assert state_together["r1/s:t"]["queued"] == ["h1"]
    assert state_together["r2/s:s"]["last_error"]["reason"] == "boom"


async def test_a_key_of_the_wrong_type_fails_only_its_own_step(store: Store, unique: str) -> None:
    w = WorkflowStore(store, WorkflowStoreConfig(prefix=f"t-{unique}"))
    await store.set(w.keys.run("bad"), b"a string")
    batcher = StageStepBatcher(w)
    steps = [_enter(w, "ok1", "m1", "a"), _enter(w, "bad", "m2", "a"), _enter(w, "ok2", "m3", "a")]
    results: dict[int, Any] = {}

    async def one(i: int) -> None:
        try:
            results[i] = await batcher.step(steps[i])
        except ScriptError as exc:
            results[i] = exc

    with anyio.fail_after(10):
        replies = await w.steps(steps)
        await store.delete(w.keys.run("ok1"), w.keys.run("ok2"))
        await store.delete(w.keys.inflight("s", "ok1"), w.keys.inflight("s", "ok2"))
        async with anyio.create_task_group() as tg:
            await tg.start(batcher.run)
            async with anyio.create_task_group() as callers:
                for i in range(3):
                    callers.start_soon(one, i)
            tg.cancel_scope.cancel()
    assert replies[0] == replies[2] == Entry("go", "1")
    assert isinstance(replies[1], ScriptError)
    assert "WRONGTYPE" in str(replies[1])
    assert results[0] == results[2] == Entry("go", "1")
    assert isinstance(results[1], ScriptError)
    assert await store.get(w.keys.run("bad")) == b"a string"  # the refused step wrote nothing


async def test_concurrent_steps_share_store_calls(store: Store, unique: str) -> None:
    w = WorkflowStore(store, WorkflowStoreConfig(prefix=f"c-{unique}"))
    batcher = StageStepBatcher(w)
    answers: list[Any] = []

    async def one(i: int) -> None:
        answers.append(await batcher.step(_enter(w, f"r{i}", f"m{i}", "a")))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(batcher.run)
            async with anyio.create_task_group() as callers:
                for i in range(20):
                    callers.start_soon(one, i)
            tg.cancel_scope.cancel()
    assert answers == [Entry("go", "1")] * 20
    assert batcher.steps == 20
    assert batcher.calls < 20  # steps waiting together went out in one call


async def test_in_the_cluster_layout_each_step_touches_one_slot(store: Store, unique: str) -> None:
    """Steps of different runs live in different slots: one call per step (pipelined),
    the same answers as in one call."""
    recorder = SlotRecorder(store)
    w = WorkflowStore(recorder, WorkflowStoreConfig(prefix=f"k-{unique}", cluster=True))  # type: ignore[arg-type]
    with anyio.fail_after(10):
        together = await w.steps(_script(w))
    assert together == [
        Entry("go", "1"), Entry("busy", "msg:m1"), Entry("go", "1"), True,
        Entry("duplicate", "message"), Entry("duplicate", "dedup"), False,
    ]  # fmt: skip
    assert recorder.names() == {"relayna.workflow.stage_steps"}
    assert len(recorder.calls) == 7
    assert recorder.cross_slot() == []

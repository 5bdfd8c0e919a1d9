"""The guard keeper: one renewal loop for the in-flight guards of a consumer's handlers."""

from __future__ import annotations

import anyio
import pytest

from relayna.consumer import LeasePolicy
from relayna.transport import Store
from relayna.workflow import WorkflowStore, WorkflowStoreConfig
from relayna.workflow._keeper import GuardKeeper

pytestmark = pytest.mark.anyio

POLICY = LeasePolicy(ttl=1.0, heartbeat_interval=0.05, conflict_delay=0.01)


async def _held(store: Store, key: str, field: str) -> tuple[str, int] | None:
    raw = await store.hget(key, field)
    if raw is None:
        return None
    owner, _, expires = raw.decode().partition("|")
    return owner, int(expires)


async def _enter(workflow: WorkflowStore, owner: str) -> None:
    entry = await workflow.enter(
        task_id="k1", stage="s", message_id="m1", guard="msg:m1", owner=owner,
        guard_ttl_ms=POLICY.ttl_ms, envelope=b"{}", lineage={},
    )  # fmt: skip
    assert entry.verdict == "go"


async def test_a_running_handlers_guard_is_renewed_and_kept_after_it_returns(
    store: Store, unique: str
) -> None:
    workflow = WorkflowStore(store, WorkflowStoreConfig(prefix=f"keep-{unique}"))
    key = workflow.keys.inflight("s", "k1")
    keeper = GuardKeeper(POLICY)
    await _enter(workflow, "a")
    first = await _held(store, key, "msg:m1")
    assert first is not None
    seen: list[int] = []

    async def handler() -> str:
        while len(seen) < 2:  # two renewals observed while the handler runs
            held = await _held(store, key, "msg:m1")
            assert held is not None
            if held[1] > (seen[-1] if seen else first[1]):
                seen.append(held[1])
            await anyio.sleep(0.01)
        return "done"

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(keeper.run)
            result = await keeper.call(workflow.guard("s", "k1"), "msg:m1", "a", handler)
            tg.cancel_scope.cancel()
    assert result == "done"
    assert keeper.held == {}
    held = await _held(store, key, "msg:m1")
    assert held is not None  # released by the completion script, not by the keeper
    assert held[0] == "a"


async def test_a_guard_taken_over_cancels_its_handler(store: Store, unique: str) -> None:
    workflow = WorkflowStore(store, WorkflowStoreConfig(prefix=f"keep-{unique}"))
    key = workflow.keys.inflight("s", "k1")
    keeper = GuardKeeper(POLICY)
    await _enter(workflow, "a")
    entered = anyio.Event()

    async def handler() -> str:
        entered.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def take_over() -> None:
        await entered.wait()
        await store.hset(key, {"msg:m1": "b|99999999999999"})

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(keeper.run)
            tg.start_soon(take_over)
            result = await keeper.call(workflow.guard("s", "k1"), "msg:m1", "a", handler)
            tg.cancel_scope.cancel()
    assert result is None
    assert await _held(store, key, "msg:m1") == ("b", 99999999999999)  # not released


async def test_a_cancelled_handler_releases_its_guard(store: Store, unique: str) -> None:
    workflow = WorkflowStore(store, WorkflowStoreConfig(prefix=f"keep-{unique}"))
    key = workflow.keys.inflight("s", "k1")
    keeper = GuardKeeper(POLICY)
    await _enter(workflow, "a")
    entered = anyio.Event()

    async def handler() -> str:
        entered.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(keeper.run)
            scope = anyio.CancelScope()

            async def call() -> None:
                with scope:
                    await keeper.call(workflow.guard("s", "k1"), "msg:m1", "a", handler)

            tg.start_soon(call)
            await entered.wait()
            scope.cancel()  # a drain cut short
            while await _held(store, key, "msg:m1") is not None:  # noqa: ASYNC110
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert keeper.held == {}

"""The Redis Cluster key layout (``cluster=True``), store by store.

For each store: its real operations, on the memory store and on the real
Redis, through a recorder, and every script call's KEYS map to one slot
(Hypothesis over identifiers for the pure key computations); identifiers
with braces are refused with a typed error; the default layout's key names
are byte-for-byte those of the key reference (ANCHOR §5, docs/operations.md).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import relayna
from _dlq_records import dlq_record
from _slot_recorder import SlotRecorder
from relayna.api import RuntimeConfig
from relayna.api._lifespan import cluster_layout_everywhere
from relayna.app import TaskFailed
from relayna.consumer import (
    HeartbeatSnapshot,
    RetryPolicy,
    TaskContext,
    WorkerHeartbeats,
    list_worker_heartbeats,
)
from relayna.contracts import StatusEvent, encode_status
from relayna.dlq import DLQKeys, DLQQuery, DLQStore, DLQStoreConfig
from relayna.errors import (
    ConfigurationError,
    ContractError,
    DuplicateTaskError,
    ScriptError,
    StoreError,
)
from relayna.observability import (
    ObservationStore,
    ObservationStoreConfig,
    ServiceEventFeed,
    ServiceEventFeedConfig,
    TaskMessageReceived,
    encode_observation,
)
from relayna.observability._observation_batch import batch_call
from relayna.rabbitmq import CancelStore, TaskIds
from relayna.status import StatusHub, StatusHubConfig, StatusStore, StatusStoreConfig
from relayna.topology import StatusTopologyBase
from relayna.transport import Script, Store, Value, key_slot, open_broker, open_store
from relayna.workflow import WorkflowStore, WorkflowStoreConfig

#: Valid identifiers (task, event, run ids), mixing the characters the rule allows.
ids = st.from_regex(
    r"[A-Za-z0-9_:@/+=\-][A-Za-z0-9_:@/+=\-.]{0,30}[A-Za-z0-9_]", fullmatch=True
).filter(lambda s: ".." not in s)
braced = st.builds(
    lambda a, b: f"{a}{{{b}}}", st.sampled_from(["", "t", "x:"]), st.sampled_from(["", "a", "t1"])
)


def one_slot(keys: list[str]) -> bool:
    return len({key_slot(k) for k in keys}) == 1


@asynccontextmanager
async def recorded(url: str) -> AsyncIterator[SlotRecorder]:
    async with open_store(url) as store:
        yield SlotRecorder(store)


def as_store(recorder: SlotRecorder) -> Store:
    return recorder  # type: ignore[return-value]


# -- status store (with the service event feed) --------------------------------


def status_event(task: str, n: int, parent: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"task_id": task, "event_id": f"e{n}", "status": "running"}
    if parent is not None:
        event["meta"] = {"parent_task_id": parent}
    return event


@given(task=ids, event_id=ids, parent=ids)
def test_status_calls_each_touch_one_slot(task: str, event_id: str, parent: str) -> None:
    status = StatusStore(
        None,  # type: ignore[arg-type]  # key computations only
        StatusStoreConfig(prefix="relayna", cluster=True),
        feed=ServiceEventFeed(None, ServiceEventFeedConfig(cluster=True)),  # type: ignore[arg-type]
    )
    event = {
        "task_id": task,
        "event_id": event_id,
        "status": "x",
        "meta": {"parent_task_id": parent},
    }
    calls = status._cluster_calls(event)
    for _script, keys, _args in calls:
        assert one_slot(keys)
    task_script = calls[0]
    # history, marker and channel (an argument: SPUBLISH needs it in the slot) share the task's slot
    assert key_slot(str(task_script[2][3])) == key_slot(task) == key_slot(task_script[1][0])
    assert status.history_key(task) == f"relayna:history:{{{task}}}"


@given(bad=braced)
def test_status_refuses_braced_ids(bad: str) -> None:
    status = StatusStore(None, StatusStoreConfig(cluster=True))  # type: ignore[arg-type]
    with pytest.raises(ContractError):
        status._cluster_calls(status_event(bad, 1))
    with pytest.raises(ContractError):
        status._cluster_calls(status_event("t", 1, parent=bad))
    with pytest.raises(ContractError):
        status.history_key(bad)


@pytest.mark.parametrize("prefix", ["a{b}", "{relayna}", "x}"])
def test_cluster_configs_refuse_braced_prefixes(prefix: str) -> None:
    with pytest.raises(ConfigurationError):
        StatusStoreConfig(prefix=prefix, cluster=True)
    with pytest.raises(ConfigurationError):
        ServiceEventFeedConfig(prefix=prefix, cluster=True)
    StatusStoreConfig(prefix=prefix)  # the default layout: unchanged rules


def test_status_default_layout_names_unchanged() -> None:
    status = StatusStore(None)  # type: ignore[arg-type]
    assert status.history_key("t1") == "relayna:history:t1"
    assert status.channel("t1") == "relayna:channel:t1"
    assert status.event_key("t1", "e1") == "relayna:event:t1:e1"
    assert status.children_key("p") == "relayna:children:p"
    keys, args = status._script_call(status_event("t1", 1, parent="p"))
    assert keys == ["relayna:event:t1:e1", "relayna:history:t1", "relayna:children:p"]
    assert args[3] == "relayna:channel:t1"
    feed = ServiceEventFeed(None)  # type: ignore[arg-type]
    assert feed.append_call("status:t1:e1", b"{}")[0] == [
        "relayna-service-events:event:status:t1:e1",
        "relayna-service-events:feed",
        "relayna-service-events:feed:seq",
        "relayna-service-events:feed:epoch",
    ]


def test_status_cluster_layout_names() -> None:
    status = StatusStore(None, StatusStoreConfig(cluster=True))  # type: ignore[arg-type]
    assert status.history_key("t1") == "relayna:history:{t1}"
    assert status.channel("t1") == "relayna:channel:{t1}"
    assert status.event_key("t1", "e1") == "relayna:event:{t1}:e1"
    assert status.children_key("p") == "relayna:children:{p}"
    feed = ServiceEventFeed(None, ServiceEventFeedConfig(cluster=True))  # type: ignore[arg-type]
    assert feed.append_call("status:t1:e1", b"{}")[0] == [
        "{relayna-service-events}:event:status:t1:e1",
        "{relayna-service-events}:feed",
        "{relayna-service-events}:feed:seq",
        "{relayna-service-events}:feed:epoch",
    ]


pytestmark_anyio = pytest.mark.anyio


@pytestmark_anyio
async def test_status_store_operations_one_slot(store_url: str, unique: str) -> None:
    """Writes (single and batched, with parents and the feed), duplicates and
    reads on the cluster layout: same results as the default layout, and every
    script call in one slot."""
    with anyio.fail_after(15):
        async with recorded(store_url) as rec:
            feed = ServiceEventFeed(
                as_store(rec), ServiceEventFeedConfig(prefix=f"f-{unique}", cluster=True)
            )
            status = StatusStore(
                as_store(rec), StatusStoreConfig(prefix=f"s-{unique}", cluster=True), feed=feed
            )
            await status.prepare()
            assert await status.write(status_event("p:1", 1)) is True
            assert await status.write(status_event("c/1", 1, parent="p:1")) is True
            assert await status.write(status_event("c/1", 1, parent="p:1")) is False
            results = await status.write_many(
                [
                    status_event("c=2", 1, parent="p:1"),
                    status_event("c=2", 2, parent="p:1"),
                    status_event("p:1", 2),
                ]
            )
            assert results == [True, True, True]
            assert await status.write_many([status_event("c=2", 2, parent="p:1")]) == [False]
            assert await status.children("p:1") == ["c/1", "c=2"]
            assert [e["event_id"] for e in await status.history("c=2")] == ["e2", "e1"]
            assert (await status.latest("p:1") or {})["event_id"] == "e2"
            page = await feed.read(limit=50)
            assert [(i["task_id"], i["event_id"]) for i in page.items] == [
                ("p:1", "e1"),
                ("c/1", "e1"),
                ("c=2", "e1"),
                ("c=2", "e2"),
                ("p:1", "e2"),
            ]
            assert {
                "relayna.status.write_sharded",
                "relayna.status.add_child",
                "relayna.feed.append",
                "relayna.feed.read",
            } <= rec.names()
            assert rec.cross_slot() == []


class FailOnce:
    """Fault injection: the first call of ``script_name`` fails (as a lost
    connection would) before reaching the store."""

    def __init__(self, store: Store, script_name: str) -> None:
        self._store = store
        self._name = script_name
        self.failed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _maybe_fail(self, script: Script) -> None:
        if script.name == self._name and not self.failed:
            self.failed += 1
            raise StoreError(f"injected: the store went away before {script.name}")

    async def run_script(self, script: Script, keys: list[str], args: list[Value]) -> Any:
        self._maybe_fail(script)
        return await self._store.run_script(script, keys, args)

    async def run_script_many(self, script: Script, calls: list[Any]) -> list[Any]:
        self._maybe_fail(script)
        return list(await self._store.run_script_many(script, calls))  # type: ignore[attr-defined]


@pytestmark_anyio
@pytest.mark.parametrize("batched", [False, True], ids=["write", "write_many"])
async def test_crash_between_child_and_parent_write_is_repaired(
    store_url: str, unique: str, batched: bool
) -> None:
    """The child's script ran, the parent's SADD did not (the store failed in
    between): the write reports the failure, so the hub does not ack; the
    redelivered event is a duplicate for the child's keys but still adds the
    child to its parent's children set, and appends to the feed once."""
    with anyio.fail_after(15):
        async with open_store(store_url) as store:
            faulty = FailOnce(store, "relayna.status.add_child")
            s: Store = faulty  # type: ignore[assignment]
            feed = ServiceEventFeed(s, ServiceEventFeedConfig(prefix=f"f-{unique}", cluster=True))
            status = StatusStore(
                s, StatusStoreConfig(prefix=f"s-{unique}", cluster=True), feed=feed
            )
            event = status_event("child", 1, parent="parent")
            with pytest.raises(StoreError):  # the hub retries (or requeues) the batch
                await (status.write_many([event]) if batched else status.write(event))
            assert faulty.failed == 1
            # The crash window: the child's history is written, the parent does not know it yet.
            assert [e["event_id"] for e in await status.history("child")] == ["e1"]
            assert await status.children("parent") == []
            # Redelivery (the hub never acked): duplicate for the child, repair for the parent.
            if batched:
                assert await status.write_many([event]) == [False]
            else:
                assert await status.write(event) is False
            assert await status.children("parent") == ["child"]
            assert [e["event_id"] for e in await status.history("child")] == ["e1"]
            assert [i["event_id"] for i in (await feed.read()).items] == ["e1"]


@pytestmark_anyio
async def test_children_key_of_wrong_type_fails_the_write(store_url: str, unique: str) -> None:
    """A parent's children key holding a string: the write fails with a typed
    error (nothing acked, nothing lost: the history already holds the event and
    a retry is a duplicate there), the other events of the batch are stored."""
    with anyio.fail_after(15):
        async with open_store(store_url) as store:
            status = StatusStore(store, StatusStoreConfig(prefix=f"s-{unique}", cluster=True))
            await store.set(status.children_key("p"), "not a set")
            results = await status.write_many(
                [status_event("c", 1, parent="p"), status_event("d", 1)]
            )
            assert isinstance(results[0], ScriptError)
            assert results[1] is True
            with pytest.raises(ScriptError):
                await status.write(status_event("c", 1, parent="p"))
            assert [e["event_id"] for e in await status.history("c")] == ["e1"]


@pytestmark_anyio
async def test_hub_repairs_the_children_set_after_a_failure_between_the_writes(
    unique: str,
) -> None:
    """End to end on the memory broker: the hub's write fails between the
    child's script and the parent's SADD; the hub does not ack, writes the
    event again, and the parent's children set gets the child (at least once)."""
    topology = StatusTopologyBase(status_exchange=f"sx.{unique}", status_queue=f"sq.{unique}")
    with anyio.fail_after(15):
        async with open_broker("memory://") as broker, open_store("memory://") as raw:
            await topology.plan().apply(broker)
            faulty = FailOnce(raw, "relayna.status.add_child")
            status = StatusStore(faulty, StatusStoreConfig(cluster=True))  # type: ignore[arg-type]
            hub = StatusHub(
                broker,
                status,
                StatusHubConfig(queue=topology.status_queue, offset="first", persist_offset=False),
            )
            async with anyio.create_task_group() as tg:
                await tg.start(hub.run)
                event = StatusEvent(
                    task_id="child", status="running", event_id="e1", meta={"parent_task_id": "p"}
                )
                await broker.publish(topology.status_exchange, "child", encode_status(event))
                while hub.stats.stored + hub.stats.duplicates < 1:  # noqa: ASYNC110 - the hub's counter
                    await anyio.sleep(0.005)
                tg.cancel_scope.cancel()
            assert faulty.failed == 1
            assert hub.stats.store_failures == 1
            assert await status.children("p") == ["child"]
            assert [e["event_id"] for e in await status.history("child")] == ["e1"]


# -- observations ----------------------------------------------------------------


def received(task: str, attempt: int = 0) -> TaskMessageReceived:
    return TaskMessageReceived(
        consumer_name="w", queue_name="q", task_id=task, retry_attempt=attempt
    )


@given(tasks=st.lists(ids, min_size=1, max_size=4))
def test_observation_calls_each_touch_one_slot(tasks: list[str]) -> None:
    obs = ObservationStore(None, ObservationStoreConfig(cluster=True))  # type: ignore[arg-type]
    for task in tasks:
        encoded = encode_observation(received(task))
        assert encoded is not None
        keys, _ = obs._call(encoded)
        assert one_slot(keys)
        assert key_slot(keys[0]) == key_slot(task)
        batch = [encode_observation(received(task, n)) for n in range(3)]
        keys, _ = batch_call("p", 1, 1, batch, None, cluster=True)  # type: ignore[arg-type]
        assert one_slot(keys)
    with pytest.raises(ContractError):
        obs.history_key("a{b}")


def test_observation_layout_names() -> None:
    encoded = encode_observation(received("t1"))
    assert encoded is not None
    default = ObservationStore(None)  # type: ignore[arg-type]
    assert default.history_key("t1") == "relayna-observations:history:t1"
    assert default._call(encoded)[0] == [
        f"relayna-observations:event:t1:{encoded.token}",
        "relayna-observations:history:t1",
    ]
    cluster = ObservationStore(None, ObservationStoreConfig(cluster=True))  # type: ignore[arg-type]
    assert cluster.history_key("t1") == "relayna-observations:history:{t1}"
    assert cluster._call(encoded)[0] == [
        f"relayna-observations:event:{{t1}}:{encoded.token}",
        "relayna-observations:history:{t1}",
    ]
    with pytest.raises(ConfigurationError):
        ObservationStoreConfig(prefix="o{x}", cluster=True)


@pytestmark_anyio
async def test_observation_operations_one_slot(store_url: str, unique: str) -> None:
    with anyio.fail_after(15):
        async with recorded(store_url) as rec:
            feed = ServiceEventFeed(
                as_store(rec), ServiceEventFeedConfig(prefix=f"f-{unique}", cluster=True)
            )
            obs = ObservationStore(
                as_store(rec), ObservationStoreConfig(prefix=f"o-{unique}", cluster=True)
            )
            first = received("t/1")
            assert await obs.write(first) is True
            assert await obs.write(first) is False
            batch = [received("t/1", 1), received("t=2"), received("t/1", 2)]
            batch.append(batch[1])
            assert await obs.write_many(batch, feed=feed) == [True, True, True, False]
            assert [h["retry_attempt"] for h in await obs.history("t/1")] == [2, 1, 0]
            page = await feed.read()
            assert [(i["task_id"], i["payload"]["retry_attempt"]) for i in page.items] == [
                ("t/1", 1), ("t=2", 0), ("t/1", 2),
            ]  # fmt: skip
            assert {"relayna.observations.write", "relayna.observations.write_batch"} <= rec.names()
            assert rec.cross_slot() == []


@pytestmark_anyio
async def test_observation_feed_failure_is_repaired_by_the_retry(
    store_url: str, unique: str
) -> None:
    """The task's write went in, the feed append did not: the batch reports the
    failure; the retry finds the observation a duplicate and still feeds it once."""
    with anyio.fail_after(15):
        async with open_store(store_url) as store:
            faulty = FailOnce(store, "relayna.feed.append")
            s: Store = faulty  # type: ignore[assignment]
            feed = ServiceEventFeed(s, ServiceEventFeedConfig(prefix=f"f-{unique}", cluster=True))
            obs = ObservationStore(s, ObservationStoreConfig(prefix=f"o-{unique}", cluster=True))
            event = received("t")
            with pytest.raises(StoreError):
                await obs.write_many([event], feed=feed)
            assert len(await obs.history("t")) == 1
            assert (await feed.read()).items == []
            assert await obs.write_many([event], feed=feed) == [False]
            assert [i["task_id"] for i in (await feed.read()).items] == ["t"]


# -- DLQ records and indexes -----------------------------------------------------


@given(dlq_id=ids, field=ids, value=st.text(max_size=300))
def test_dlq_keys_share_the_prefix_slot(dlq_id: str, field: str, value: str) -> None:
    keys = DLQKeys.of(DLQStoreConfig(prefix="relayna", cluster=True))
    every = [
        keys.records, keys.queues, keys.record(dlq_id), keys.lock(dlq_id),
        keys.index(field, value), keys.index_base + "x", keys.record_base + "y",
    ]  # fmt: skip
    assert one_slot(every)
    assert key_slot(keys.records) == key_slot("relayna")


def test_dlq_layout_names() -> None:
    default = DLQKeys.of(DLQStoreConfig())
    assert (default.records, default.queues) == ("relayna:dlq:records", "relayna:dlq:queues")
    assert default.record("d1") == "relayna:dlq:record:d1"
    assert default.lock("d1") == "relayna:dlq:replay-lock:d1"
    assert default.index("queue", "orders.dlq") == "relayna:dlq:index:queue:orders.dlq"
    cluster = DLQKeys.of(DLQStoreConfig(cluster=True))
    assert cluster.records == "{relayna}:dlq:records"
    assert cluster.index("queue", "orders.dlq") == "{relayna}:dlq:index:queue:orders.dlq"
    with pytest.raises(ConfigurationError):
        DLQStoreConfig(prefix="a{b}", cluster=True)


@pytestmark_anyio
async def test_dlq_operations_one_slot(store_url: str, unique: str) -> None:
    """Adding, listing with index intersections, investigating, the replay
    claim protocol and deleting: every script's declared keys and the key
    base it derives further keys from (its first argument) are in the
    prefix's slot."""
    with anyio.fail_after(15):
        async with recorded(store_url) as rec:
            dlq = DLQStore(
                as_store(rec), DLQStoreConfig(prefix=f"d-{unique}", max_records=50, cluster=True)
            )
            await dlq.prepare()
            records = [
                dlq_record(n, reason="handler_error" if n % 2 else "timeout") for n in range(4)
            ]
            assert await dlq.add(records[0]) is True
            assert await dlq.add_many(records[1:]) == [True, True, True]
            page = await dlq.list_records(DLQQuery(reason="timeout", queue_name="orders.dlq"))
            assert sorted(r.task_id for r in page.records) == ["t0", "t2"]
            assert await dlq.set_investigation(records[1].dlq_id, investigated=True, by="me")
            page = await dlq.list_records(DLQQuery(investigation_status="investigated"))
            assert [r.task_id for r in page.records] == ["t1"]
            claim = await dlq.claim(records[2].dlq_id, kind="replay", force=False, target="q")
            assert claim is not None
            assert await dlq.finish(records[2].dlq_id, claim.token, target="q") == "done"
            assert await dlq.delete(records[3].dlq_id) is True
            assert [(c.queue_name, c.indexed_count) for c in await dlq.queue_counts()] == [
                ("orders.dlq", 3)
            ]
            assert rec.cross_slot() == []
            slot = key_slot(f"d-{unique}")
            assert {key_slot(k) for _, keys in rec.calls for k in keys} == {slot}
            # the key base every DLQ script derives further key names from
            base = dlq._context()[0]
            assert isinstance(base, str)
            assert key_slot(base + "x") == slot


# -- cancellation and task ids ----------------------------------------------------
# (every step of the cancellation conformance suite runs in the cluster layout
# through a SlotRecorder too: tests/conformance/test_cancel_store.py)


@given(task=ids, batch=ids)
def test_cancel_and_task_id_keys_share_the_task_slot(task: str, batch: str) -> None:
    cancels = CancelStore(None, cluster=True)  # type: ignore[arg-type]
    assert one_slot(cancels._keys(task, batch, "idem-key"))
    task_ids = TaskIds(None, cluster=True)  # type: ignore[arg-type]
    assert one_slot([task_ids.key(task), task_ids.history_key(task), *cancels._keys(task)])
    status = StatusStore(None, StatusStoreConfig(cluster=True))  # type: ignore[arg-type]
    assert task_ids.history_key(task) == status.history_key(task)


def test_cancel_layout_names() -> None:
    default = CancelStore(None)  # type: ignore[arg-type]
    assert default._keys("t1", "b1", "idem") == [
        "relayna:cancel:t1", "relayna:terminal:t1", "relayna:task:t1", "relayna:history:t1",
        "relayna:cancel:b1", "idem", "relayna:cancels",
    ]  # fmt: skip
    assert TaskIds(None).key("t1") == "relayna:task:t1"  # type: ignore[arg-type]
    cluster = CancelStore(None, cluster=True)  # type: ignore[arg-type]
    assert cluster._keys("t1")[:4] == [
        "relayna:cancel:{t1}", "relayna:terminal:{t1}", "relayna:task:{t1}", "relayna:history:{t1}",
    ]  # fmt: skip
    with pytest.raises(ConfigurationError):
        CancelStore(None, prefix="a{b}", cluster=True)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        TaskIds(None, prefix="a{b}", cluster=True)  # type: ignore[arg-type]


@pytestmark_anyio
async def test_a_lost_pending_entry_is_repaired_by_the_repeated_cancel(
    store_url: str, unique: str
) -> None:
    """The marker was written, the pending-set entry was not (the store failed
    in between): the cancel reports the failure; the caller's retry answers
    ``pending`` and lists the id, so workers load it."""
    with anyio.fail_after(15):
        async with open_store(store_url) as store:
            faulty = FailOnce(store, "relayna.cancel.pending")
            cancels = CancelStore(faulty, prefix=f"c-{unique}", cluster=True)  # type: ignore[arg-type]
            with pytest.raises(StoreError):
                await cancels.request("b1", "stop", require_known=False)
            assert await cancels.pending_ids() == set()
            again = await cancels.request("b1", "stop", require_known=False)
            assert (again.state, again.reason) == ("pending", "stop")
            assert await cancels.pending_ids() == {"b1"}
            assert (await cancels.start("item", batch_id="b1")).state == "cancelled"


# -- the App: one setting for every store ------------------------------------------


@pytestmark_anyio
async def test_the_app_with_cluster_keys_touches_one_slot_per_call(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``RELAYNA_STORE_CLUSTER_KEYS=1``: an App's worker, publisher, DLQ,
    cancellation and feed writes all use the cluster layout, and every script
    call (and multi-key command) touches one slot."""
    monkeypatch.setenv("RELAYNA_STORE_CLUSTER_KEYS", "1")
    with anyio.fail_after(30):
        async with open_store("memory://") as raw:
            rec = SlotRecorder(raw)
            app = relayna.App(name="cl", broker="memory://", store=as_store(rec))
            assert app.store_config.cluster is True

            @app.task("work", retry=RetryPolicy(max_retries=1, delay_ms=20))
            async def work(ctx: TaskContext, payload: dict[str, Any]) -> int:
                if payload.get("fail"):
                    raise RuntimeError("no")
                return 1

            async with app.open(worker=True):
                ok = await app.publish("work", {}, task_id="ok-1")
                assert await ok.result() == {"value": 1}
                bad = await app.publish("work", {"fail": True}, task_id="bad-1")
                with pytest.raises(TaskFailed):
                    await bad.result()
                with pytest.raises(DuplicateTaskError):
                    await app.publish("work", {}, task_id="ok-1", if_exists="error")
                assert (await app.cancel("ok-1")).state == "terminal"
                assert (await app.cancel("never")).state == "unknown"
                assert (await app.cancel_batch("batch-9")).state == "requested"
                assert await raw.exists("relayna:history:{ok-1}")
                dlq = app.runtime.dlq
                assert dlq is not None
                assert [r.task_id for r in (await dlq.store.list_records()).records] == ["bad-1"]
            assert {
                "relayna.status.write_sharded",
                "relayna.cancel",
                "relayna.task.claim",
            } <= rec.names()
            assert rec.cross_slot() == []


def test_cluster_keys_env_must_be_a_yes_or_a_no(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYNA_STORE_CLUSTER_KEYS", "maybe")
    with pytest.raises(ConfigurationError):
        relayna.App(name="x", broker="memory://", store="memory://")
    monkeypatch.setenv("RELAYNA_STORE_CLUSTER_KEYS", "off")
    assert relayna.App(name="x", store="memory://").store_config.cluster is False


# -- worker heartbeats --------------------------------------------------------------


@pytestmark_anyio
async def test_worker_heartbeats_one_slot(store_url: str, unique: str) -> None:
    with anyio.fail_after(15):
        async with recorded(store_url) as rec:
            prefix = f"hb-{unique}"
            snapshot = HeartbeatSnapshot(
                consumer_name="c", queue_name="q", in_flight=0, processed=1, state="running"
            )
            for worker in ("w1", "w/2"):
                beats = WorkerHeartbeats(
                    store=as_store(rec), prefix=prefix, worker_id=worker, cluster=True
                )
                await beats.write(snapshot, started_at=0.0)
            listed = await list_worker_heartbeats(as_store(rec), prefix, cluster=True)
            assert [b.worker_id for b in listed] == ["w/2", "w1"]
            assert await list_worker_heartbeats(as_store(rec), prefix) == []  # other names
            assert await rec.exists(f"{{{prefix}}}:workers:w1")
            assert {"relayna.consumer.heartbeat", "MGET"} <= rec.names()
            assert rec.cross_slot() == []
    with pytest.raises(ConfigurationError):
        WorkerHeartbeats(store=as_store(rec), prefix="a{b}", cluster=True)


# -- workflow run state -------------------------------------------------------------


@given(task=ids, stage=ids, signature=ids)
def test_a_runs_keys_share_its_slot(task: str, stage: str, signature: str) -> None:
    keys = WorkflowStore(None, WorkflowStoreConfig(cluster=True)).keys  # type: ignore[arg-type]
    every = [
        keys.run(task), keys.fanin(task, stage), keys.dedup(stage, task, signature),
        keys.inflight(stage, task),
    ]  # fmt: skip
    assert one_slot(every)
    assert key_slot(every[0]) == key_slot(task)


def test_workflow_layout_names() -> None:
    default = WorkflowStore(None).keys  # type: ignore[arg-type]
    assert default.run("t1") == "relayna:workflow:run:t1"
    assert default.fanin("t1", "join") == "relayna:workflow:fanin:t1:join"
    assert default.dedup("s", "t1", "sig") == "relayna:workflow:contract:s:dedup:t1:sig"
    assert default.inflight("s", "t1") == "relayna:workflow:contract:s:inflight:t1"
    cluster = WorkflowStore(None, WorkflowStoreConfig(cluster=True)).keys  # type: ignore[arg-type]
    assert cluster.run("t1") == "relayna:workflow:run:{t1}"
    assert cluster.fanin("t1", "join") == "relayna:workflow:fanin:{t1}:join"
    with pytest.raises(ConfigurationError):
        WorkflowStoreConfig(prefix="w{x}", cluster=True)


@pytestmark_anyio
async def test_workflow_store_operations_one_slot(store_url: str, unique: str) -> None:
    with anyio.fail_after(15):
        async with recorded(store_url) as rec:
            wf = WorkflowStore(
                as_store(rec), WorkflowStoreConfig(prefix=f"w-{unique}", cluster=True)
            )
            common = {"task_id": "run-1", "owner": "me", "guard_ttl_ms": 5000}
            entry = await wf.enter(
                stage="a", message_id="m1", guard="g1", envelope=b"{}", lineage={}, **common
            )
            assert entry.verdict == "go"
            assert await wf.complete(
                task_id="run-1", stage="a", message_id="m1", guard="g1", owner="me"
            )
            for branch in ("b1", "b2"):
                arrival = await wf.arrive(
                    stage="join", branch=branch, message_id=f"m-{branch}", envelope=b"{}",
                    expected=2, fanin_ttl_ms=5000, lineage={}, **common,
                )  # fmt: skip
            assert arrival.verdict == "release"
            assert await wf.cancelled("run-1", "stop")
            assert (await wf.read_run("run-1")) != {}
            assert await rec.exists(f"w-{unique}:workflow:run:{{run-1}}")
            assert rec.cross_slot() == []


def test_a_cluster_store_url_implies_the_cluster_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001/"
    monkeypatch.delenv("RELAYNA_STORE_CLUSTER_KEYS", raising=False)
    assert relayna.App(name="a", store=url)._store_layout().cluster is True
    assert relayna.App(name="a", store="redis://127.0.0.1:6379")._store_layout().cluster is False
    chosen = relayna.App(name="a", store=url, store_config=StatusStoreConfig(cluster=True))
    assert chosen._store_layout().cluster is True
    with pytest.raises(ConfigurationError, match="cluster"):  # the default layout, chosen
        relayna.App(name="a", store=url, store_config=StatusStoreConfig())._store_layout()
    monkeypatch.setenv("RELAYNA_STORE_CLUSTER_KEYS", "0")
    with pytest.raises(ConfigurationError, match="cluster"):
        relayna.App(name="a", store=url)._store_layout()
    implied = cluster_layout_everywhere(RuntimeConfig(store_url=url))
    assert implied.store.cluster is True
    assert implied.feed is not None
    assert implied.feed.cluster is True

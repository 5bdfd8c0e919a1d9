"""Studio's Redis Cluster key layout (``RELAYNA_STUDIO_STORE_CLUSTER_KEYS``).

The relayna stores' proof is tests/integration/test_cluster_key_layout.py;
this is Studio's: its real operations (registry, push ingest, event lists,
task search with and without ``service_id``, retention, backfill, health
reads, tokens, tickets, audit) through the HTTP API and the runtime, on the
memory store and on the real Redis, through the slot recorder: every script
call and multi-key command touches one slot (Hypothesis over service ids
and task ids). The default layout's key names are byte-for-byte those of
seed 002 / ANCHOR §5 (golden tests); ids and prefixes with braces are
refused with typed errors; the switch and its implication by a
``redis+cluster://`` URL.
"""

from __future__ import annotations

import uuid

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _slot_recorder import SlotRecorder
from _studio_cluster_ops import exercise, open_test_studio, push, service_body, studio_settings
from relayna.errors import ConfigurationError, ContractError
from relayna.transport import key_slot, open_store
from relayna_studio import StudioSettings
from relayna_studio._event_keys import EventKeys
from relayna_studio._events import EventStore
from relayna_studio._health import HealthStore
from relayna_studio._leases import Leases
from relayna_studio._models import is_valid_service_id
from relayna_studio._registry import Registry
from relayna_studio._search import TaskIndex
from relayna_studio._search_keys import SearchKeys, document_id

#: Valid service ids (relayna's identifier rule without ``/``) and task ids.
service_ids = st.from_regex(
    r"[A-Za-z0-9_][A-Za-z0-9_:@+=\-.]{0,20}[A-Za-z0-9_]", fullmatch=True
).filter(is_valid_service_id)
task_ids = st.from_regex(
    r"[A-Za-z0-9_:@/+=\-][A-Za-z0-9_:@/+=\-.]{0,20}[A-Za-z0-9_]", fullmatch=True
).filter(lambda s: ".." not in s)
braced = st.builds(
    lambda a, b: f"{a}{{{b}}}", st.sampled_from(["", "s", "x:"]), st.sampled_from(["", "a", "s1"])
)


def one_slot(keys: list[str]) -> bool:
    return len({key_slot(k) for k in keys}) == 1


# -- the default layout: names unchanged (seed 002, ANCHOR §5) ------------------


def test_default_layout_names_unchanged() -> None:
    s = StudioSettings(redis_url="redis://127.0.0.1:6379/0")
    assert s.cluster_keys is False
    k = EventKeys(s.event_store_prefix)
    assert k.event("svc", "svc:status:e1") == "studio:events:event:svc:status:e1"
    assert k.service_history("svc") == "studio:events:service:svc:history"
    assert k.task_history("svc", "t1") == "studio:events:task:svc:t1:history"
    assert k.task_latest("svc", "t1") == "studio:events:task:svc:t1:latest-timestamp"
    assert k.latest_status("svc") == "studio:events:service:svc:latest-status-timestamp"
    assert k.latest_observation("svc") == "studio:events:service:svc:latest-observation-timestamp"
    assert k.latest_ingested("svc") == "studio:events:service:svc:latest-ingested-timestamp"
    assert k.events_skipped("svc") == "studio:events:service:svc:events-skipped"
    assert k.pull_cursor("svc") == "studio:events:pull-cursor:svc"
    assert k.service_channel("svc") == "studio:events:channel:service:svc"
    assert k.task_channel("svc", "t1") == "studio:events:channel:task:svc:t1"
    index = TaskIndex(None, s.task_search_index_prefix)  # type: ignore[arg-type]
    sk = index.keys_for("svc")
    assert sk == SearchKeys("studio:search")
    assert sk.doc("D") == "studio:search:task:doc:D"
    assert sk.all == "studio:search:task:all"
    assert sk.filter("status", "failed") == "studio:search:task:filter:status:failed"
    assert sk.service("svc") == "studio:search:task:service:svc"
    assert sk.by_last_seen == "studio:search:task:by-last-seen"
    assert sk.expiry == "studio:search:task:expiry"
    registry = Registry(None, s.global_prefix(s.registry_prefix))  # type: ignore[arg-type]
    assert registry.id_key("svc") == "studio:services:by-id:svc"
    assert registry.all_key == "studio:services:all"
    record = {"environment": "prod", "base_url": "http://a.test"}
    assert registry.env_url_key(record) == "studio:services:by-env-url:prod:http://a.test"
    health = HealthStore(None, s.global_prefix(s.health_store_prefix))  # type: ignore[arg-type]
    assert health.key("svc") == "studio:health:svc"
    assert s.global_prefix(s.audit_prefix) == "studio:audit"
    assert s.global_prefix(s.auth_prefix) == "studio:auth"
    assert s.global_prefix(s.failed_task_email_prefix) == "studio:failed_task_email"
    assert Leases(None, s.lease_prefix).key("pull_sync", "svc") == "studio:leases:pull_sync:svc"  # type: ignore[arg-type]


def test_cluster_layout_names() -> None:
    s = StudioSettings(redis_url="redis://127.0.0.1:6379/0", store_cluster_keys=True)
    k = EventKeys(s.event_store_prefix, s.cluster_keys)
    assert k.event("svc", "svc:status:e1") == "studio:events:event:{svc}:status:e1"
    assert k.service_history("svc") == "studio:events:service:{svc}:history"
    assert k.task_history("svc", "t1") == "studio:events:task:{svc}:t1:history"
    assert k.pull_cursor("svc") == "studio:events:pull-cursor:{svc}"
    assert k.task_channel("svc", "t1") == "studio:events:channel:task:{svc}:t1"
    index = TaskIndex(None, s.task_search_index_prefix, cluster=True)  # type: ignore[arg-type]
    assert index.keys_for("svc").doc("D") == "studio:search:{svc}:task:doc:D"
    assert index.keys_for("svc").by_last_seen == "studio:search:{svc}:task:by-last-seen"
    assert index.services_key == "{studio:search}:task:services"
    registry = Registry(None, s.global_prefix(s.registry_prefix))  # type: ignore[arg-type]
    assert registry.id_key("svc") == "{studio:services}:by-id:svc"
    assert s.global_prefix(s.audit_prefix) == "{studio:audit}"
    assert s.global_prefix(s.auth_prefix) == "{studio:auth}"
    assert s.global_prefix(s.health_store_prefix) == "{studio:health}"
    assert s.global_prefix(s.failed_task_email_prefix) == "{studio:failed_task_email}"
    # leases are single-key: their names do not change
    assert Leases(None, s.lease_prefix).key("health", "svc") == "studio:leases:health:svc"  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(sid=service_ids, tid=task_ids, event_id=task_ids)
def test_a_services_keys_share_its_slot(sid: str, tid: str, event_id: str) -> None:
    events = EventStore(None, "studio:events", cluster=True)  # type: ignore[arg-type]
    raw = {"task_id": tid, "event_id": event_id, "event_type": "status.x", "source_kind": "status"}
    _doc, args = events.prepare(sid, raw, "push")
    calls = events.batch_calls(sid, [args], "2026-05-01T00:00:00.000Z", cursor="c1")
    slot = key_slot(sid)
    for keys, _ in calls:
        assert {key_slot(k) for k in keys} == {slot}
    k = events.keys
    # the keys the script builds from the prefix and the tagged id, and the channels
    built = [
        k.event(sid, str(args[1])),
        k.task_history(sid, tid),
        k.task_latest(sid, tid),
        k.task_channel(sid, tid),
        k.service_channel(sid),
    ]
    assert {key_slot(x) for x in built} == {slot}
    sk = TaskIndex(None, "studio:search", cluster=True).keys_for(sid)  # type: ignore[arg-type]
    docid = document_id(sid, tid)
    index_keys = [sk.doc(docid), sk.all, sk.service(sid), sk.by_last_seen, sk.expiry]
    index_keys += [sk.filter("task_id", tid), sk.filter_by_time("status", tid)]
    assert {key_slot(x) for x in index_keys} == {slot}


@given(bad=braced)
def test_braced_service_ids_are_refused_in_the_cluster_layout(bad: str) -> None:
    events = EventStore(None, "studio:events", cluster=True)  # type: ignore[arg-type]
    with pytest.raises(ContractError):
        events.batch_calls(bad, [], "2026-05-01T00:00:00.000Z")
    with pytest.raises(ContractError):
        events.keys.task_history(bad, "t1")
    with pytest.raises(ContractError):
        TaskIndex(None, "studio:search", cluster=True).keys_for(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["a{b}", "{studio}", "x}"])
def test_braced_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ConfigurationError):
        EventKeys(prefix, cluster=True)
    with pytest.raises(ConfigurationError):
        TaskIndex(None, prefix, cluster=True)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        StudioSettings(redis_url="memory://", event_store_prefix=prefix)


def test_the_switch_and_a_cluster_url() -> None:
    cluster_url = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001/"
    assert StudioSettings(redis_url=cluster_url).cluster_keys is True
    assert StudioSettings(redis_url=cluster_url, store_cluster_keys=True).cluster_keys is True
    with pytest.raises(ConfigurationError, match="STORE_CLUSTER_KEYS"):
        StudioSettings(redis_url=cluster_url, store_cluster_keys=False)
    env = {"RELAYNA_STUDIO_REDIS_URL": "redis://127.0.0.1:6379/0"}
    assert StudioSettings.from_env(env).cluster_keys is False
    for yes in ("1", "true", "YES", "on"):
        on = StudioSettings.from_env({**env, "RELAYNA_STUDIO_STORE_CLUSTER_KEYS": yes})
        assert on.cluster_keys is True
    for no in ("0", "false", "off"):
        off = StudioSettings.from_env({**env, "RELAYNA_STUDIO_STORE_CLUSTER_KEYS": no})
        assert off.cluster_keys is False
    implied = {"RELAYNA_STUDIO_REDIS_URL": cluster_url, "RELAYNA_STUDIO_STORE_CLUSTER_KEYS": ""}
    assert StudioSettings.from_env(implied).cluster_keys is True
    with pytest.raises(ConfigurationError, match="STORE_CLUSTER_KEYS"):
        StudioSettings.from_env({**implied, "RELAYNA_STUDIO_STORE_CLUSTER_KEYS": "0"})
    with pytest.raises(ConfigurationError, match="STORE_CLUSTER_KEYS"):
        StudioSettings.from_env({**env, "RELAYNA_STUDIO_STORE_CLUSTER_KEYS": "maybe"})


# -- every operation: one slot per call ------------------------------------------


STUDIO_SCRIPTS = {
    "relayna_studio.registry.create",
    "relayna_studio.registry.replace",
    "relayna_studio.registry.delete",
    "relayna_studio.events.insert_batch_sharded",  # SPUBLISH: channels are sharded
    "relayna_studio.search.put",
    "relayna_studio.search.delete",
    "relayna_studio.search.query",
    "relayna_studio.auth.create",
    "relayna_studio.auth.revoke",
    "relayna_studio.auth.redeem",
    "relayna_studio.audit.append",
    "MGET",
}


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sids=st.lists(service_ids, min_size=2, max_size=3, unique=True),
    tids=st.lists(task_ids, min_size=1, max_size=3, unique=True),
)
@pytest.mark.anyio
async def test_every_studio_call_touches_one_slot(
    store_url: str, sids: list[str], tids: list[str]
) -> None:
    prefix = f"sk-{uuid.uuid4().hex[:10]}"
    with anyio.fail_after(30):
        async with open_store(store_url) as raw:
            rec = SlotRecorder(raw)
            settings_ = studio_settings(store_url, prefix, store_cluster_keys=True)
            async with open_test_studio(settings_, store=rec) as studio:
                await exercise(studio, sids, tids)
    assert STUDIO_SCRIPTS <= rec.names()
    assert rec.cross_slot() == []


@pytest.mark.anyio
async def test_the_default_layout_spans_slots(store_url: str) -> None:
    """The same operations in the default layout cross slots (why the layout exists)."""
    prefix = f"sk-{uuid.uuid4().hex[:10]}"
    with anyio.fail_after(30):
        async with open_store(store_url) as raw:
            rec = SlotRecorder(raw)
            settings_ = studio_settings(store_url, prefix)
            async with open_test_studio(settings_, store=rec) as studio:
                await exercise(studio, ["svc-a", "svc-b"], ["t1", "t2"])
    crossing = {name for name, _keys, _slots in rec.cross_slot()}
    assert {"relayna_studio.events.insert_batch", "relayna_studio.search.put"} <= crossing


@pytest.mark.anyio
async def test_default_layout_keys_in_the_store(store_url: str) -> None:
    """Golden: an ingested event lands under the original's key names."""
    prefix = f"sk-{uuid.uuid4().hex[:10]}"
    with anyio.fail_after(15):
        async with open_store(store_url) as store:
            settings_ = studio_settings(store_url, prefix)
            async with open_test_studio(settings_, store=store) as studio:
                client = studio.client
                await client.post("/studio/services", json=service_body("svc", 0))
                body = {"events": [push("svc", "t1", 1, "running")]}
                assert (await client.post("/studio/ingest/events", json=body)).status_code == 200
            p = f"{prefix}:events"
            assert await store.get(f"{p}:event:svc:status:e1") is not None
            assert await store.lrange(f"{p}:service:svc:history", 0, -1) == [b"svc:status:e1"]
            assert await store.lrange(f"{p}:task:svc:t1:history", 0, -1) == [b"svc:status:e1"]
            assert await store.get(f"{p}:task:svc:t1:latest-timestamp") is not None
            assert await store.get(f"{p}:service:svc:latest-status-timestamp") is not None
            assert await store.get(f"{prefix}:services:by-id:svc") is not None
            assert await store.smembers(f"{prefix}:services:all") == {b"svc"}
            docid = document_id("svc", "t1")
            assert await store.get(f"{prefix}:search:task:doc:{docid}") is not None
            assert await store.smembers(f"{prefix}:search:task:filter:status:running") == {
                docid.encode()
            }
            assert await store.zcard(f"{prefix}:audit:entries") >= 2


@pytest.mark.anyio
async def test_cluster_layout_keys_in_the_store(store_url: str) -> None:
    prefix = f"sk-{uuid.uuid4().hex[:10]}"
    with anyio.fail_after(15):
        async with open_store(store_url) as store:
            settings_ = studio_settings(store_url, prefix, store_cluster_keys=True)
            async with open_test_studio(settings_, store=store) as studio:
                client = studio.client
                await client.post("/studio/services", json=service_body("svc", 0))
                body = {"events": [push("svc", "t1", 1, "running")]}
                assert (await client.post("/studio/ingest/events", json=body)).status_code == 200
            p = f"{prefix}:events"
            assert await store.get(f"{p}:event:{{svc}}:status:e1") is not None
            assert await store.lrange(f"{p}:task:{{svc}}:t1:history", 0, -1) == [b"svc:status:e1"]
            assert await store.get(f"{p}:event:svc:status:e1") is None
            assert await store.get(f"{{{prefix}:services}}:by-id:svc") is not None
            docid = document_id("svc", "t1")
            assert await store.get(f"{prefix}:search:{{svc}}:task:doc:{docid}") is not None
            assert await store.smembers(f"{{{prefix}:search}}:task:services") == {b"svc"}
            assert await store.zcard(f"{{{prefix}:audit}}:entries") >= 2

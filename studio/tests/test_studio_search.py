"""Task search: filters, time ranges, cursors (Hypothesis against an oracle, 1-3 filters),
expiry on read, retention; the routes' rules. Memory store and real Redis."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relayna.transport import open_store
from relayna_studio._search import TaskIndex

BASE = datetime(2026, 5, 1, tzinfo=UTC)
SERVICES = ["alpha", "beta", "gamma"]
STATUSES = ["queued", "processing", "completed", "failed"]

event_st = st.fixed_dictionaries(
    {
        "service": st.sampled_from(SERVICES),
        "task": st.integers(0, 15),
        "second": st.integers(0, 40),
        "status": st.sampled_from([*STATUSES, None]),
        "stage": st.sampled_from(["a", "b", None]),
    }
)


def record(sid: str) -> dict[str, Any]:
    return {"service_id": sid, "name": sid.title(), "environment": "prod"}


def to_event(e: dict[str, Any], i: int) -> dict[str, Any]:
    payload = {k: e[k] for k in ("status", "stage") if e[k] is not None}
    stamp = (BASE + timedelta(seconds=e["second"])).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "service_id": e["service"],
        "task_id": f"t{e['task']}",
        "event_type": f"type-{i}",
        "timestamp": stamp,
        "ingested_at": stamp,
        "correlation_id": f"c{e['task'] % 4}",
        "payload": payload,
    }


def oracle(events: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for ev in sorted(events, key=lambda e: e["timestamp"]):
        key = (ev["service_id"], ev["task_id"])
        d = docs.setdefault(
            key, {"status": None, "stage": None, "last": ev["timestamp"], "latest": None}
        )
        d["last"] = max(d["last"], ev["timestamp"])
        if d["latest"] is None or ev["timestamp"] >= d["latest"]:
            d["latest"] = ev["timestamp"]
            for f in ("status", "stage"):
                if f in ev["payload"]:
                    d[f] = ev["payload"][f]
    return docs


async def fill(events: list[dict[str, Any]], *indexes: TaskIndex) -> None:
    for sid in SERVICES:
        mine = [e for e in events if e["service_id"] == sid]
        for i in range(0, len(mine), 7):  # several batches: merges across upserts
            for index in indexes:
                await index.upsert(record(sid), mine[i : i + 7])


async def run_case(
    url: str,
    events: list[dict[str, Any]],
    filters: dict[str, str],
    limit: int,
    cluster: bool = False,
) -> None:
    async with open_store(url) as store:
        index = TaskIndex(store, f"search:{uuid.uuid4().hex[:8]}", cluster=cluster)
        await fill(events, index)
        docs = oracle(events)
        expected = sorted(
            (
                (
                    -int(
                        datetime.fromisoformat(d["last"].replace("Z", "+00:00")).timestamp() * 1000
                    ),
                    sid,
                    tid,
                )
                for (sid, tid), d in docs.items()
                if all(
                    {
                        "service_id": sid,
                        "task_id": tid,
                        "status": d["status"],
                        "stage": d["stage"],
                    }.get(f)
                    == v
                    for f, v in filters.items()
                )
            )
        )
        seen: list[tuple[str, str]] = []
        cursor = None
        for _ in range(200):
            page, cursor = await index.search(
                filters, time_from=None, time_to=None, limit=limit, cursor=cursor
            )
            assert len(page) <= limit
            seen += [(d["service_id"], d["task_id"]) for d in page]
            for d in page:
                want = docs[(d["service_id"], d["task_id"])]
                assert d["status"] == want["status"]
                assert d["stage"] == want["stage"]
                assert d["last_seen_at"] == want["last"]
            if cursor is None:
                break
        assert seen == [(sid, tid) for _, sid, tid in expected]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.lists(event_st, min_size=1, max_size=60),
    filter_fields=st.sets(st.sampled_from(["service_id", "status", "stage"]), min_size=1),
    pick=st.integers(0, 100),
    limit=st.integers(1, 9),
)
def test_search_pages_match_the_oracle_memory(
    anyio_backend: str,
    raw: list[dict[str, Any]],
    filter_fields: set[str],
    pick: int,
    limit: int,
) -> None:
    events = [to_event(e, i) for i, e in enumerate(raw)]
    values = {
        "service_id": SERVICES[pick % 3],
        "status": STATUSES[pick % 4],
        "stage": ["a", "b"][pick % 2],
    }
    filters = {f: values[f] for f in filter_fields}
    anyio.run(run_case, "memory://", events, filters, limit, backend=anyio_backend)


@pytest.mark.anyio
async def test_search_pages_match_the_oracle_redis(redis_url: str) -> None:
    import random

    rng = random.Random(7)
    raw = [
        {
            "service": rng.choice(SERVICES),
            "task": rng.randrange(40),
            "second": rng.randrange(600),
            "status": rng.choice([*STATUSES, None]),
            "stage": rng.choice(["a", "b", None]),
        }
        for _ in range(400)
    ]
    events = [to_event(e, i) for i, e in enumerate(raw)]
    with anyio.fail_after(60):
        for filters in (
            {"service_id": "beta"},
            {"service_id": "alpha", "status": "failed"},
            {"stage": "a", "status": "completed"},
        ):
            for limit in (1, 6, 50):
                await run_case(redis_url, events, filters, limit)
                # the cluster layout (one index per service): the same pages
                await run_case(redis_url, events, filters, limit, cluster=True)


async def pages(
    index: TaskIndex,
    filters: dict[str, str],
    limit: int,
    time_from: datetime | None,
    time_to: datetime | None,
) -> list[tuple[list[tuple[str, str, str]], str | None]]:
    out: list[tuple[list[tuple[str, str, str]], str | None]] = []
    cursor = None
    for _ in range(200):
        page, cursor = await index.search(
            filters, time_from=time_from, time_to=time_to, limit=limit, cursor=cursor
        )
        out.append(([(d["service_id"], d["task_id"], d["last_seen_at"]) for d in page], cursor))
        if cursor is None:
            break
    return out


async def compare_layouts(
    url: str,
    events: list[dict[str, Any]],
    filters: dict[str, str],
    limit: int,
    window: tuple[int, int] | None,
) -> None:
    async with open_store(url) as store:
        base = f"search:{uuid.uuid4().hex[:8]}"
        default = TaskIndex(store, f"{base}:d")
        cluster = TaskIndex(store, f"{base}:c", cluster=True)
        await fill(events, default, cluster)
        lo = hi = None
        if window is not None:
            lo, hi = (BASE + timedelta(seconds=min(window)), BASE + timedelta(seconds=max(window)))
        want = await pages(default, filters, limit, lo, hi)
        got = await pages(cluster, filters, limit, lo, hi)
        assert got == want  # items and cursors, page by page
        assert (await cluster.prune(now=BASE + timedelta(days=400))) == len(oracle(events))
        assert await cluster.is_empty()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.lists(event_st, min_size=1, max_size=60),
    filter_fields=st.sets(st.sampled_from(["service_id", "status", "stage"])),
    pick=st.integers(0, 100),
    limit=st.integers(1, 9),
    window=st.none() | st.tuples(st.integers(0, 40), st.integers(0, 40)),
)
def test_cluster_and_default_layouts_give_the_same_pages(
    anyio_backend: str,
    raw: list[dict[str, Any]],
    filter_fields: set[str],
    pick: int,
    limit: int,
    window: tuple[int, int] | None,
) -> None:
    """Generated events (many tasks share a second) in both layouts: every page and
    every cursor equal, with and without ``service_id`` (the cluster layout's fan-out)."""
    events = [to_event(e, i) for i, e in enumerate(raw)]
    values = {
        "service_id": SERVICES[pick % 3],
        "status": STATUSES[pick % 4],
        "stage": ["a", "b"][pick % 2],
    }
    filters = {f: values[f] for f in filter_fields}
    anyio.run(compare_layouts, "memory://", events, filters, limit, window, backend=anyio_backend)


@pytest.mark.anyio
async def test_time_range_expiry_on_read_and_retention(store_url: str) -> None:
    async with open_store(store_url) as store:
        index = TaskIndex(store, f"search:{uuid.uuid4().hex[:8]}", ttl_seconds=60)
        events = [
            to_event(
                {
                    "service": "alpha",
                    "task": i,
                    "second": i * 10,
                    "status": "queued",
                    "stage": None,
                },
                i,
            )
            for i in range(6)
        ]
        await index.upsert(record("alpha"), events)
        page, _ = await index.search(
            {},
            time_from=BASE + timedelta(seconds=15),
            time_to=BASE + timedelta(seconds=35),
            limit=10,
            cursor=None,
        )
        assert [d["task_id"] for d in page] == ["t3", "t2"]
        # expire t5 by hand: expired documents disappear on read and are deleted
        raw = await store.get(index.keys.doc(_docid("alpha", "t5")))
        assert raw is not None
        doc = __import__("orjson").loads(raw)
        doc["expires_at"] = "2000-01-01T00:00:00.000000Z"
        await store.set(index.keys.doc(_docid("alpha", "t5")), __import__("orjson").dumps(doc))
        page, _ = await index.search(
            {"service_id": "alpha"}, time_from=None, time_to=None, limit=10, cursor=None
        )
        assert "t5" not in [d["task_id"] for d in page]
        assert await store.get(index.keys.doc(_docid("alpha", "t5"))) is None
        # retention deletes what expires before "now"
        removed = await index.prune(now=datetime.now(UTC) + timedelta(seconds=120))
        assert removed == 5
        assert await index.is_empty()


def _docid(sid: str, tid: str) -> str:
    from relayna_studio._search_keys import document_id

    return document_id(sid, tid)


@pytest.mark.anyio
async def test_search_routes(studio_factory: Any) -> None:
    with anyio.fail_after(30):
        async with studio_factory(push_ingest_enabled=True) as studio:
            client = studio.client
            for sid, env, tags in (
                ("pay-api", "prod", ["core"]),
                ("billing", "staging", ["core", "money"]),
            ):
                await client.post(
                    "/studio/services",
                    json={
                        "service_id": sid,
                        "name": sid.replace("-", " ").title(),
                        "base_url": f"http://{sid}.example.test",
                        "environment": env,
                        "tags": tags,
                        "auth_mode": "internal_network",
                    },
                )
            body = {
                "events": [
                    {
                        "service_id": "pay-api",
                        "event": {
                            "task_id": f"t{i}",
                            "event_type": "status.completed",
                            "source_kind": "status",
                            "event_id": f"e{i}",
                            "timestamp": f"2026-05-01T12:00:{i:02d}Z",
                            "payload": {"status": "completed" if i % 2 else "failed"},
                        },
                    }
                    for i in range(10)
                ]
            }
            assert (await client.post("/studio/ingest/events", json=body)).json()["inserted"] == 10
            found = (
                await client.get("/studio/tasks/search?service_id=pay-api&status=failed&limit=2")
            ).json()
            assert [d["task_id"] for d in found["items"]] == ["t8", "t6"]
            assert found["items"][0]["detail_path"] == "/studio/tasks/pay-api/t8"
            nxt = (
                await client.get(
                    f"/studio/tasks/search?service_id=pay-api&status=failed&limit=2&cursor={found['next_cursor']}"
                )
            ).json()
            assert [d["task_id"] for d in nxt["items"]] == ["t4", "t2"]
            for query in (
                "",
                "limit=5",
                "cursor=zzz&status=x",
                "from=never",
                "status=",
                "nope=1",
                "task_id=a%20b",
                "from=2026-05-02T00:00:00Z&to=2026-05-01T00:00:00Z",
            ):
                response = await client.get(f"/studio/tasks/search?{query}")
                assert response.status_code == 422, query
            svc = (await client.get("/studio/services/search?query=pay")).json()
            assert [s["service_id"] for s in svc["items"]] == ["pay-api"]
            assert "service_id" in svc["items"][0]["matched_fields"]
            both = (await client.get("/studio/services/search?tag=core&limit=1")).json()
            assert both["count"] == 1
            rest = (
                await client.get(
                    f"/studio/services/search?tag=core&limit=1&cursor={both['next_cursor']}"
                )
            ).json()
            assert {both["items"][0]["service_id"], rest["items"][0]["service_id"]} == {
                "pay-api",
                "billing",
            }
            assert (await client.get("/studio/services/search?query=zzz")).json()["count"] == 0
            assert (await client.get("/studio/services/search?cursor=%%%")).status_code == 422
            # deleting a service removes its task documents
            assert (await client.delete("/studio/services/pay-api")).status_code == 204
            gone = (await client.get("/studio/tasks/search?service_id=pay-api")).json()
            assert gone["count"] == 0

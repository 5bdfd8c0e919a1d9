"""Studio's store operations, run through its routes and runtime, for the cluster
key layout's proofs (the recorder test and the real-cluster test).

Import as ``from _studio_cluster_ops import exercise, ...`` (tests/ is on sys.path).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from relayna_studio import StudioSettings
from relayna_studio._health_service import HealthService
from relayna_studio._routes_search import task_index
from relayna_studio._search_hooks import backfill

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "studio" / "tests"))
from studio_support import Studio, open_test_studio, settings_for

__all__ = ["exercise", "open_test_studio", "push", "service_body", "studio_settings"]


def studio_settings(url: str, prefix: str, **overrides: Any) -> StudioSettings:
    """Studio's test settings (``settings_for``) with push ingest on."""
    overrides = {
        "push_ingest_enabled": True,
        "failed_task_email_prefix": f"{prefix}:failed_task_email",
        **overrides,
    }
    return settings_for(url, prefix, **overrides)


def push(sid: str, tid: str, i: int, status: str) -> dict[str, Any]:
    stamp = (datetime(2026, 5, 1, tzinfo=UTC) + timedelta(seconds=i)).isoformat()
    return {
        "service_id": sid,
        "ingest_method": "push",
        "event": {
            "task_id": tid,
            "event_id": f"e{i}",
            "event_type": f"status.{status}",
            "source_kind": "status" if i % 2 else "observation",
            "timestamp": stamp.replace("+00:00", "Z"),
            "payload": {"status": status},
        },
    }


def service_body(sid: str, n: int) -> dict[str, Any]:
    return {
        "service_id": sid,
        "name": sid,
        "base_url": f"http://s{n}.example.test",
        "environment": "prod",
        "auth_mode": "internal_network",
    }


async def exercise(studio: Studio, sids: list[str], tids: list[str]) -> None:
    """Studio's store operations, through its routes and its runtime."""
    runtime, client = studio.runtime, studio.client
    for n, sid in enumerate(sids):
        created = await client.post("/studio/services", json=service_body(sid, n))
        assert created.status_code == 201, created.text
    patched = await client.patch(f"/studio/services/{sids[0]}", json={"name": "renamed"})
    assert patched.status_code == 200, patched.text
    assert len((await client.get("/studio/services")).json()["services"]) == len(sids)
    events = [
        push(sid, tid, i, "failed" if i % 3 == 0 else "running")
        for i, (sid, tid) in enumerate((s, t) for s in sids for t in tids)
    ]
    counts = (await client.post("/studio/ingest/events", json={"events": events})).json()
    assert counts == {"inserted": len(events), "duplicate": 0, "invalid": 0}
    again = (await client.post("/studio/ingest/events", json={"events": events[:2]})).json()
    assert again["duplicate"] == 2
    for sid in sids:
        listed = (await client.get(f"/studio/services/{sid}/events?limit=500")).json()
        assert len(listed["items"]) == len(tids)
        one = (await client.get(f"/studio/tasks/{sid}/{tids[0]}/events", params={})).json()
        assert [e["task_id"] for e in one["items"]] == [tids[0]]
        mine = (await client.get("/studio/tasks/search", params={"service_id": sid})).json()
        assert {d["task_id"] for d in mine["items"]} == set(tids)
    everything: list[tuple[str, str]] = []
    cursor: str | None = None
    while True:
        params = {"from": "2026-01-01T00:00:00Z", "limit": "2"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/studio/tasks/search", params=params)).json()
        everything += [(d["service_id"], d["task_id"]) for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(everything) == sorted((s, t) for s in sids for t in tids)
    failed = (await client.get("/studio/tasks/search", params={"status": "failed"})).json()
    assert {d["status"] for d in failed["items"]} <= {"failed"}
    health = HealthService(runtime)
    facts = await health.ingest_facts(sids)
    assert all(f.latest_ingested is not None for f in facts)
    await health.store.put(sids[0], {"reachable": True})
    assert (await health.store.get_many(sids))[0] == {"reachable": True}
    token, record = await runtime.tokens.create(name="t", role="reader", created_by="test")
    principal = await runtime.tokens.authenticate(token)
    assert principal is not None
    ticket, _ = await runtime.tokens.issue_ticket(principal)
    assert await runtime.tokens.redeem_ticket(ticket) is not None
    assert [t["token_id"] for t in await runtime.tokens.list()] == [record["token_id"]]
    assert await runtime.tokens.revoke(record["token_id"]) is True
    index = task_index(runtime)
    assert await index.is_empty() is False
    far = datetime.now(UTC) + timedelta(days=400)
    assert await index.prune(now=far) == len(sids) * len(tids)
    assert await index.is_empty() is True
    assert await backfill(runtime) > 0
    deleted = await client.delete(f"/studio/services/{sids[-1]}")
    assert deleted.status_code in (200, 204), deleted.text
    audit = (await client.get("/studio/audit?limit=100")).json()
    actions = {e["action"] for e in audit["items"]}
    assert {"service.create", "service.update", "service.delete"} <= actions

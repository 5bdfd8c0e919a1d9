"""Auth on: every route x role gives the expected code; every mutating call is audited."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from relayna_studio import TokenStore, role_allows

pytestmark = pytest.mark.anyio

SERVICE = {
    "service_id": "svc",
    "name": "Svc",
    "base_url": "https://svc.example.test",
    "environment": "prod",
    "auth_mode": "internal_network",
}

# (method, path, needed role, JSON body, audit action)
ROUTES: list[tuple[str, str, str, Any, str | None]] = [
    ("GET", "/studio/services", "reader", None, None),
    ("GET", "/studio/gateway/services", "reader", None, None),
    ("GET", "/studio/services/svc", "reader", None, None),
    ("GET", "/studio/services/svc/health", "reader", None, None),
    ("POST", "/studio/services", "admin", {**SERVICE, "service_id": "new"}, "service.create"),
    ("PATCH", "/studio/services/svc", "admin", {"tags": ["t"]}, "service.update"),
    ("POST", "/studio/services/svc/refresh", "operator", None, "service.refresh"),
    ("POST", "/studio/services/svc/health/refresh", "operator", None, "service.health_refresh"),
    ("GET", "/studio/auth/tokens", "admin", None, None),
    ("POST", "/studio/auth/tokens", "admin", {"name": "n", "role": "reader"}, "token.create"),
    ("DELETE", "/studio/auth/tokens/0123456789abcdef", "admin", None, "token.revoke"),
    ("GET", "/studio/audit", "admin", None, None),
    ("POST", "/studio/auth/stream-ticket", "reader", None, None),
    ("GET", "/studio/services/search", "reader", None, None),
    ("GET", "/studio/tasks/search?service_id=svc", "reader", None, None),
    ("GET", "/studio/services/svc/events", "reader", None, None),
    ("GET", "/studio/tasks/svc/t1/events", "reader", None, None),
    ("POST", "/studio/ingest/events", "ingest", {"events": []}, "events.ingest"),
    ("GET", "/studio/services/svc/status/t1", "reader", None, None),
    ("GET", "/studio/services/svc/history?task_id=t1", "reader", None, None),
    ("GET", "/studio/services/svc/workflow/topology", "reader", None, None),
    ("GET", "/studio/services/svc/dlq/messages", "reader", None, None),
    ("GET", "/studio/services/svc/broker/dlq/messages", "reader", None, None),
    ("GET", "/studio/services/svc/runtime/backpressure", "reader", None, None),
    ("GET", "/studio/services/svc/executions/t1/graph", "reader", None, None),
    ("GET", "/studio/tasks/svc/t1", "reader", None, None),
    ("GET", "/studio/failed-tasks", "reader", None, None),
    ("GET", "/studio/failed-tasks/svc/f1", "reader", None, None),
    ("POST", "/studio/failed-tasks/svc/f1/retry", "operator", {}, "failed_task.retry"),
    (
        "POST",
        "/studio/failed-tasks/svc/f1/mark-investigated",
        "operator",
        {},
        "failed_task.investigate",
    ),
    (
        "POST",
        "/studio/failed-tasks/svc/f1/mark-uninvestigated",
        "operator",
        None,
        "failed_task.uninvestigate",
    ),
    ("DELETE", "/studio/failed-tasks/svc/f1", "operator", None, "failed_task.delete"),
    ("DELETE", "/studio/services/svc", "admin", None, "service.delete"),
]
KINDS = ["reader", "operator", "admin", "ingest"]


async def test_route_by_role_matrix_and_audit(studio_factory: Any) -> None:
    with anyio.fail_after(60):
        async with studio_factory(auth_enabled=True, push_ingest_enabled=True) as studio:
            tokens: TokenStore = studio.runtime.tokens
            made = {}
            for kind in KINDS:
                text, _ = await tokens.create(
                    name=f"{kind}-user",
                    role=kind,
                    service_id="svc" if kind == "ingest" else None,
                )
                made[kind] = text
            admin = studio.headers(made["admin"])
            assert (
                await studio.client.post("/studio/services", json=SERVICE, headers=admin)
            ).status_code == 201
            for method, path, needed, body, _action in ROUTES:
                anonymous = await studio.client.request(method, path, json=body)
                assert anonymous.status_code == 401, (method, path)
                assert anonymous.headers["www-authenticate"] == "Bearer"
                bad = await studio.client.request(
                    method,
                    path,
                    json=body,
                    headers=studio.headers("rst_0123456789abcdef_" + "x" * 43),
                )
                assert bad.status_code == 401, (method, path)
                for kind in KINDS:
                    if path == "/studio/services/svc" and method == "DELETE" and kind == "admin":
                        continue  # done last, below
                    response = await studio.client.request(
                        method, path, json=body, headers=studio.headers(made[kind])
                    )
                    if role_allows(kind, needed):
                        assert response.status_code not in (401, 403), (method, path, kind)
                    else:
                        assert response.status_code == 403, (method, path, kind, response.text)
            final = await studio.client.delete("/studio/services/svc", headers=admin)
            assert final.status_code == 204

            # every mutating call above is in the audit log, with outcome and actor
            entries: list[dict[str, Any]] = []
            cursor = None
            while True:
                query = "/studio/audit?limit=500" + (f"&before={cursor}" if cursor else "")
                page = (await studio.client.get(query, headers=admin)).json()
                entries += page["items"]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            by_action: dict[str, list[dict[str, Any]]] = {}
            for entry in entries:
                by_action.setdefault(entry["action"], []).append(entry)
            for method, _path, needed, _body, action in ROUTES:
                if action is None:
                    continue
                seen = by_action[action]
                assert {e["method"] for e in seen} == {method}
                outcomes = {(e["actor"], e["outcome"]) for e in seen}
                assert (None, "denied") in outcomes  # the anonymous and bad-token attempts
                for kind in KINDS:
                    if not role_allows(kind, needed):
                        assert (f"{kind}-user", "denied") in outcomes, (action, kind)
            delete = [e for e in by_action["service.delete"] if e["outcome"] == "success"]
            assert delete
            assert delete[0]["target"] == "svc"
            assert delete[0]["actor"] == "admin-user"
            ids = [e["id"] for e in entries]
            assert ids == sorted(ids, reverse=True)
            assert len(set(ids)) == len(ids)
            filtered = (
                await studio.client.get(
                    "/studio/audit?action=service.delete&outcome=success", headers=admin
                )
            ).json()
            assert [e["target"] for e in filtered["items"]] == ["svc"]


async def test_tokens_are_hashed_revocable_and_tickets_single_use(studio_factory: Any) -> None:
    with anyio.fail_after(30):
        async with studio_factory(auth_enabled=True) as studio:
            text, record = await studio.runtime.tokens.create(name="ops", role="admin")
            settings = studio.runtime.settings
            prefix = settings.global_prefix(settings.auth_prefix)  # {p} in the cluster layout
            raw = await studio.runtime.store.get(f"{prefix}:token:{record['token_id']}")
            assert raw is not None
            assert text.encode() not in raw
            assert text[21:].encode() not in raw
            headers = studio.headers(text)
            listed = (await studio.client.get("/studio/auth/tokens", headers=headers)).json()
            assert listed["count"] == 1
            assert "secret_sha256" not in listed["tokens"][0]
            created = await studio.client.post(
                "/studio/auth/tokens", json={"name": "bot", "role": "reader"}, headers=headers
            )
            assert created.status_code == 201
            reader = created.json()["token"]
            who = (
                await studio.client.get("/studio/auth/whoami", headers=studio.headers(reader))
            ).json()
            assert who["role"] == "reader"
            assert who["actor"] == "bot"
            ticket = (
                await studio.client.post(
                    "/studio/auth/stream-ticket", headers=studio.headers(reader)
                )
            ).json()["ticket"]
            assert (await studio.runtime.tokens.redeem_ticket(ticket)) is not None
            assert (await studio.runtime.tokens.redeem_ticket(ticket)) is None  # single use
            revoked = await studio.client.delete(
                f"/studio/auth/tokens/{created.json()['token_id']}", headers=headers
            )
            assert revoked.status_code == 204
            assert (
                await studio.client.get("/studio/services", headers=studio.headers(reader))
            ).status_code == 401
            for bad in ["Basic abc", "Bearer", "Bearer  ", "bearer rst_x", "Token " + text]:
                response = await studio.client.get(
                    "/studio/services", headers={"authorization": bad}
                )
                assert response.status_code == 401, bad
            bad_role = await studio.client.post(
                "/studio/auth/tokens", json={"name": "x", "role": "root"}, headers=headers
            )
            assert bad_role.status_code == 422
            ingest_without_service = await studio.client.post(
                "/studio/auth/tokens", json={"name": "x", "role": "ingest"}, headers=headers
            )
            assert ingest_without_service.status_code == 422


async def test_auth_off_acts_as_anonymous_admin_and_still_audits(studio_factory: Any) -> None:
    with anyio.fail_after(30):
        async with studio_factory(auth_enabled=False) as studio:
            created = await studio.client.post("/studio/services", json=SERVICE)
            assert created.status_code == 201
            audit = (await studio.client.get("/studio/audit")).json()
            assert audit["items"][0]["actor"] == "anonymous"
            assert audit["items"][0]["action"] == "service.create"

"""The registry, gateway, health and metrics routes over HTTP (ASGI), memory and Redis stores."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from studio_support import Studio

pytestmark = pytest.mark.anyio

SERVICE = {
    "service_id": "payments-api",
    "name": "Payments API",
    "base_url": "https://payments.example.test",
    "environment": "prod",
    "tags": ["core"],
    "auth_mode": "internal_network",
}


async def create(studio: Studio, body: dict[str, Any] | None = None, **patch: Any) -> Any:
    return await studio.client.post("/studio/services", json={**(body or SERVICE), **patch})


async def test_crud_round_trip(studio_factory: Any) -> None:
    with anyio.fail_after(20):
        async with studio_factory() as studio:
            created = await create(studio)
            assert created.status_code == 201, created.text
            body = created.json()
            assert body["status"] == "registered"
            assert body["health"]["overall_status"] in {"degraded", "unknown"}
            assert body["health"]["http_status"]["state"] == "unknown"
            assert (await create(studio)).status_code == 409
            dup_url = await create(studio, service_id="other")
            assert dup_url.status_code == 409
            assert dup_url.json()["field"] == "base_url"
            await create(studio, service_id="b", name="alpha", base_url="https://b.example.test")
            await create(
                studio, service_id="c", environment="dev", base_url="https://c.example.test"
            )
            listing = (await studio.client.get("/studio/services")).json()
            assert listing["count"] == 3
            assert [s["service_id"] for s in listing["services"]] == ["c", "b", "payments-api"]
            patched = await studio.client.patch(
                "/studio/services/payments-api", json={"tags": ["x", "x", " y "]}
            )
            assert patched.status_code == 200
            assert patched.json()["tags"] == ["x", "y"]
            healthy = await studio.client.patch(
                "/studio/services/payments-api", json={"status": "healthy"}
            )
            assert healthy.status_code == 422
            disabled = await studio.client.patch(
                "/studio/services/payments-api", json={"status": "disabled"}
            )
            assert disabled.json()["health"]["overall_status"] == "disabled"
            gateway = (await studio.client.get("/studio/gateway/services")).json()
            assert gateway["count"] == 3
            assert {s["studio_service_id"] for s in gateway["services"]} == {
                "payments-api",
                "b",
                "c",
            }
            assert all("log_config" not in s for s in gateway["services"])
            assert (await studio.client.delete("/studio/services/payments-api")).status_code == 204
            missing = await studio.client.get("/studio/services/payments-api")
            assert missing.status_code == 404
            assert missing.json()["code"] == "service_not_found"
            assert (await studio.client.delete("/studio/services/payments-api")).status_code == 404
            metrics = await studio.client.get("/metrics")
            assert metrics.status_code == 200
            assert b"relayna_studio_http_requests_total" in metrics.content


BAD_BODIES: list[tuple[str, Any, dict[str, str], int]] = [
    ("not json", b"{", {"content-type": "application/json"}, 400),
    ("duplicate keys", b'{"a":1,"a":2}', {"content-type": "application/json"}, 400),
    ("wrong media type", b"{}", {"content-type": "text/plain"}, 415),
    ("list body", b"[]", {"content-type": "application/json"}, 422),
    ("null body", b"null", {"content-type": "application/json"}, 422),
    ("oversized", b'{"x":"' + b"a" * 300_000 + b'"}', {"content-type": "application/json"}, 413),
    ("deep", b"[" * 200 + b"]" * 200, {"content-type": "application/json"}, 400),
    ("NaN", b'{"service_id":NaN}', {"content-type": "application/json"}, 400),
]


@pytest.mark.parametrize(
    ("label", "body", "headers", "status"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
async def test_bad_bodies_are_4xx_with_a_message(
    studio_factory: Any, label: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    with anyio.fail_after(20):
        async with studio_factory() as studio:
            for method, path in [
                ("POST", "/studio/services"),
                ("PATCH", "/studio/services/x"),
                ("POST", "/studio/auth/tokens"),
            ]:
                response = await studio.client.request(method, path, content=body, headers=headers)
                assert response.status_code == status, (method, path, response.text)
                assert response.json()["detail"]


@pytest.mark.parametrize(
    "service_id", ["a%20b", "a%0Db", "a..b", ".hidden", "x" * 300, "%C3%A9", "a*b"]
)
async def test_malformed_ids_in_paths_are_422(studio_factory: Any, service_id: str) -> None:
    with anyio.fail_after(20):
        async with studio_factory() as studio:
            for method, suffix in [
                ("GET", ""),
                ("PATCH", ""),
                ("DELETE", ""),
                ("POST", "/refresh"),
                ("GET", "/health"),
                ("POST", "/health/refresh"),
            ]:
                response = await studio.client.request(
                    method, f"/studio/services/{service_id}{suffix}", json={"name": "x"}
                )
                assert response.status_code == 422, (method, suffix, response.text)


async def test_unknown_and_wrong_typed_fields_are_422(studio_factory: Any) -> None:
    with anyio.fail_after(20):
        async with studio_factory() as studio:
            response = await create(studio, surprise=True, tags="core")
            assert response.status_code == 422
            locs = {tuple(d["loc"]) for d in response.json()["detail"]}
            assert ("body", "surprise") in locs
            assert ("body", "tags") in locs
            assert (await studio.client.get("/studio/services")).json()["count"] == 0


async def test_audit_query_parameters_are_checked(studio_factory: Any) -> None:
    with anyio.fail_after(20):
        async with studio_factory() as studio:
            for query in ["limit=0", "limit=501", "limit=x", "before=-1", "before=abc", "bogus=1"]:
                response = await studio.client.get(f"/studio/audit?{query}")
                assert response.status_code == 422, query


async def test_openapi_documents_every_route(studio_factory: Any) -> None:
    from relayna.api import undocumented_routes
    from relayna_studio import studio_routes

    assert undocumented_routes(studio_routes()) == []
    with anyio.fail_after(20):
        async with studio_factory(auth_enabled=True) as studio:
            response = await studio.client.get("/openapi.json")  # public, like /metrics
            assert response.status_code == 200
            doc = response.json()
            assert doc["openapi"].startswith("3.1")
            paths = doc["paths"]
            assert "/studio/services/{service_id}" in paths
            assert set(paths["/studio/services/{service_id}"]) == {"get", "patch", "delete"}
            assert paths["/studio/services"]["post"]["responses"]["201"]
            assert "/studio/tasks/{service_id}/{rest}" in paths
            assert "Error" in doc["components"]["schemas"]
            from openapi_spec_validator import validate

            validate(doc)  # the OpenAPI 3.1 meta-schema

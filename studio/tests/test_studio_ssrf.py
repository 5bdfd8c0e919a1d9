"""The SSRF suite: loopback canaries, every notation, rebinding, redirects, size and time bounds.

Every forbidden target is a canary listener on 127.0.0.1 or ::1 that counts
accepted connections; the one allowed upstream runs on 127.0.0.2 (allowed
through ``127.0.0.2/32``). Names resolve through a table resolver, so no
test ever asks a DNS server. Each case must end in a typed 422 (at
registration) or 502/504 (at request time) with **0 canary hits**.
"""

from __future__ import annotations

import gzip
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from relayna.api import serving
from relayna_studio import parse_create
from studio_support import Canary, TableResolver, open_test_studio, settings_for

pytestmark = pytest.mark.anyio

GOOD_HOST = "127.0.0.2"


def upstream_app(canary_port: int, big: int) -> Starlette:
    async def caps(request: Request) -> Response:
        return JSONResponse({"supported_routes": ["status.latest"], "feature_flags": []})

    async def redirect(request: Request) -> Response:
        return Response(status_code=302, headers={"location": f"http://127.0.0.1:{canary_port}/"})

    async def huge(request: Request) -> Response:
        return Response(b'{"x":"' + b"a" * big + b'"}', media_type="application/json")

    async def bomb(request: Request) -> Response:
        """A few hundred bytes on the wire, ``big`` bytes once decoded."""
        body = gzip.compress(b'{"x":"' + b"a" * big + b'"}')
        return Response(body, media_type="application/json", headers={"content-encoding": "gzip"})

    async def gzipped(request: Request) -> Response:
        body = gzip.compress(b'{"supported_routes": ["status.latest"], "feature_flags": []}')
        return Response(body, media_type="application/json", headers={"content-encoding": "gzip"})

    async def drip(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b" "
                await anyio.sleep(0.1)

        return StreamingResponse(body(), media_type="application/json")

    return Starlette(
        routes=[
            Route("/relayna/capabilities", caps),
            Route("/redirect/relayna/capabilities", redirect),
            Route("/huge/relayna/capabilities", huge),
            Route("/drip/relayna/capabilities", drip),
            Route("/bomb/relayna/capabilities", bomb),
            Route("/gzipped/relayna/capabilities", gzipped),
        ]
    )


@asynccontextmanager
async def upstream(canary_port: int, big: int = 200_000) -> AsyncIterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((GOOD_HOST, 0))
    sock.listen(64)
    port = int(sock.getsockname()[1])
    async with serving(upstream_app(canary_port, big), sock=sock, graceful_timeout=0.5):
        yield port


def hits(canaries: dict[str, Canary]) -> int:
    return sum(c.drain() for c in canaries.values())


async def test_registration_refuses_every_forbidden_target(
    store_url: str, canaries: dict[str, Canary], unique: str
) -> None:
    v4, v6 = canaries["v4"].port, canaries["v6"].port
    resolver = TableResolver(
        {
            "canary.test": ["127.0.0.1"],
            "canary6.test": ["::1"],
            "mapped.test": ["::ffff:127.0.0.1"],
            "nat64.test": ["64:ff9b::7f00:1"],
            "mixed.test": [GOOD_HOST, "127.0.0.1"],
            "zero.test": ["0.0.0.0"],
            "meta.test": ["169.254.169.254"],
        }
    )
    settings = settings_for(
        store_url,
        f"ssrf:{unique}",
        allowed_hosts=(".test",),
        allowed_networks=(f"{GOOD_HOST}/32",),
    )
    targets = [
        f"http://127.0.0.1:{v4}",
        f"http://[::1]:{v6}",
        f"http://2130706433:{v4}",
        f"http://0x7f000001:{v4}",
        f"http://0177.0.0.1:{v4}",
        f"http://0177.0.0.01:{v4}",
        f"http://127.1:{v4}",
        f"http://017700000001:{v4}",
        f"http://[::ffff:127.0.0.1]:{v4}",
        f"http://[::ffff:7f00:1]:{v4}",
        f"http://0.0.0.0:{v4}",
        f"http://[::]:{v6}",
        f"http://localhost:{v4}",
        f"http://canary.test:{v4}",
        f"http://canary6.test:{v6}",
        f"http://mapped.test:{v4}",
        f"http://nat64.test:{v4}",
        f"http://mixed.test:{v4}",
        f"http://zero.test:{v4}",
        f"http://meta.test:{v4}",
        f"http://127.0.0.1.nip.test.evil:{v4}",
    ]
    with anyio.fail_after(30):
        async with open_test_studio(settings, resolver=resolver) as studio:
            for i, target in enumerate(targets):
                for field, body in [
                    ("base_url", {"base_url": target}),
                    *[
                        (
                            key,
                            {
                                "base_url": f"http://ok{i}.test",
                                key: {"base_url": target, **extra},
                            },
                        )
                        for key, extra in [
                            ("metrics_config", {"service_selector_labels": {"service": "x"}}),
                            ("log_config", {"service_selector_labels": {"service": "x"}}),
                            ("trace_config", {}),
                        ]
                    ],
                ]:
                    response = await studio.client.post(
                        "/studio/services",
                        json={
                            "service_id": f"s{i}",
                            "name": "x",
                            "environment": "prod",
                            "auth_mode": "internal_network",
                            **body,
                        },
                    )
                    assert response.status_code == 422, (target, field, response.text)
                    assert response.json()["detail"]
            assert (await studio.client.get("/studio/services")).json()["count"] == 0
    assert hits(canaries) == 0


async def test_every_outbound_path_refuses_and_pins(
    store_url: str, canaries: dict[str, Canary], unique: str
) -> None:
    v4 = canaries["v4"].port
    async with upstream(v4) as good_port:
        # a canary on 127.0.0.1 at the good port: a second resolution would land there
        same_port = Canary.__new__(Canary)
        same_port.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        same_port.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        same_port.sock.bind(("127.0.0.1", good_port))
        same_port.sock.listen(64)
        same_port.sock.setblocking(False)
        same_port.host, same_port.port, same_port.hits = "127.0.0.1", good_port, 0
        canaries["same-port"] = same_port
        answers = iter([[GOOD_HOST]] + [["127.0.0.1"]] * 1000)
        flip = iter([[GOOD_HOST], ["127.0.0.1"]] * 1000)
        resolver = TableResolver(
            {
                "good.test": [GOOD_HOST],
                "rebind.test": lambda: next(answers),
                "flip.test": lambda: next(flip),
                "canary.test": ["127.0.0.1"],
            }
        )
        settings = settings_for(
            store_url,
            f"ssrf:{unique}",
            allowed_hosts=(".test",),
            allowed_networks=(f"{GOOD_HOST}/32",),
            egress_max_response_bytes=64 * 1024,
            federation_timeout_seconds=1.0,
        )
        with anyio.fail_after(60):
            async with open_test_studio(settings, resolver=resolver) as studio:
                client = studio.client

                async def register(service_id: str, base_url: str) -> Any:
                    return await client.post(
                        "/studio/services",
                        json={
                            "service_id": service_id,
                            "name": service_id,
                            "base_url": base_url,
                            "environment": "prod",
                            "auth_mode": "internal_network",
                        },
                    )

                # the allowed upstream works (proves the suite can see a success)
                assert (await register("good", f"http://good.test:{good_port}")).status_code == 201
                refreshed = await client.post("/studio/services/good/refresh")
                assert refreshed.status_code == 200, refreshed.text
                assert refreshed.json()["capabilities"]["supported_routes"] == ["status.latest"]

                # rebinding: allowed at registration, loopback afterwards
                assert (
                    await register("rebind", f"http://rebind.test:{good_port}")
                ).status_code == 201
                for path in ("refresh", "health/refresh"):
                    response = await client.post(f"/studio/services/rebind/{path}")
                    if path == "refresh":
                        assert response.status_code == 502
                        assert response.json()["code"] == "upstream_policy_violation"
                    else:
                        doc = response.json()
                        assert doc["http_status"]["state"] == "unreachable"
                        assert "not a public address" in doc["http_status"]["error_detail"]

                # pinned: each connection resolves once; flip.test alternates answers
                assert (await register("flip", f"http://flip.test:{good_port}")).status_code == 201
                for _ in range(6):
                    response = await client.post("/studio/services/flip/refresh")
                    assert response.status_code in (200, 502), response.text
                    if response.status_code == 502:
                        assert response.json()["code"] == "upstream_policy_violation"

                # records written under an older, looser policy are refused at request time
                for i, target in enumerate(
                    [
                        f"http://127.0.0.1:{v4}",
                        f"http://canary.test:{v4}",
                        f"http://2130706433:{v4}",
                        f"http://[::ffff:127.0.0.1]:{v4}",
                    ]
                ):
                    record = parse_create(
                        {
                            "service_id": f"old{i}",
                            "name": "old",
                            "base_url": target,
                            "environment": "prod",
                            "auth_mode": "internal_network",
                        }
                    )
                    await studio.runtime.registry.create(record)
                    response = await client.post(f"/studio/services/old{i}/refresh")
                    assert response.status_code == 502
                    assert response.json()["code"] == "upstream_policy_violation"
                    health = (await client.post(f"/studio/services/old{i}/health/refresh")).json()
                    assert health["http_status"]["state"] == "unreachable"

                # a gzip-encoded answer is decoded (and counted decoded: the bomb below)
                gz = await register("gz", f"http://good.test:{good_port}/gzipped")
                assert gz.status_code == 201
                gz_refresh = await client.post("/studio/services/gz/refresh")
                assert gz_refresh.status_code == 200, gz_refresh.text
                assert gz_refresh.json()["capabilities"]["supported_routes"] == ["status.latest"]

                # redirects are answers, never followed
                for i, (suffix, code, status) in enumerate(
                    [
                        ("redirect", "capability_refresh_failed", 502),
                        ("huge", "upstream_response_too_large", 502),
                        ("drip", "upstream_timeout", 504),
                        ("bomb", "upstream_response_too_large", 502),
                    ]
                ):
                    url = f"http://good.test:{good_port}/{suffix}"
                    assert (await register(f"x{i}", url)).status_code == 201
                    response = await client.post(f"/studio/services/x{i}/refresh")
                    assert response.status_code == status, (suffix, response.text)
                    assert response.json()["code"] == code
                    assert response.json()["service_id"] == f"x{i}"
    try:
        assert hits(canaries) == 0
    finally:
        same_port.close()


async def test_telemetry_calls_refuse_and_pin(
    store_url: str, canaries: dict[str, Canary], unique: str
) -> None:
    """Loki, Prometheus and Tempo URLs obey the same policy at request time: records
    written under a looser policy, and names that rebind to loopback, reach no canary."""
    v4, v6 = canaries["v4"].port, canaries["v6"].port
    resolver = TableResolver(
        {
            "canary.test": ["127.0.0.1"],
            "mapped.test": ["::ffff:127.0.0.1"],
            "svc.test": [GOOD_HOST],
        }
    )
    settings = settings_for(
        store_url,
        f"ssrf-tel:{unique}",
        allowed_hosts=(".test",),
        allowed_networks=(f"{GOOD_HOST}/32",),
        telemetry_timeout_seconds=1.0,
    )
    targets = [
        f"http://127.0.0.1:{v4}",
        f"http://[::1]:{v6}",
        f"http://canary.test:{v4}",
        f"http://mapped.test:{v4}",
        f"http://2130706433:{v4}",
    ]
    paths = [
        "/studio/services/{sid}/logs",
        "/studio/services/{sid}/metrics?group=memory_usage",
        "/studio/services/{sid}/pods",
        "/studio/tasks/{sid}/t-1/traces?trace_id=" + "ab" * 16,
    ]
    with anyio.fail_after(60):
        async with open_test_studio(settings, resolver=resolver) as studio:
            for i, target in enumerate(targets):
                sid = f"tel{i}"
                record = parse_create(
                    {
                        "service_id": sid,
                        "name": sid,
                        "base_url": f"http://svc.test/{i}",
                        "environment": "prod",
                        "auth_mode": "internal_network",
                        "log_config": {
                            "base_url": target,
                            "service_selector_labels": {"service": "x"},
                        },
                        "metrics_config": {
                            "base_url": target,
                            "service_selector_labels": {"service": "x"},
                        },
                        "trace_config": {"base_url": target},
                    }
                )
                await studio.runtime.registry.create(record)
                for path in paths:
                    response = await studio.client.get(path.format(sid=sid))
                    assert response.status_code == 502, (target, path, response.text)
                    assert response.json()["code"] == "upstream_policy_violation", path
    assert hits(canaries) == 0

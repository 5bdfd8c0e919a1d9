"""Logs through Studio against the local Loki (``telemetry_servers``: Loki is not
installable here, so a server implementing its documented query API stands in).

Every match mode, paging across equal timestamps, source normalisation, ANSI
kept raw, the tenant header, bad input refused before any call, and every
provider failure typed and bounded; both backends.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from studio_support import Studio, TableResolver, open_test_studio, settings_for
from telemetry_servers import LocalLoki, serve_on

pytestmark = pytest.mark.anyio

HOST = "127.0.0.2"
T0 = 1_714_550_400 * 10**9  # 2024-05-01T08:00:00Z


def log_config(port: int, **overrides: Any) -> dict[str, Any]:
    config = {
        "base_url": f"http://loki.test:{port}",
        "tenant_id": "team-a",
        "service_selector_labels": {"service": "checkout"},
        "source_label": "app",
        "level_label": "level",
        "task_match_mode": "contains",
    }
    config.update(overrides)
    return config


@asynccontextmanager
async def loki_studio(**settings: Any) -> AsyncIterator[tuple[Studio, LocalLoki, int]]:
    loki = LocalLoki()
    resolver = TableResolver({"loki.test": [HOST], "svc.test": [HOST]})
    config = settings_for(
        "memory://",
        f"logs:{uuid.uuid4().hex[:8]}",
        allowed_hosts=(".test",),
        allowed_networks=(f"{HOST}/32",),
        **settings,
    )
    async with (
        serve_on(loki.app(), HOST) as port,
        open_test_studio(config, resolver=resolver) as studio,
    ):
        yield studio, loki, port


async def register(studio: Studio, service_id: str, **configs: Any) -> None:
    response = await studio.client.post(
        "/studio/services",
        json={
            "service_id": service_id,
            "name": service_id,
            "base_url": f"http://svc.test:9/{service_id}",
            "environment": "test",
            "auth_mode": "internal_network",
            **configs,
        },
    )
    assert response.status_code == 201, response.text


def seed(loki: LocalLoki) -> None:
    """Eight lines of checkout in tenant team-a (five at one nanosecond), and noise."""
    api = {"service": "checkout", "app": "api", "level": "info", "pod": "api-1"}
    worker = {"service": "checkout", "app": "worker", "level": "error", "pod": "worker-7"}
    for i in range(5):  # five lines at the same nanosecond, across two streams
        loki.push(api if i % 2 else worker, T0 + 10, f"burst {i} task t-1", tenant="team-a")
    loki.push(api, T0 + 5, '{"task_id": "t-2", "correlation_id": "c-2", "level": "warn"}',
              tenant="team-a")  # fmt: skip
    loki.push(worker, T0 + 3, "\x1b[31mfailed\x1b[0m task t-1", {"task_id": "t-1"}, tenant="team-a")
    loki.push({"service": "checkout"}, T0 + 1, "no app label for t-1", tenant="team-a")
    loki.push({"service": "other"}, T0 + 2, "not ours t-1", tenant="team-a")
    loki.push(api, T0 + 4, "another tenant t-1", tenant="team-b")


WINDOW = {"from": "2024-05-01T07:59:00Z", "to": "2024-05-01T08:01:00Z"}


@pytest.mark.parametrize("tie_order", ["labels", "hash"])
async def test_paging_does_not_depend_on_loki_s_tie_order(
    anyio_backend: str, tie_order: str
) -> None:
    """Seven lines at one nanosecond in two streams whose label order and (stand-in)
    stream-hash order disagree: two at a time, every line comes once, in Studio's order."""
    streams = [{"service": "checkout", "app": "api", "pod": pod} for pod in ("api-1", "api-3")]
    with anyio.fail_after(60):
        async with loki_studio() as (studio, loki, port):
            loki.tie_order = tie_order
            for i in range(7):
                loki.push(streams[i % 2], T0 + 10, f"burst {i}", tenant="team-a")
            loki.push(streams[0], T0 + 9, "before the burst", tenant="team-a")
            await register(studio, "checkout", log_config=log_config(port))
            seen: list[str] = []
            cursor = None
            for _ in range(10):
                params = {**WINDOW, "limit": "2", **({"before": cursor} if cursor else {})}
                answer = await studio.client.get("/studio/services/checkout/logs", params=params)
                assert answer.status_code == 200, answer.text
                seen += [i["message"] for i in answer.json()["items"]]
                cursor = answer.json()["next_cursor"]
                if cursor is None:
                    break
            # the api-1 stream first (label order), each stream newest first
            assert seen == ["burst 6", "burst 4", "burst 2", "burst 0", "burst 5", "burst 3",
                            "burst 1", "before the burst"]  # fmt: skip
            whole = [q for q in loki.queries if int(q["end"]) - int(q["start"]) == 1]
            assert whole  # pages ending inside the burst read that nanosecond whole


async def test_service_and_task_logs(anyio_backend: str) -> None:
    with anyio.fail_after(60):
        async with loki_studio() as (studio, loki, port):
            seed(loki)
            await register(studio, "checkout", log_config=log_config(port))
            client = studio.client
            answer = await client.get("/studio/services/checkout/logs", params=WINDOW)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["count"] == 8
            assert body["next_cursor"] is None
            stamps = [i["timestamp"] for i in body["items"]]
            assert stamps == sorted(stamps, reverse=True)
            assert stamps[0] == "2024-05-01T08:00:00.00000001Z"
            assert all(i["service_id"] == "checkout" for i in body["items"])
            assert [i["source"] for i in body["items"]][-1] == "unknown"  # no app label
            warn = next(i for i in body["items"] if i["message"].startswith("{"))
            assert (warn["task_id"], warn["correlation_id"], warn["level"]) == (
                "t-2",
                "c-2",
                "info",
            )
            ansi = next(i for i in body["items"] if "failed" in i["message"])
            assert ansi["message"] == "\x1b[31mfailed\x1b[0m task t-1"  # raw, for the UI to colour
            assert ansi["fields"]["labels"]["pod"] == "worker-7"
            assert loki.queries[-1]["query"] == '{service="checkout"}'
            assert loki.queries[-1]["direction"] == "backward"

            async def lines(path: str, **params: str) -> list[str]:
                response = await client.get(path, params={**WINDOW, **params})
                assert response.status_code == 200, response.text
                return [i["message"] for i in response.json()["items"]]

            svc = "/studio/services/checkout/logs"
            assert len(await lines(svc, source="worker")) == 4
            assert len(await lines(svc, level="info")) == 3
            assert await lines(svc, pod="worker-7", query="failed") == [
                "\x1b[31mfailed\x1b[0m task t-1"
            ]
            assert len(await lines(svc, task_id="t-1")) == 7
            task = await lines("/studio/tasks/checkout/t-1/logs")
            assert len(task) == 7
            assert all("t-1" in line for line in task)
            assert loki.queries[-1]["query"] == '{service="checkout"} |= "t-1"'

            # paging: two at a time through the five-line burst at one nanosecond
            seen: list[str] = []
            cursor = None
            for _ in range(10):
                params = {**WINDOW, "limit": "2", **({"before": cursor} if cursor else {})}
                page = (await client.get(svc, params=params)).json()
                seen += [i["message"] for i in page["items"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert seen == [i["message"] for i in body["items"]]
            assert len(set(seen)) == 8

            # every match mode
            modes = {
                "label": ({"task_match_mode": "label", "task_id_label": "task_id"}, 0),
                "regex": (
                    {"task_match_mode": "regex", "task_match_template": "task {task_id}$"},
                    6,
                ),
                "structured_metadata": ({"task_match_mode": "structured_metadata"}, 1),
            }
            for mode, (overrides, expected) in modes.items():
                patch = await client.patch(
                    "/studio/services/checkout", json={"log_config": log_config(port, **overrides)}
                )
                assert patch.status_code == 200, patch.text
                got = await lines("/studio/tasks/checkout/t-1/logs")
                assert len(got) == expected, (mode, got, loki.queries[-1])
            assert loki.queries[-1]["query"] == '{service="checkout"} | task_id="t-1"'


async def test_bad_input_is_refused_before_any_call(anyio_backend: str) -> None:
    with anyio.fail_after(60):
        async with loki_studio() as (studio, loki, port):
            await register(studio, "checkout", log_config=log_config(port, source_label=None))
            await register(studio, "bare")
            client = studio.client
            cases = {
                "/studio/services/ghost/logs": 404,
                "/studio/services/bare/logs": 501,
                "/studio/tasks/bare/t-1/logs": 501,
                "/studio/services/checkout/logs?from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z": 422,
                "/studio/services/checkout/logs?from=2024-01-01T00:00:00Z&to=2024-05-01T00:00:00Z": 422,
                "/studio/services/checkout/logs?from=yesterday": 422,
                "/studio/services/checkout/logs?limit=0": 422,
                "/studio/services/checkout/logs?limit=201": 422,
                "/studio/services/checkout/logs?limit=ten": 422,
                "/studio/services/checkout/logs?before=garbage": 422,
                "/studio/services/checkout/logs?before=loki:1:99999": 422,
                "/studio/services/checkout/logs?source=api": 422,  # no source_label
                "/studio/services/checkout/logs?bogus=1": 422,
                "/studio/services/checkout/logs?query=a%0Ab": 422,
                "/studio/services/checkout/logs?query=" + "x" * 513: 422,
                "/studio/services/checkout/logs?task_id=a%20b": 422,
                "/studio/services/checkout/logs?level=a&level=b": 422,
                "/studio/tasks/checkout/t-1/logs?task_id=x": 422,
            }
            for path, status in cases.items():
                response = await client.get(path)
                assert response.status_code == status, (path, response.text)
                assert response.json()["detail"], path
            missing = (await client.get("/studio/services/bare/logs")).json()
            assert missing["code"] == "log_config_missing"
            assert "log_config" in missing["detail"]
            assert loki.queries == []


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        ((500, b"internal error"), 502, "provider_error"),
        ((400, b"parse error : \x1b[1m bad \x00 query"), 502, "provider_error"),
        ((200, b"<html>not json</html>"), 502, "invalid_json"),
        ((200, b'{"data": {"result": 7}}'), 502, "invalid_response_shape"),
        ((200, b'{"x": "' + b"a" * 300_000 + b'"}'), 502, "upstream_response_too_large"),
        (None, 504, "upstream_timeout"),
    ],
)
async def test_provider_failures_are_typed_and_bounded(
    anyio_backend: str, answer: tuple[int, bytes] | None, status: int, code: str
) -> None:
    with anyio.fail_after(30):
        async with loki_studio(
            telemetry_timeout_seconds=0.5, egress_max_response_bytes=100_000
        ) as (studio, loki, port):
            await register(studio, "checkout", log_config=log_config(port))
            if answer is None:
                loki.delay = 30.0
            else:
                loki.fail_with = answer
            started = anyio.current_time()
            response = await studio.client.get("/studio/services/checkout/logs")
            assert anyio.current_time() - started < 5
            assert response.status_code == status, response.text
            error = response.json()
            assert error["code"] == code
            assert error["service_id"] == "checkout"
            assert all(ch.isprintable() for ch in error["detail"])
            if answer is not None and answer[0] >= 400:
                assert error["upstream_status"] == answer[0]
                assert error["retryable"] is (answer[0] >= 500)
            metrics = (await studio.client.get("/metrics")).text
            outcome = "ok" if code == "invalid_response_shape" else code  # the call itself worked
            assert f'provider_requests_total{{outcome="{outcome}",provider="loki"}} 1.0' in metrics

"""Hypothesis over every Studio route: any path segment, query or body gives a typed answer, never a 500."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio_support import TableResolver, open_test_studio, settings_for

ROUTES = [
    ("GET", "/studio/services/{a}"),
    ("PATCH", "/studio/services/{a}"),
    ("DELETE", "/studio/services/{a}"),
    ("POST", "/studio/services/{a}/refresh"),
    ("GET", "/studio/services/{a}/health"),
    ("GET", "/studio/services/{a}/events"),
    ("GET", "/studio/services/{a}/status/{b}"),
    ("GET", "/studio/services/{a}/history"),
    ("GET", "/studio/services/{a}/dlq/messages"),
    ("GET", "/studio/services/{a}/executions/{b}/graph"),
    ("GET", "/studio/tasks/{a}/{b}"),
    ("GET", "/studio/tasks/{a}/{b}/events"),
    ("GET", "/studio/failed-tasks"),
    ("GET", "/studio/failed-tasks/{a}/{b}"),
    ("POST", "/studio/failed-tasks/{a}/{b}/retry"),
    ("GET", "/studio/tasks/search"),
    ("GET", "/studio/services/search"),
    ("GET", "/studio/audit"),
    ("POST", "/studio/services"),
    ("POST", "/studio/ingest/events"),
    ("POST", "/studio/auth/tokens"),
    ("DELETE", "/studio/auth/tokens/{a}"),
]

segment = st.one_of(
    st.text(min_size=1, max_size=40),
    st.sampled_from(["svc", "a..b", ".x", "x" * 300, "t1", "-", "0", "%", "é"]),
)
query = st.dictionaries(
    st.sampled_from(
        [
            "limit",
            "cursor",
            "before",
            "from",
            "to",
            "task_id",
            "status",
            "service_id",
            "join",
            "query",
            "x",
        ]
    ),
    st.one_of(
        st.text(max_size=30),
        st.sampled_from(["0", "-1", "999999", "2026-13-01", "2026-05-01T00:00:00Z"]),
    ),
    max_size=4,
)
json_value: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    calls=st.lists(
        st.tuples(st.sampled_from(ROUTES), segment, segment, query, json_value),
        min_size=5,
        max_size=12,
    )
)
def test_no_input_makes_a_500(anyio_backend: str, calls: list[Any]) -> None:
    async def run() -> None:
        settings_ = settings_for(
            "memory://", f"fuzz:{uuid.uuid4().hex[:6]}", push_ingest_enabled=True
        )
        async with open_test_studio(settings_, resolver=TableResolver()) as studio:
            await studio.client.post(
                "/studio/services",
                json={
                    "service_id": "svc",
                    "name": "svc",
                    "base_url": "http://svc.example.test",
                    "environment": "prod",
                    "auth_mode": "internal_network",
                },
            )
            for (method, template), a, b, params, body in calls:
                path = template.format(a=quote(a, safe=""), b=quote(b, safe=""))
                kwargs: dict[str, Any] = {"params": params}
                if method in ("POST", "PATCH"):
                    kwargs["json"] = body
                response = await studio.client.request(method, path, **kwargs)
                assert response.status_code < 500 or response.json().get("code", "").startswith(
                    ("upstream_", "service_")
                ), (method, path, params, body, response.status_code, response.text)
                if response.status_code >= 400:
                    assert response.json()["detail"]

    anyio.run(run, backend=anyio_backend)

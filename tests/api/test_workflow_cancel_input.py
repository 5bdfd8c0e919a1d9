"""``POST /workflow/runs/{task_id}/cancel`` with generated bad input (Hypothesis), on
the memory transports in process, both backends: ids, reasons, bodies, content
types and the operator header. Every answer is one of the route's documented
statuses with a body its own OpenAPI schema accepts, the status is the one the
route's rules give, and a refused request leaves the store as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from _workflow_support import planner_docsearch
from relayna.api import (
    ORJSONResponse,
    RelaynaRuntime,
    RuntimeConfig,
    open_relayna_runtime,
    openapi_document,
    workflow_routes,
)
from relayna.contracts import is_valid_identifier
from relayna.transport import Store
from relayna.workflow import WorkflowStore, WorkflowStoreConfig

pytestmark = pytest.mark.anyio

PATH = "/workflow/runs/{task_id}/cancel"
OPS = {"x-operator": "ops"}
LIVE, DONE, UNKNOWN = "run-live", "run-done", "run-unknown"
STATE = WorkflowStoreConfig(prefix="wfc")
TOPOLOGY = planner_docsearch("cancel-input")
ROUTES = workflow_routes(state=STATE, authorize=lambda r, i: _authorize(r, i))
DOC = openapi_document(ROUTES, title="t", version="1")
OPERATION = DOC["paths"][PATH]["post"]
DOCUMENTED = {int(code) for code in OPERATION["responses"]}


def _authorize(request: Request, route_id: str) -> Response | None:
    if request.headers.get("x-operator") != "ops":
        return ORJSONResponse({"detail": f"{route_id} needs an operator"}, status_code=403)
    return None


@asynccontextmanager
async def service() -> AsyncIterator[tuple[httpx.AsyncClient, RelaynaRuntime]]:
    """The workflow routes in process over a memory runtime with a live run and a
    completed one."""
    config = RuntimeConfig(
        store_url="memory://", broker_url="memory://", topology=TOPOLOGY, run_hub=False
    )
    async with open_relayna_runtime(config) as runtime:
        await _seed(WorkflowStore(runtime.store, STATE))
        app = Starlette(routes=ROUTES)

        async def with_runtime(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = {"relayna": runtime}  # what the lifespan gives a served app
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_runtime)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client, runtime


async def _seed(workflow: WorkflowStore) -> None:
    for task_id in (LIVE, DONE):
        entry = await workflow.enter(
            task_id=task_id, stage="planner", message_id=f"m-{task_id}", guard="g", owner="o",
            guard_ttl_ms=60_000, envelope=b"{}", lineage={"message_id": f"m-{task_id}"},
        )  # fmt: skip
        assert entry.verdict == "go"
    await workflow.complete(
        task_id=DONE, stage="planner", message_id=f"m-{DONE}", guard="g", owner="o", terminal=True
    )


def snapshot(store: Store) -> dict[str, Any]:
    """Every live key of a memory store with its value and expiry."""
    core = store.core  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    for key in sorted(core.keys()):
        value = core.live(key)
        if isinstance(value, bytes | dict | list | set):
            copy: Any = value if isinstance(value, bytes) else repr(sorted(value, key=repr))
            if isinstance(value, dict):
                copy = dict(value)
        else:  # a sorted set
            members = core.zrange(key, 0, -1)
            copy = [(m, core.zscore(key, m)) for m in members]
        out[key] = (copy, core.deadline(key))
    return out


_JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.text(max_size=20)
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
REASONS = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.text(min_size=495, max_size=505, alphabet="abc"),
    st.text(alphabet=st.characters(max_codepoint=40), max_size=8),  # control characters
    _JSON,
)
IDS = st.one_of(
    st.sampled_from([LIVE, DONE, UNKNOWN]),
    st.text(max_size=40).filter(lambda s: "/" not in s and s not in ("", ".", "..")),
    st.text(min_size=250, max_size=300, alphabet="ab"),
)
CONTENT_TYPES = st.one_of(
    st.none(),
    st.sampled_from(
        ["application/json", "application/problem+json", "text/plain",
         "application/x-www-form-urlencoded", "application/json; charset=utf-8"]
    ),
)  # fmt: skip


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, Any]:
    """("none", None), ("object", dict), ("json", any JSON value) or ("raw", bytes)."""
    kind = draw(st.sampled_from(["none", "object", "object", "extra", "json", "raw"]))
    if kind == "none":
        return kind, None
    if kind == "object":
        return kind, {"reason": draw(REASONS)} if draw(st.booleans()) else {}
    if kind == "extra":
        extra = draw(st.dictionaries(st.text(max_size=8), _JSON, min_size=1, max_size=3))
        return "object", {**extra, "reason": draw(REASONS)}
    if kind == "json":
        return kind, draw(_JSON)
    return kind, draw(st.binary(max_size=64))


def expected(
    task_id: str, operator: bool, body: tuple[str, Any], content_type: str | None
) -> int | None:
    """The status the route's rules give (None: any refusal of a body the JSON reader sees)."""
    if not is_valid_identifier(task_id):
        return 422
    if not operator:
        return 403
    kind, value = body
    raw = _encode(body)
    if raw:
        ctype = (content_type or "").split(";")[0].strip()
        if not (
            ctype == "application/json"
            or (ctype.startswith("application/") and ctype.endswith("+json"))
        ):
            return 415
    if kind == "raw":
        try:
            value = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return 422
        return None  # valid JSON bytes: the JSON reader's own rules (depth, duplicates) apply
    if value is None:
        if raw:
            return 422  # JSON null is not "no body"
        value = {}
    if not isinstance(value, dict) or set(value) - {"reason"}:
        return 422
    reason = value.get("reason")
    if reason is not None and (
        not isinstance(reason, str)
        or len(reason) > 500
        or any(ord(c) < 32 or ord(c) == 127 for c in reason)
    ):
        return 422
    return {LIVE: 202, DONE: 409}.get(task_id, 404)


def _encode(body: tuple[str, Any]) -> bytes:
    kind, value = body
    if kind == "none":
        return b""
    if kind == "raw":
        return bytes(value)
    return orjson.dumps(value)


def check_documented(response: httpx.Response) -> Any:
    assert response.status_code in DOCUMENTED, response.text
    spec = OPERATION["responses"][str(response.status_code)]
    schema = spec["content"]["application/json"]["schema"]
    payload = response.json()
    components = {"components": DOC.get("components", {})}
    jsonschema.Draft202012Validator({**schema, **components}).validate(payload)
    return payload


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(task_id=IDS, operator=st.booleans(), body=bodies(), content_type=CONTENT_TYPES)
async def test_any_cancel_request_gets_a_documented_answer_and_a_refusal_changes_nothing(
    task_id: str, operator: bool, body: tuple[str, Any], content_type: str | None
) -> None:
    headers = {**(OPS if operator else {})}
    if content_type is not None:
        headers["content-type"] = content_type
    raw = _encode(body)
    with anyio.fail_after(15):
        async with service() as (client, runtime):
            before = snapshot(runtime.store)
            response = await client.post(
                f"/workflow/runs/{quote(task_id, safe='')}/cancel", content=raw, headers=headers
            )
            after = snapshot(runtime.store)
    payload = check_documented(response)
    want = expected(task_id, operator, body, content_type)
    if want is None:
        assert response.status_code in (202, 404, 409, 422), response.text
    else:
        assert response.status_code == want, (response.text, task_id, body, content_type)
    if response.status_code != 202:
        assert after == before, response.text
        return
    assert task_id == LIVE
    reason = orjson.loads(raw).get("reason") if raw else None
    assert payload == {
        "task_id": LIVE, "state": "requested", "reason": reason or "cancelled", "status": None,
    }  # fmt: skip
    assert after != before  # the marker, its pending-set entry and the run's cancel record

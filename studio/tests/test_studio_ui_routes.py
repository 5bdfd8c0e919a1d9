"""The web UI served by the Studio app: the bundle, deep links, and the API left alone."""

from __future__ import annotations

import re
import uuid
from typing import Any

import anyio
import pytest

from relayna_studio import UI_DIST
from studio_support import open_test_studio, settings_for

pytestmark = pytest.mark.anyio


def _asset() -> str:
    html = (UI_DIST / "index.html").read_text()
    match = re.search(r'src="(/assets/[^"]+\.js)"', html)
    assert match, html
    return match.group(1)


async def test_the_ui_answers_every_page_path_and_never_an_api_path() -> None:
    settings = settings_for("memory://", f"ui-test:{uuid.uuid4().hex[:8]}")
    with anyio.fail_after(20):
        async with open_test_studio(settings) as studio:
            index = (UI_DIST / "index.html").read_text()
            for path in ("/", "/services", "/tasks/svc/t-1", "/services/a/dlq?mode=broker"):
                answer = await studio.client.get(path)
                assert answer.status_code == 200, path
                assert answer.headers["content-type"].startswith("text/html")
                assert answer.headers["cache-control"] == "no-cache"
                assert answer.text == index
            asset = await studio.client.get(_asset())
            assert asset.status_code == 200
            assert "immutable" in asset.headers["cache-control"]
            assert asset.headers["content-type"].startswith("text/javascript")
            # The API keeps its own answers: JSON, and a JSON 404 for unknown API paths.
            assert (await studio.client.get("/studio/services")).json()["count"] == 0
            for path in ("/studio", "/studio/nope", "/studio/services/x/y/z/unknown", "/metrics/x"):
                answer = await studio.client.get(path)
                assert answer.status_code == 404, path
                assert answer.headers["content-type"].startswith("application/json"), path
            assert (await studio.client.get("/assets/missing.js")).status_code == 404
            assert (await studio.client.get("/metrics")).status_code == 200
            # Only reads: a POST to a page path is not served the app.
            assert (await studio.client.post("/tasks/svc/t-1")).status_code == 405


# Routes the UI calls that this Studio does not serve yet (each panel shows
# "not offered" or the backend's error). Exact: when one is added to the
# backend, this list must shrink, so it stays true.
NOT_SERVED_YET: set[tuple[str, str]] = set()

_CALL = re.compile(
    r'(?:request<.+?>\("(?P<method>[A-Z]+)", |get<.+?>\()(?P<path>[`"]/studio[^`"]*[`"])'
)


def ui_calls() -> set[tuple[str, str]]:
    """(method, path with {} for each parameter) for every call in studio/ui/src/api.ts."""
    source = (UI_DIST.parents[2] / "ui" / "src" / "api.ts").read_text()
    calls = set()
    for match in _CALL.finditer(source):
        path = re.sub(r"\$\{[^}]*\}", "{}", match.group("path")[1:-1])
        calls.add((match.group("method") or "GET", path))
    for stream in re.findall(r"StreamUrl: \([^)]*\) => `([^`]*)`", source):
        calls.add(("GET", re.sub(r"\$\{[^}]*\}", "{}", stream)))
    return calls


def served(doc: dict[str, Any], method: str, path: str) -> bool:
    parts = path.strip("/").split("/")
    for template, operations in doc["paths"].items():
        if method.lower() not in operations:
            continue
        tparts = template.strip("/").split("/")
        if tparts[-1] == "{rest}":  # a catch-all: the rest of the path is its parameter
            head = tparts[:-1]
            if len(parts) > len(head) and all(
                t == p or (t.startswith("{") and p == "{}")
                for t, p in zip(head, parts, strict=False)
            ):
                return True
        elif len(tparts) == len(parts) and all(
            t == p or (t.startswith("{") and p == "{}") for t, p in zip(tparts, parts, strict=True)
        ):
            return True
    return False


async def test_every_call_in_api_ts_is_in_the_openapi_document() -> None:
    calls = ui_calls()
    assert len(calls) >= 35, sorted(calls)  # the parser still sees api.ts
    settings = settings_for("memory://", f"ui-test:{uuid.uuid4().hex[:8]}")
    with anyio.fail_after(20):
        async with open_test_studio(settings) as studio:
            doc = (await studio.client.get("/openapi.json")).json()
    missing = {call for call in calls if not served(doc, *call)}
    assert missing == NOT_SERVED_YET

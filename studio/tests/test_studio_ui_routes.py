"""The web UI served by the Studio app: the bundle, deep links, and the API left alone."""

from __future__ import annotations

import re
import uuid

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

"""HTTP ingress reads JSON with the contracts' codec and limits (issue 26, class 5/6).

One small app echoes what :func:`relayna.api.read_json_body` parsed, served
by hypercorn on the test's backend: big integers stay exact, duplicate keys
and NaN are refused, the media type is case-insensitive, and a client that
disconnects mid-body produces one debug line, not a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relayna.api import BodyError, error_response, read_json_body
from relayna.contracts import dumps

pytestmark = pytest.mark.anyio


async def echo(request: Request) -> Response:
    try:
        value = await read_json_body(request, max_bytes=4096)
    except BodyError as exc:
        return error_response(exc.status, exc.detail)
    return Response(dumps({"value": value}), media_type="application/json")


APP = Starlette(routes=[Route("/echo", echo, methods=["POST"])])


@pytest.mark.parametrize(
    ("content_type", "body", "status", "echoed"),
    [
        ("application/json", b'{"n": 12345678901234567890123456789}', 200,
         b'{"value":{"n":12345678901234567890123456789}}'),
        ("Application/JSON; charset=UTF-8", b'{"a": 1}', 200, b'{"value":{"a":1}}'),
        ("application/vnd.relayna+json", b"[1]", 200, b'{"value":[1]}'),
        ("application/json", b'{"a": 1, "a": 2}', 422, None),
        ("application/json", b'{"a": NaN}', 422, None),
        ("application/json", b"[" * 65 + b"]" * 65, 422, None),
        ("application/json", b'{"a": "\xff"}', 422, None),
        ("application/json", b'{"a": ', 422, None),
        ("application/json", b'{"a": "' + b"x" * 5000 + b'"}', 413, None),
        ("text/plain", b"{}", 415, None),
        ("application/json", b"", 422, None),
    ],
)  # fmt: skip
async def test_bodies_follow_the_contract_rules(
    serve: Callable[[Any], Any], content_type: str, body: bytes, status: int, echoed: bytes | None
) -> None:
    with anyio.fail_after(10):
        async with serve(APP) as base, httpx.AsyncClient(base_url=base) as client:
            resp = await client.post("/echo", content=body, headers={"content-type": content_type})
    assert resp.status_code == status, resp.text
    if echoed is not None:
        assert resp.content == echoed
    else:
        assert "detail" in resp.json()


async def test_a_client_that_leaves_mid_body_is_one_debug_line(
    serve: Callable[[Any], Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with anyio.fail_after(10):
        async with serve(APP) as base:
            host, port = base.removeprefix("http://").split(":")
            stream = await anyio.connect_tcp(host, int(port))
            await stream.send(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"partial"'
            )
            await stream.aclose()
            while not any("disconnected while sending" in r.message for r in caplog.records):  # noqa: ASYNC110
                await anyio.sleep(0.01)  # polling the log for the server's line
    lines = [r for r in caplog.records if r.levelno >= logging.DEBUG and r.name != "asyncio"]
    gone = [r for r in lines if "disconnected while sending" in r.getMessage()]
    assert len(gone) == 1
    assert gone[0].levelno == logging.DEBUG
    assert not [r for r in lines if r.levelno >= logging.WARNING or r.exc_info], [
        r.getMessage() for r in lines if r.levelno >= logging.WARNING
    ]

"""``GET /studio/tasks/{service_id}/{task_id}/stream``: the service's own SSE, relayed.

The browser talks only to Studio. Studio opens ``GET {base}/events/{task_id}``
on the service through the egress client (policy, pinned connect), forwards
``Last-Event-ID`` (header, or ``?last_event_id=``) so the service does the
replay-then-live and resume work it already does, and copies the bytes as
they arrive (no re-encoding: frames are the service's). Backpressure is
natural: the next upstream read happens after the client took the last
chunk, so a stream costs one chunk of memory. It ends when the service
ends it (terminal status), the client disconnects, or Studio shuts down.
A ``204`` from the service (resumed after the end) is passed on.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import httpx
from starlette.types import Receive, Scope, Send

from relayna_studio._errors import UpstreamError
from relayna_studio._federation import Federation, advertised, task_path
from relayna_studio._sse import SSE_HEADERS

__all__ = ["RelayStream"]

log = logging.getLogger("relayna_studio.relay")

#: Longest silence accepted from the service (it sends a keep-alive every 15 s).
READ_IDLE_SECONDS = 60.0


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    import orjson

    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": orjson.dumps(body)})


class RelayStream:
    def __init__(
        self, fed: Federation, service_id: str, task_id: str, last_event_id: str | None
    ) -> None:
        self.fed = fed
        self.service_id = service_id
        self.task_id = task_id
        self.last_event_id = last_event_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.fed.runtime
        try:
            record = await self.fed.service(self.service_id)
            if advertised(record.get("capabilities"), "status.events") is False:
                raise UpstreamError(
                    "the service does not advertise status.events",
                    status=501,
                    code="unsupported_route",
                    service_id=self.service_id,
                )
            headers = {"accept": "text/event-stream"}
            if self.last_event_id:
                headers["last-event-id"] = self.last_event_id
            url = str(record["base_url"]) + task_path("/events/{task_id}", self.task_id)
            async with runtime.egress.stream(
                "GET",
                url,
                headers=headers,
                service_id=self.service_id,
                http_timeout=httpx.Timeout(
                    runtime.settings.federation_timeout_seconds, read=READ_IDLE_SECONDS
                ),
            ) as response:
                status = response.status_code
                if status == 204:
                    await send({"type": "http.response.start", "status": 204, "headers": []})
                    await send({"type": "http.response.body", "body": b""})
                    return
                if status != 200 or "text/event-stream" not in response.headers.get(
                    "content-type", ""
                ):
                    code = (
                        "unsupported_route"
                        if status in (404, 405, 501)
                        else "upstream_response_error"
                    )
                    raise UpstreamError(
                        f"the service answered {status} for its event stream",
                        status=501 if code == "unsupported_route" else 502,
                        code=code,
                        service_id=self.service_id,
                        upstream_status=status,
                        retryable=status >= 500,
                    )
                await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
                await self._copy(response, receive, send)
        except UpstreamError as exc:
            await _send_json(send, exc.status, exc.to_json())

    async def _copy(self, response: httpx.Response, receive: Receive, send: Send) -> None:
        shutdown = self.fed.runtime.shutdown_event
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()

            async def until_shutdown() -> None:
                await shutdown.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            tg.start_soon(until_shutdown)
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except (httpx.HTTPError, OSError) as exc:
                log.info("relay of %s/%s ended: %s", self.service_id, self.task_id, exc)
            tg.cancel_scope.cancel()
        with anyio.move_on_after(5.0):
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass

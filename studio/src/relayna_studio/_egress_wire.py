"""One outbound request on the egress connection pool, without httpx's client layer.

Federation is Studio's hot path: a federated read is one request to a
service and back. Going through ``httpx.AsyncClient.send`` costs about 0.3 ms
of CPU per request on top of the connection pool (request and response
objects, event hooks, auth and redirect machinery, cookie handling: none of
which Studio uses), measured with ``python -m benchmarks studio``. So
:func:`send` keeps httpx for what matters to the egress policy — its URL
parser, whose host is what the pinned backend checks and connects to (the
same parse the SSRF suite pins down) — and hands the request straight to the
httpcore pool that httpx would have used, with the pinned network backend.
Redirects are never followed (httpcore has no redirect logic) and no proxy is
consulted.

The body is read under ``max_bytes``, counted after decoding: ``gzip`` and
``deflate`` (which Studio accepts, as httpx did) are undone chunk by chunk
with a bounded output, so a compression bomb stops at the same limit.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import httpcore
import httpx

__all__ = ["TooLarge", "send"]

_ACCEPT_ENCODING = b"gzip, deflate"


class TooLarge(Exception):
    """The response body is larger than the limit."""


class _Decoder:
    def __init__(self, encoding: str) -> None:
        self.identity = encoding in ("", "identity")
        self.gzip = encoding == "gzip"
        self._z = None if self.identity else zlib.decompressobj(zlib.MAX_WBITS | 16 * self.gzip)

    def feed(self, chunk: bytes, room: int) -> bytes:
        if self._z is None:
            return chunk
        try:
            out = self._z.decompress(chunk, room + 1)
        except zlib.error as exc:
            raise httpcore.RemoteProtocolError(f"undecodable response body: {exc}") from None
        if self._z.unconsumed_tail:
            raise TooLarge  # more output is waiting than the limit leaves room for
        return out


async def send(
    pool: httpcore.AsyncConnectionPool,
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None,
    content: bytes | None,
    headers: Mapping[str, str],
    io_timeout: float,
    max_bytes: int,
) -> tuple[int, httpx.Headers, bytes]:
    """``(status, headers, body)``; ``io_timeout`` bounds each connect, read and
    write; the caller bounds the whole call with its deadline.

    Raises:
        TooLarge: the (decoded) body exceeds ``max_bytes``.
        httpx.InvalidURL, httpcore exceptions, EgressDenied: from the URL, the pool
            or the pinned backend.
    """
    parsed = httpx.URL(url, params=params) if params else httpx.URL(url)
    wire_headers = [
        (b"Host", parsed.netloc),
        (b"Accept", b"*/*"),
        (b"Accept-Encoding", _ACCEPT_ENCODING),
        (b"User-Agent", b"relayna-studio"),
    ]
    wire_headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if content is not None:
        wire_headers.append((b"Content-Length", str(len(content)).encode()))
    request = httpcore.Request(
        method.encode("ascii"),
        httpcore.URL(
            scheme=parsed.raw_scheme,
            host=parsed.raw_host,
            port=parsed.port,
            target=parsed.raw_path,
        ),
        headers=wire_headers,
        content=content,
        extensions={
            "timeout": {
                "connect": io_timeout,
                "read": io_timeout,
                "write": io_timeout,
                "pool": io_timeout,
            }
        },
    )
    response = await pool.handle_async_request(request)
    try:
        received = httpx.Headers(response.headers)
        declared = received.get("content-length", "")
        encoding = received.get("content-encoding", "").strip().lower()
        if encoding not in ("", "identity", "gzip", "deflate"):
            raise httpcore.RemoteProtocolError(f"unsupported content-encoding {encoding!r}")
        if declared.isdigit() and int(declared) > max_bytes and encoding in ("", "identity"):
            raise TooLarge
        decoder = _Decoder(encoding)
        body = bytearray()
        async for chunk in response.aiter_stream():
            body += decoder.feed(chunk, max_bytes - len(body))
            if len(body) > max_bytes:
                raise TooLarge
        return response.status, received, bytes(body)
    finally:
        await response.aclose()

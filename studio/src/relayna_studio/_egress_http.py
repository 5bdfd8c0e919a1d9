"""Outbound HTTP that obeys the egress policy at connect time (pinned resolution).

httpx keeps its connection pool (httpcore); Studio only replaces the
*network backend* under it. :class:`PinnedBackend.connect_tcp` receives the
hostname of the request, checks it against the policy, resolves it **once**
with Studio's resolver, checks every address, and connects to one of those
addresses. TLS still uses the hostname for SNI and certificate checks
(httpcore passes the origin's host to ``start_tls``), and the ``Host``
header is unchanged. There is no second resolution between the check and the
connect, so a DNS answer that changes (rebinding) cannot move the connection.

Also bounded here: redirects are never followed (``follow_redirects=False``),
proxies from the environment are ignored (``trust_env=False``: a proxy would
resolve the name itself), every request runs under one overall deadline
(slow-drip responses included), and a response body larger than
``max_response_bytes`` is cut off and reported. :meth:`EgressClient.request`
sends on the same pool without httpx's client layer (``_egress_wire``: the
federation hot path); :meth:`EgressClient.stream` (SSE relays) uses httpx.

Why a replaced private attribute: ``httpx.AsyncHTTPTransport`` builds its
``httpcore.AsyncConnectionPool`` without a ``network_backend`` argument, so
:func:`open_egress_client` builds the pool itself and hands it to the
transport (``_pool``), which is the one attribute the transport uses to send.
A test proves the pinned backend is in use (canary listeners see no hit).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio
import attrs
import httpcore
import httpx

from relayna.contracts import loads
from relayna.errors import ContractError
from relayna_studio._egress import EgressPolicy, IPAddress
from relayna_studio._egress_wire import TooLarge, send
from relayna_studio._errors import EgressDenied, UpstreamError

__all__ = [
    "EgressClient",
    "EgressResponse",
    "PinnedBackend",
    "Resolver",
    "SystemResolver",
    "open_egress_client",
]


class Resolver(Protocol):
    """Hostname → addresses. Studio's tests pass one that answers from a table."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]: ...


class SystemResolver:
    """The operating system's resolver (``getaddrinfo``), A and AAAA records."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        out: list[IPAddress] = []
        for _family, _kind, _proto, _name, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
            if address not in out:
                out.append(address)
        return out


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that connects only to addresses the policy accepted."""

    def __init__(
        self,
        policy: EgressPolicy,
        resolver: Resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Check ``host``, resolve it once, check every address.

        Raises:
            EgressDenied: the host or one of its addresses is not allowed, or
                the name does not resolve.
        """
        literal = self.policy.check_host(host)
        if literal is not None:
            return [literal]
        try:
            addresses = await self.resolver.resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise EgressDenied(
                f"host {host!r} does not resolve: {exc}", reason="resolution_failed", host=host
            ) from None
        if not addresses:
            raise EgressDenied(
                f"host {host!r} has no addresses", reason="resolution_failed", host=host
            )
        self.policy.check_addresses(host, addresses)
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.addresses(host, port)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's backend interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressDenied("unix sockets are not an egress target", reason="scheme")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@attrs.frozen
class EgressResponse:
    """A fully read, size-bounded response."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    elapsed: float

    def json(self) -> Any:
        """The body through relayna's strict JSON codec.

        Raises:
            ContractError: not JSON (reason ``invalid_json`` / ``decode_error``).
        """
        return loads(self.content, allow_non_finite=False)

    @property
    def is_redirect(self) -> bool:
        return 300 <= self.status_code < 400


class EgressClient:
    """Every outbound request of Studio goes through here (see the module docs).

    Errors are :class:`UpstreamError` with the federation codes:
    ``upstream_policy_violation`` (502), ``upstream_timeout`` (504,
    retryable), ``upstream_transport_error`` (502, retryable),
    ``upstream_response_too_large`` (502).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        backend: PinnedBackend,
        *,
        pool: httpcore.AsyncConnectionPool,
        deadline: float,
        max_response_bytes: int,
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        self.http = http
        self.backend = backend
        self.pool = pool
        self.deadline = deadline
        self.max_response_bytes = max_response_bytes
        self.on_request = on_request

    @property
    def policy(self) -> EgressPolicy:
        return self.backend.policy

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        service_id: str | None = None,
        deadline: float | None = None,
    ) -> EgressResponse:
        """One bounded request; ``content`` sends exact bytes (a signed body),
        ``json`` a value through relayna's codec."""
        deadline = self.deadline if deadline is None else deadline
        started = time.perf_counter()
        if json is not None:
            content = _dumps(json)
        send_headers = dict(headers or {})
        if content is not None:
            send_headers.setdefault("content-type", "application/json")
        try:
            with anyio.fail_after(deadline):
                status, received, body = await send(
                    self.pool,
                    method,
                    url,
                    params=params,
                    content=content,
                    headers=send_headers,
                    io_timeout=deadline,
                    max_bytes=self.max_response_bytes,
                )
        except TooLarge:
            raise _too_large(self.max_response_bytes, service_id) from None
        except (EgressDenied, TimeoutError, httpx.HTTPError, httpx.InvalidURL, *_WIRE) as exc:
            raise upstream_error(exc, service_id, deadline) from exc
        return EgressResponse(
            status_code=status,
            headers=received,
            content=body,
            elapsed=time.perf_counter() - started,
        )

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        service_id: str | None = None,
        deadline: float | None = None,
        http_timeout: httpx.Timeout | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A streaming response (for SSE relays): the deadline covers the
        connect and the response head only; ``timeout`` sets httpx's
        ``http_timeout`` sets httpx's per-read timeout (the caller bounds the rest)."""
        deadline = self.deadline if deadline is None else deadline
        try:
            with anyio.fail_after(deadline):
                request = self.http.build_request(
                    method,
                    url,
                    headers=dict(headers or {}),
                    timeout=http_timeout if http_timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
                response = await self.http.send(request, stream=True)
        except (EgressDenied, TimeoutError, httpx.HTTPError) as exc:
            raise upstream_error(exc, service_id, deadline) from exc
        try:
            yield response
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                await response.aclose()


#: What the connection pool raises (httpx maps these to its own types; :func:`send`
#: calls the pool directly).
_WIRE = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
)


def upstream_error(exc: Exception, service_id: str | None, deadline: float) -> UpstreamError:
    """The FederatedError for a failure of the egress path itself."""
    if isinstance(exc, EgressDenied):
        return UpstreamError(
            f"egress policy: {exc}",
            status=502,
            code="upstream_policy_violation",
            service_id=service_id,
        )
    if isinstance(exc, TimeoutError | httpx.TimeoutException | httpcore.TimeoutException):
        return UpstreamError(
            f"no complete answer within {deadline:g}s",
            status=504,
            code="upstream_timeout",
            service_id=service_id,
            retryable=True,
        )
    return UpstreamError(
        f"transport error: {type(exc).__name__}: {exc}",
        status=502,
        code="upstream_transport_error",
        service_id=service_id,
        retryable=True,
    )


def _too_large(limit: int, service_id: str | None) -> UpstreamError:
    return UpstreamError(
        f"response larger than {limit} bytes",
        status=502,
        code="upstream_response_too_large",
        service_id=service_id,
    )


def _dumps(value: Any) -> bytes:
    from relayna.contracts import dumps

    try:
        return dumps(value)
    except ContractError as exc:
        raise UpstreamError(
            f"request body is not JSON-serialisable: {exc}", status=422, code="invalid_body"
        ) from None


@asynccontextmanager
async def open_egress_client(
    policy: EgressPolicy,
    *,
    deadline: float,
    max_response_bytes: int,
    resolver: Resolver | None = None,
    max_connections: int = 1000,
) -> AsyncIterator[EgressClient]:
    """Open the one shared httpx client (anyio-native: asyncio and trio).

    ``deadline`` bounds each request as a whole (connect, send, the complete
    response body), in seconds.

    Resource handling: the connection pool is closed on exit (shielded,
    bounded), whatever open connections it holds.
    """
    backend = PinnedBackend(policy, resolver or SystemResolver())
    ssl_context = httpx.create_ssl_context(trust_env=False)
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    pool = transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=max_connections,
        max_keepalive_connections=min(max_connections, 100),
        keepalive_expiry=30.0,
        network_backend=backend,
    )
    client = httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(deadline),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": "relayna-studio"},
    )
    try:
        yield EgressClient(
            client, backend, pool=pool, deadline=deadline, max_response_bytes=max_response_bytes
        )
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5.0):
            await client.aclose()

"""Establishing a connection, before its service tasks run: the TCP or TLS
connect, then the AMQP handshake driven over the bare stream (the
:class:`~._core.ConnectionCore` decides, this loop only moves bytes), with
every failure mapped to a relayna error.
"""

from __future__ import annotations

import ssl
from typing import Any

import anyio
import anyio.abc

from relayna.errors import (
    AuthenticationError,
    BrokerConnectionError,
    ConfigurationError,
    ProtocolError,
)
from relayna.transport.amqp import _events as ev
from relayna.transport.amqp._core import NEED_DATA, ConnectionCore
from relayna.transport.amqp._frames import FrameError
from relayna.transport.amqp._url import AMQPParams

__all__ = ["IO_ERRORS", "READ_SIZE", "connect", "handshake"]

READ_SIZE = 1 << 17
IO_ERRORS = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)


async def connect(params: AMQPParams) -> anyio.abc.ByteStream:
    """Open the TCP (or TLS) stream, bounded by ``connect_timeout``.

    Raises:
        ConfigurationError: the ``cafile`` cannot be loaded.
        BrokerConnectionError: refused, DNS/TLS failure, timeout.
    """
    ssl_context: ssl.SSLContext | None = None
    if params.tls:
        try:
            ssl_context = ssl.create_default_context(cafile=params.cafile)
        except OSError as exc:  # missing/unreadable cafile, or no certificate in it
            raise ConfigurationError(
                f"cannot load cafile={params.cafile!r}: {exc} in {params.url}"
            ) from None
        if not params.verify:
            ssl_context.check_hostname = False
            ssl_context.verify_mode = ssl.CERT_NONE
    try:
        with anyio.fail_after(params.connect_timeout):
            if ssl_context is not None:
                return await anyio.connect_tcp(
                    params.host, params.port, ssl_context=ssl_context, tls_standard_compatible=False
                )
            return await anyio.connect_tcp(params.host, params.port)
    except TimeoutError:
        raise BrokerConnectionError(
            f"timed out connecting to {params.host}:{params.port}", url=params.url
        ) from None
    except OSError as exc:
        raise BrokerConnectionError(
            f"cannot connect to {params.host}:{params.port}: {exc}", url=params.url
        ) from None


async def handshake(stream: anyio.abc.ByteStream, core: ConnectionCore, url: str) -> dict[str, Any]:
    """Run the handshake on ``stream``; return the server properties.

    Raises:
        AuthenticationError: the server refused the credentials (403).
        BrokerConnectionError: the server closed the connection or the stream.
        ProtocolError: the peer does not speak AMQP 0-9-1.
    """
    await stream.send(core.initiate(anyio.current_time()))
    while True:
        try:
            data = await stream.receive(READ_SIZE)
        except IO_ERRORS as exc:
            hint = " (credentials rejected?)" if core.state.name == "AWAIT_TUNE" else ""
            raise BrokerConnectionError(
                f"connection closed during the handshake{hint}: {exc!r}", url=url
            ) from None
        core.receive_data(data, anyio.current_time())
        try:
            while (event := core.next_event()) is not NEED_DATA:
                if isinstance(event, ev.HandshakeComplete):
                    out = core.data_to_send()
                    if out:
                        await stream.send(out)
                    return event.server_properties
                if isinstance(event, ev.ConnectionClosedByPeer):
                    out = core.data_to_send()
                    if out:
                        await stream.send(out)
                    cls = AuthenticationError if event.reply_code == 403 else BrokerConnectionError
                    raise cls(
                        f"server refused the connection: {event.reply_code} {event.reply_text}",
                        url=url,
                    )
        except FrameError as exc:
            raise ProtocolError(f"protocol error during the handshake: {exc}", url=url) from None
        out = core.data_to_send()
        if out:
            await stream.send(out)

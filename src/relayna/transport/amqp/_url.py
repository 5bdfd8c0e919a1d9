"""``amqp://`` / ``amqps://`` URL parsing.

``amqp://user:pass@host:port/vhost?heartbeat=30&frame_max=131072&connection_name=x``
(also ``channel_max``, ``connection_timeout``, ``publish_timeout``, ``verify``, ``cafile``,
``host_order``). The host part may list the nodes of a cluster,
``h1:5672,h2:5673,[::1]:5674`` (see :mod:`._hosts`); ``host``/``port`` are then
the first node and ``hosts`` all of them.
An empty path or ``/`` selects the default vhost ``/``; other vhosts are
percent-decoded (``%2F`` is ``/``). Unknown query parameters are rejected.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import attrs

from relayna._urls import redact_url, split_url
from relayna.errors import ConfigurationError
from relayna.transport.amqp._hosts import HOST_ORDERS, Address, HostOrder, split_hosts

__all__ = ["AMQPParams", "parse_amqp_url"]


@attrs.frozen
class AMQPParams:
    """Connection parameters parsed from a URL. ``url`` is password-redacted."""

    host: str
    port: int
    username: str
    password: str = attrs.field(repr=False)
    vhost: str
    tls: bool
    url: str
    heartbeat: int = 60
    frame_max: int = 131072
    channel_max: int = 2047
    connection_name: str | None = None
    connect_timeout: float = 10.0
    publish_timeout: float = 60.0
    verify: bool = True
    cafile: str | None = None
    hosts: tuple[Address, ...] = ()
    host_order: HostOrder = "ordered"

    @property
    def addresses(self) -> tuple[Address, ...]:
        """Every node to try (``(host, port)`` alone for a one-host URL)."""
        return self.hosts or ((self.host, self.port),)

    def for_host(self, address: Address) -> AMQPParams:
        """These parameters aimed at one node of the list."""
        return attrs.evolve(self, host=address[0], port=address[1])


def _int(name: str, value: str, url: str, lo: int, hi: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(
            f"query parameter {name}={value!r} is not an integer in {url}"
        ) from None
    if not lo <= number <= hi:
        raise ConfigurationError(f"query parameter {name}={number} outside [{lo}, {hi}] in {url}")
    return number


def parse_amqp_url(url: str) -> AMQPParams:
    """Parse an AMQP URL.

    Raises:
        ConfigurationError: wrong scheme, bad host or port (naming the host and
            its position in a list), unknown or invalid query parameters.
    """
    redacted = redact_url(url)
    try:
        whole = urlsplit(url) if isinstance(url, str) else None
    except ValueError as exc:
        raise ConfigurationError(f"cannot parse URL {redacted}: {exc}") from None
    hosts: tuple[Address, ...] = ()
    if whole is not None and whole.scheme in ("amqp", "amqps"):
        userinfo, at, hostlist = whole.netloc.rpartition("@")
        hosts = split_hosts(hostlist, 5671 if whole.scheme == "amqps" else 5672, redacted)
        host, port = hosts[0]
        first = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        url = urlunsplit(whole._replace(netloc=userinfo + at + first))
    parts = split_url(url, schemes=("amqp", "amqps"))
    tls = parts.scheme == "amqps"
    path = parts.path
    if path in ("", "/"):
        vhost = "/"
    else:
        raw = path[1:]
        if "/" in raw:
            raise ConfigurationError(
                f"vhost {raw!r} contains '/'; percent-encode it as %2F in {redacted}"
            )
        vhost = unquote(raw)
    kwargs: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "heartbeat":
            kwargs["heartbeat"] = _int(key, value, redacted, 0, 65535)
        elif key == "frame_max":
            kwargs["frame_max"] = _int(key, value, redacted, 4096, 2**31 - 1)
        elif key == "channel_max":
            kwargs["channel_max"] = _int(key, value, redacted, 1, 65535)
        elif key == "connection_name":
            kwargs["connection_name"] = value
        elif key in ("connection_timeout", "connect_timeout"):
            try:
                kwargs["connect_timeout"] = float(value)
            except ValueError:
                raise ConfigurationError(f"bad {key}={value!r} in {redacted}") from None
        elif key == "publish_timeout":
            try:
                seconds = float(value)
            except ValueError:
                raise ConfigurationError(f"bad {key}={value!r} in {redacted}") from None
            if not 0 < seconds < float("inf"):
                raise ConfigurationError(f"{key} must be a positive number in {redacted}")
            kwargs["publish_timeout"] = seconds
        elif key == "verify":
            kwargs["verify"] = value.lower() not in ("0", "false", "no", "off")
        elif key == "cafile":
            kwargs["cafile"] = value
        elif key == "host_order":
            if value not in HOST_ORDERS:
                raise ConfigurationError(
                    f"host_order={value!r} in {redacted}; expected one of {', '.join(HOST_ORDERS)}"
                )
            kwargs["host_order"] = value
        else:
            raise ConfigurationError(f"unknown query parameter {key!r} in {redacted}")
    return AMQPParams(
        host=parts.hostname or "localhost",
        port=parts.port or (5671 if tls else 5672),
        username=unquote(parts.username) if parts.username is not None else "guest",
        password=unquote(parts.password) if parts.password is not None else "guest",
        vhost=vhost,
        tls=tls,
        url=redacted,
        hosts=hosts if len(hosts) > 1 else (),
        **kwargs,
    )

"""Redis URLs for the native client: ``redis://``, ``rediss://`` (TLS), ``unix://``.

``redis://[[user]:password@]host[:port][/db][?option=value...]`` and
``unix://[[user]:password@]/path/to/redis.sock[?db=N&...]``.

Options: ``connect_timeout`` (seconds, default 5), ``stream_timeout``
(seconds a command may wait for its reply; default 30), ``pubsub_keepalive``
(seconds between liveness PINGs on the pubsub connection, default 15),
``db`` (unix URLs), and for ``rediss://`` ``ssl_cert_reqs=none`` (do not
verify the certificate) and ``ssl_ca_certs=/path/ca.pem``. Any other option
is a :class:`~relayna.errors.ConfigurationError` naming the accepted ones.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote

import attrs

from relayna._urls import redact_url, split_url
from relayna.errors import ConfigurationError
from relayna.transport._store_options import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_PUBSUB_KEEPALIVE,
    DEFAULT_STREAM_TIMEOUT,
    positive_seconds,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_PUBSUB_KEEPALIVE",
    "DEFAULT_STREAM_TIMEOUT",
    "RespParams",
    "parse_resp_url",
]

_SCHEMES = ("redis", "rediss", "unix")
_OPTIONS = (
    "connect_timeout",
    "stream_timeout",
    "pubsub_keepalive",
    "db",
    "ssl_cert_reqs",
    "ssl_ca_certs",
)


@attrs.frozen
class RespParams:
    url: str  # password-redacted
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # unix socket
    username: str | None = None
    password: str | None = None
    db: int = 0
    tls: bool = False
    verify: bool = True
    cafile: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    stream_timeout: float | None = DEFAULT_STREAM_TIMEOUT
    pubsub_keepalive: float = DEFAULT_PUBSUB_KEEPALIVE


def _int(name: str, text: str, safe: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum} in {safe}")
    return value


def parse_resp_url(url: str) -> RespParams:
    """Parse and check ``url``.

    Raises:
        ConfigurationError: unparseable URL, unknown scheme or option, bad value.
    """
    parts = split_url(url, schemes=_SCHEMES)
    safe = redact_url(url)
    query: dict[str, str] = {}
    try:
        pairs = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise ConfigurationError(f"cannot parse the query of {safe}: {exc}") from None
    for name, values in pairs.items():
        if name not in _OPTIONS:
            raise ConfigurationError(
                f"unknown Redis URL option {name!r} in {safe}; accepted: {', '.join(_OPTIONS)}"
            )
        query[name] = values[-1]
    kwargs: dict[str, Any] = {
        "url": safe,
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
    }
    if parts.scheme == "unix":
        if not parts.path:
            raise ConfigurationError(f"a unix:// URL needs a socket path: {safe}")
        kwargs["path"] = unquote(parts.path)
        db_text = query.get("db", "0")
    else:
        if not parts.hostname:
            raise ConfigurationError(f"no host in {safe}")
        if parts.port == 0:
            raise ConfigurationError(f"port 0 in {safe}")
        kwargs["host"] = parts.hostname
        kwargs["port"] = parts.port or 6379
        db_text = parts.path.lstrip("/") or query.get("db", "0")
        if parts.path.lstrip("/") and "db" in query and query["db"] != db_text:
            raise ConfigurationError(f"two different databases (path and ?db=) in {safe}")
        kwargs["tls"] = parts.scheme == "rediss"
    kwargs["db"] = _int("db", db_text, safe, 0)
    if "connect_timeout" in query:
        kwargs["connect_timeout"] = positive_seconds(
            "connect_timeout", query["connect_timeout"], safe
        )
    if "stream_timeout" in query:
        kwargs["stream_timeout"] = positive_seconds("stream_timeout", query["stream_timeout"], safe)
    if "pubsub_keepalive" in query:
        kwargs["pubsub_keepalive"] = positive_seconds(
            "pubsub_keepalive", query["pubsub_keepalive"], safe
        )
    if parts.scheme != "rediss" and ("ssl_cert_reqs" in query or "ssl_ca_certs" in query):
        raise ConfigurationError(f"ssl_* options need a rediss:// URL: {safe}")
    reqs = query.get("ssl_cert_reqs", "required").lower()
    if reqs not in ("none", "required"):
        raise ConfigurationError(f"ssl_cert_reqs must be 'none' or 'required' in {safe}")
    kwargs["verify"] = reqs == "required"
    kwargs["cafile"] = query.get("ssl_ca_certs") or None
    return RespParams(**kwargs)

"""Liveness options of the Redis store URLs, shared by every Redis adapter.

``stream_timeout``: seconds a command may wait for its reply (default 30).
No relayna command blocks on the server, so a longer wait means a dead link
(a half-open connection: nothing closed, nothing arrives); the command fails
with :class:`~relayna.errors.StoreConnectionLost` and the connection is
replaced. ``pubsub_keepalive``: seconds between PINGs on the pubsub
connection (default 15); a PING unanswered for that long gives the
connection up, and the multiplexer reconnects and tells subscribers
(:class:`~relayna.transport.PubSubReconnected`). ``connect_timeout``: seconds
to connect (default 5).

The native client parses these in :mod:`relayna.transport.resp._url`. The
client libraries parse the rest of a URL themselves but spell these their own
way (or not at all), so :func:`take_store_options` takes them out and the
adapter hands them over as arguments.
"""

from __future__ import annotations

import math
from urllib.parse import parse_qsl, urlencode

import attrs

from relayna._urls import redact_url
from relayna.errors import ConfigurationError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_PUBSUB_KEEPALIVE",
    "DEFAULT_STREAM_TIMEOUT",
    "StoreOptions",
    "positive_seconds",
    "take_store_options",
]

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_STREAM_TIMEOUT = 30.0
DEFAULT_PUBSUB_KEEPALIVE = 15.0

_NAMES = ("connect_timeout", "stream_timeout", "pubsub_keepalive")


@attrs.frozen
class StoreOptions:
    """A library adapter's URL without relayna's liveness options, and their values."""

    url: str
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    stream_timeout: float = DEFAULT_STREAM_TIMEOUT
    pubsub_keepalive: float = DEFAULT_PUBSUB_KEEPALIVE


def positive_seconds(name: str, text: str, url: str) -> float:
    """``text`` as a positive, finite number of seconds.

    Raises:
        ConfigurationError: anything else, naming the option and the redacted URL.
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(
            f"{name} must be a positive number of seconds in {redact_url(url)}"
        )
    return value


def take_store_options(url: str) -> StoreOptions:
    """Split ``connect_timeout``, ``stream_timeout`` and ``pubsub_keepalive`` off ``url``.

    Raises:
        ConfigurationError: a value that is not a positive number of seconds.
    """
    base, _, query = url.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    values: dict[str, float] = {}
    kept = []
    for name, value in pairs:
        if name in _NAMES:
            values[name] = positive_seconds(name, value, url)
        else:
            kept.append((name, value))
    if len(kept) < len(pairs):
        url = f"{base}?{urlencode(kept)}" if kept else base
    return StoreOptions(url, **values)

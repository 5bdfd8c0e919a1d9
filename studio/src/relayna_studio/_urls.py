"""Base URLs of registered services (and of their Loki/Prometheus/Tempo), parsed once.

The rules of the original (ANCHOR §3.1), plus the parser differentials
RELIABILITY D.1 lists: whitespace is trimmed; the scheme is http or https; a
host is required; user info, query strings and fragments are rejected;
backslashes, control characters, spaces and non-ASCII are rejected outright
(``http://a.test\\@evil/`` parses differently in different libraries); the
port must be 1..65535; scheme and host are lower-cased, an IPv6 host is
bracketed, the port is kept, and trailing ``/`` is stripped from the path.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import attrs

from relayna.errors import ContractError

__all__ = ["BaseUrl", "normalize_base_url", "parse_base_url"]

_FORBIDDEN_CHARS = set("\\ \t\r\n\x00\x0b\x0c")
_MAX_URL = 2048


@attrs.frozen
class BaseUrl:
    scheme: str
    host: str  # lower-case; IPv6 without brackets
    port: int | None
    path: str  # "" or "/a/b" (no trailing slash)

    @property
    def is_ip_literal(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 443 if self.scheme == "https" else 80

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.path}"


def _fail(field: str, message: str) -> ContractError:
    return ContractError(f"invalid {field}", errors=[(field, message)])


def parse_base_url(value: object, field: str = "base_url") -> BaseUrl:
    """Parse and normalise a base URL.

    Raises:
        ContractError: with ``field`` as the error path and a readable reason.
    """
    if not isinstance(value, str):
        raise _fail(field, "must be a string")
    text = value.strip()
    if not text:
        raise _fail(field, "must not be empty")
    if len(text) > _MAX_URL:
        raise _fail(field, f"longer than {_MAX_URL} characters")
    if not text.isascii() or any(ch in _FORBIDDEN_CHARS or ord(ch) < 32 for ch in text):
        raise _fail(field, "must be ASCII without spaces, backslashes or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise _fail(field, f"cannot be parsed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise _fail(field, "scheme must be http or https")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise _fail(field, "must not contain user info")
    if parts.query or text.endswith("?"):
        raise _fail(field, "must not contain a query string")
    if parts.fragment or "#" in text:
        raise _fail(field, "must not contain a fragment")
    host = (parts.hostname or "").lower()
    if not host:
        raise _fail(field, "must include a hostname")
    if port == 0:
        raise _fail(field, "port must be 1..65535")
    if "[" in parts.netloc:
        try:
            host = str(ipaddress.IPv6Address(host.split("%")[0]))
        except ValueError:
            raise _fail(field, "bracketed host is not an IPv6 address") from None
        if "%" in (parts.hostname or ""):
            raise _fail(field, "IPv6 zone identifiers are not allowed")
    path = parts.path.rstrip("/")
    return BaseUrl(scheme=scheme, host=host, port=port, path=path)


def normalize_base_url(value: object, field: str = "base_url") -> str:
    return str(parse_base_url(value, field))

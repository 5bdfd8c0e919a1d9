"""URL helpers shared by every adapter: parsing with clear errors, and redaction."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

from relayna.errors import ConfigurationError

__all__ = ["redact_url", "split_url"]


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Never raises: a URL that cannot be parsed is redacted textually.
    """
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port is not None else ""
        netloc = f"{user}:***@{host}{port}"
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return _USERINFO.sub(r"\1***@", url)


_USERINFO = re.compile(r"(//[^/@:]*:)[^@]*@")


def split_url(url: str, *, schemes: tuple[str, ...]) -> SplitResult:
    """Parse ``url`` and check its scheme, raising :class:`ConfigurationError`.

    The error message names the redacted URL and the accepted schemes.
    """
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"expected a URL string, got {url!r}")
    try:
        parts = urlsplit(url)
        _ = parts.port  # validates the port
    except ValueError as exc:
        raise ConfigurationError(f"cannot parse URL {redact_url(url)}: {exc}") from None
    if parts.scheme not in schemes:
        raise ConfigurationError(
            f"unsupported URL scheme {parts.scheme!r} in {redact_url(url)}; "
            f"expected one of: {', '.join(s + '://' for s in schemes)}"
        )
    return parts

"""URL helpers shared by every adapter: parsing with clear errors, and redaction."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit, urlunsplit

from relayna.errors import ConfigurationError

__all__ = ["join_urls", "redact_url", "split_url"]


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``.

    Never raises: a URL that cannot be parsed is redacted textually.
    """
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        hosts = parts.netloc.rpartition("@")[2]  # as written: one host or a list
        return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))
    except ValueError:
        return _USERINFO.sub(r"\1***@", url)


_USERINFO = re.compile(r"(//[^/@:]*:)[^@]*@")


def split_url(url: str, *, schemes: tuple[str, ...], host_list: bool = False) -> SplitResult:
    """Parse ``url`` and check its scheme, raising :class:`ConfigurationError`.

    The error message names the redacted URL and the accepted schemes. With
    ``host_list`` the host part may list several ``host:port`` (the caller's
    adapter parses and checks each), so the port is not checked here.
    """
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"expected a URL string, got {url!r}")
    try:
        parts = urlsplit(url)
        if not (host_list and "," in parts.netloc.rpartition("@")[2]):
            _ = parts.port  # validates the port
    except ValueError as exc:
        raise ConfigurationError(f"cannot parse URL {redact_url(url)}: {exc}") from None
    if parts.scheme not in schemes:
        raise ConfigurationError(
            f"unsupported URL scheme {parts.scheme!r} in {redact_url(url)}; "
            f"expected one of: {', '.join(s + '://' for s in schemes)}"
        )
    return parts


def join_urls(urls: str | Sequence[str]) -> str:
    """One multi-host URL (``scheme://user:pw@h1:p1,h2:p2/path?query``) from a
    list of single-node URLs of one cluster; a string is returned unchanged.

    Raises:
        ConfigurationError: an empty list, or URLs that differ in anything but
            the host (scheme, credentials, path and query must be equal).
    """
    if isinstance(urls, str):
        return urls
    if not urls:
        raise ConfigurationError("an empty list of URLs")
    hosts: list[str] = []
    first: SplitResult | None = None
    for index, url in enumerate(urls):
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise ConfigurationError(f"cannot parse URL #{index + 1}: {exc}") from None
        userinfo, _, hostlist = parts.netloc.rpartition("@")
        if first is None:
            first = parts
        elif (parts.scheme, parts.path, parts.query, userinfo) != (
            first.scheme,
            first.path,
            first.query,
            first.netloc.rpartition("@")[0],
        ):
            raise ConfigurationError(
                f"URL #{index + 1} ({redact_url(url)}) differs from the first in more than "
                "its host: the URLs of one cluster share scheme, credentials, path and query"
            )
        hosts.append(hostlist)
    assert first is not None
    userinfo, at, _ = first.netloc.rpartition("@")
    return urlunsplit(first._replace(netloc=userinfo + at + ",".join(hosts)))

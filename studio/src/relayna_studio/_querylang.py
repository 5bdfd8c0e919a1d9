"""Literals shared by LogQL and PromQL, and nanosecond times (pure).

Both languages read double-quoted strings with Go's escape rules
(``strconv.Unquote``): :func:`quote` writes every value that way, so a label
value, a task id or a free-text filter can contain quotes, backslashes,
newlines or any Unicode character and still be exactly one string literal.
The original escaped only ``\\`` and ``"``; a newline then ended the query
with a syntax error, and a raw control character reached Loki as is.

:func:`re2_escape` makes a value match itself literally inside an RE2
pattern (the regex dialect of both Loki and Prometheus).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from relayna.errors import ContractError

__all__ = [
    "format_ns",
    "parse_time_ns",
    "quote",
    "re2_escape",
]

_SIMPLE = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_RE2_SPECIAL = frozenset(ch for ch in map(chr, range(0x21, 0x7F)) if not ch.isalnum() and ch != "_")
_ISO = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)"
    r"(?:\.(?P<frac>\d{1,9}))?(?P<tz>Z|z|[+-]\d{2}:?\d{2})?"
)


def quote(value: str) -> str:
    """``value`` as one Go double-quoted string literal.

    Printable characters (any script) stay as they are; quote, backslash
    and every control or non-character code point become escapes.

    Raises:
        ContractError: ``value`` holds a lone surrogate (not a Unicode
            character; it cannot be sent as UTF-8).
    """
    out = ['"']
    for ch in value:
        simple = _SIMPLE.get(ch)
        if simple is not None:
            out.append(simple)
            continue
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            raise ContractError(
                "text holds a lone surrogate", errors=[("query", "not valid Unicode text")]
            )
        if code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0x80 <= code < 0xA0 or code in (0x2028, 0x2029, 0xFEFF):
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def re2_escape(value: str) -> str:
    """``value`` as an RE2 pattern that matches exactly ``value``.

    ASCII punctuation gets a backslash (RE2 reads ``\\`` + punctuation as
    the character itself); letters, digits, spaces and non-ASCII characters
    are literal in RE2 already.
    """
    return "".join("\\" + ch if ch in _RE2_SPECIAL else ch for ch in value)


def parse_time_ns(value: str, field: str) -> int:
    """Nanoseconds since the epoch from ISO-8601 text (up to 9 fraction digits;
    no zone means UTC) or from an integer of epoch seconds (``1714550400``)
    or nanoseconds (19 digits, as Loki writes them).

    Raises:
        ContractError: anything else, naming ``field``.
    """
    problem = ContractError(
        f"invalid {field}", errors=[(field, "expected an ISO-8601 time or epoch seconds")]
    )
    text = value.strip()
    if not text or len(text) > 64:
        raise problem
    if text.isdigit() and text.isascii():
        if len(text) == 19:
            return int(text)
        if len(text) > 10:  # neither epoch seconds nor nanoseconds
            raise problem
        return int(text) * 1_000_000_000
    match = _ISO.fullmatch(text)
    if match is None:
        raise problem
    clock = match["time"] if match["time"].count(":") == 2 else match["time"] + ":00"
    zone = match["tz"] or "+00:00"
    if zone in ("Z", "z"):
        zone = "+00:00"
    elif ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    try:
        moment = datetime.fromisoformat(f"{match['date']}T{clock}{zone}")
    except ValueError:
        raise problem from None
    fraction = int((match["frac"] or "0").ljust(9, "0"))
    return int(moment.timestamp()) * 1_000_000_000 + fraction


def format_ns(ns: int) -> str:
    """ISO-8601 UTC with ``Z``, keeping every nanosecond digit that is not zero."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"

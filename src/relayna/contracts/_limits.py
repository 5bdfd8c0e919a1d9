"""Limits checked on raw bytes before any JSON parser sees them.

The nesting-depth scan works on bytes with C-speed primitives only (``count``,
``replace``, ``translate``, one regex): escapes are removed, everything but
quotes and brackets is deleted, string contents are dropped, and the remaining
bracket skeleton is peeled one level per pass. At most ``max_depth`` passes run,
so a hostile ``[[[[...`` costs a bounded amount of work and never recurses.
"""

from __future__ import annotations

import re

import attrs

from relayna.errors import ContractError, EnvelopeTooLarge

__all__ = [
    "DEFAULT_LIMITS",
    "NON_OPENERS",
    "SMALL_BODY",
    "Limits",
    "check_body_size",
    "check_depth",
    "exceeds_depth",
]


def _positive(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(f"{attribute.name} must be a positive integer, got {value!r}")


@attrs.frozen
class Limits:
    """Size limits for bodies and header tables.

    Attributes:
        max_body_bytes: largest encoded body accepted or produced (1 MiB).
        max_depth: deepest JSON nesting of arrays/objects (64).
        max_header_entries: most header entries, nested entries included (64).
        max_header_bytes: approximate encoded size of all header keys and values (16 KiB).
    """

    max_body_bytes: int = attrs.field(default=1024 * 1024, validator=_positive)
    max_depth: int = attrs.field(default=64, validator=_positive)
    max_header_entries: int = attrs.field(default=64, validator=_positive)
    max_header_bytes: int = attrs.field(default=16 * 1024, validator=_positive)


DEFAULT_LIMITS = Limits()

_OPEN_CLOSE = bytes.maketrans(b"{}", b"[]")
_DELETE = bytes(b for b in range(256) if b not in b'"[]{}')
_STRING = re.compile(rb'"[^"]*"')
#: Below this size counting brackets in the body is the cheapest pre-check;
#: above it, counting on the (much shorter) skeleton is.
SMALL_BODY = 4096
#: ``len(data.translate(None, NON_OPENERS))`` counts the ``[`` and ``{`` bytes
#: of ``data`` in one pass (two ``bytes.count`` calls take longer): a bound on
#: the nesting depth of well-formed JSON.
NON_OPENERS = bytes(b for b in range(256) if b not in b"[{")


def check_body_size(size: int, limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise :class:`EnvelopeTooLarge` when ``size`` exceeds ``limits.max_body_bytes``."""
    if size > limits.max_body_bytes:
        raise EnvelopeTooLarge(size, limits.max_body_bytes)


def exceeds_depth(data: bytes, max_depth: int) -> bool:
    """True when the JSON text ``data`` nests arrays/objects deeper than ``max_depth``.

    Exact for well-formed JSON. For malformed text it may answer False; the
    parser then rejects the text (its own depth guard stays in force).
    """
    if len(data) <= SMALL_BODY and len(data.translate(None, NON_OPENERS)) <= max_depth:
        return False
    if b"\\" in data:
        # JSON escapes tokenise left to right exactly like non-overlapping
        # replace: drop escaped backslashes first, then escaped quotes.
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = data.translate(_OPEN_CLOSE, _DELETE)
    if skeleton.count(b"[") <= max_depth:
        return False
    quotes = skeleton.count(b'"')
    if quotes:
        if 2 * skeleton.count(b'""') == quotes:
            # Every string is an adjacent quote pair (a left-to-right
            # non-overlapping count pairs them all): no string holds a
            # bracket, so all quotes can go in one C-speed pass.
            skeleton = skeleton.translate(None, b'"')
        else:
            # Removing two adjacent quotes keeps open/close alternation intact.
            skeleton = _STRING.sub(b"", skeleton.replace(b'""', b""))
    for _ in range(max_depth):
        peeled = skeleton.replace(b"[]", b"")
        if len(peeled) == len(skeleton):
            break
        skeleton = peeled
        if not skeleton:
            return False
    return b"[]" in skeleton or skeleton.count(b"[") > max_depth


def check_depth(data: bytes, limits: Limits = DEFAULT_LIMITS) -> None:
    """Raise :class:`ContractError` (reason ``too_deep``) for over-deep JSON text."""
    if exceeds_depth(data, limits.max_depth):
        raise ContractError(
            "body nests too deeply",
            errors=[("body", f"nesting deeper than {limits.max_depth}")],
            reason="too_deep",
        )

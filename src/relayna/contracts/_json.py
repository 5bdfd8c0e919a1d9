"""Strict JSON text <-> Python values: the byte layer under the envelope codec.

Theory of operation (decode):

1. size and nesting depth are checked on the raw bytes (:mod:`._limits`);
2. orjson parses the bytes (fast, strict UTF-8, its own depth guard);
3. the result is re-encoded with orjson and compared with the input. Equal
   bytes prove the text was canonical compact JSON that orjson represents
   faithfully: no duplicate keys (orjson keeps the last one silently), no
   integer beyond 64 bits (orjson turns those into lossy floats), no exotic
   number spellings. Everything relayna (and the original's pydantic-core
   encoder) emits takes this path. Text that differs from its re-encoding
   only in whitespace (pretty-printed JSON) takes it too: both are compared
   with every space, tab, CR and LF deleted. Deleting them keeps every
   quote, backslash and structural character, so which bytes are inside
   strings, and every object's member count, are the same on both sides;
   a dropped duplicate or a changed number or escape would differ;
4. any other text goes through the slow path: the stdlib parser with a
   duplicate-key hook, arbitrary-precision integers and optional bare
   ``NaN``/``Infinity`` tokens, followed by a strict UTF-8 check that rejects
   lone surrogates produced by ``\\ud800``-style escapes.

Encode: orjson compact bytes; integers beyond 64 bits fall back to the stdlib
encoder with the same compact, non-ASCII-preserving output. Non-finite floats
are written as ``null`` on both paths (orjson's behaviour).
"""

from __future__ import annotations

import enum
import json
import math
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any, NoReturn

import orjson

from relayna.contracts._limits import (
    DEFAULT_LIMITS,
    NON_OPENERS,
    SMALL_BODY,
    Limits,
    check_body_size,
    check_depth,
)
from relayna.errors import ContractError

__all__ = ["DECODER_ERROR", "decoder_failure", "dumps", "loads"]

#: ``ContractError.reason`` of a body that made the decoder itself fail with
#: something other than a contract violation (a bug of relayna or a library
#: under it). The input is still refused like any other bad input.
DECODER_ERROR = "decoder_error"

_DUMPS_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
#: JSON's insignificant whitespace (also allowed, unescaped, inside strings).
_WHITESPACE = b" \t\n\r"


def _invalid_json(detail: str) -> NoReturn:
    raise ContractError("body is not valid JSON", errors=[("body", detail)], reason="invalid_json")


def _decode_error(detail: str) -> NoReturn:
    raise ContractError("body is not valid UTF-8", errors=[("body", detail)], reason="decode_error")


def decoder_failure(exc: Exception, what: str) -> ContractError:
    """The :class:`ContractError` that stands for an unexpected exception raised
    while decoding ``what`` (raise it ``from exc`` to keep the cause).

    The codec boundary promises that a peer's bytes raise nothing but
    ``ContractError``: whatever else escapes a parser or converter is wrapped
    here, with reason :data:`DECODER_ERROR`.
    """
    detail = f"{type(exc).__name__}: {str(exc)[:200]}"
    return ContractError(
        f"could not decode {what}", errors=[("body", detail)], reason=DECODER_ERROR
    )


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ContractError(
                    "duplicate JSON key", errors=[(key, "duplicate key")], reason="schema"
                )
            seen.add(key)
    return result


def _reject_constant(token: str) -> NoReturn:
    _invalid_json(f"non-finite number {token} not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        _invalid_json(f"number {text[:32]} overflows a double")
    return value


def _loads_slow(data: bytes, allow_non_finite: bool) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        _decode_error(str(exc))
    try:
        if allow_non_finite:
            value = json.loads(text, object_pairs_hook=_reject_duplicates)
        else:
            value = json.loads(
                text,
                object_pairs_hook=_reject_duplicates,
                parse_constant=_reject_constant,
                parse_float=_finite_float,
            )
    except ValueError as exc:  # JSONDecodeError, or an integer over sys.get_int_max_str_digits()
        _invalid_json(str(exc))
    except RecursionError:
        _invalid_json("nesting too deep for the parser")
    try:
        # Escapes such as "\ud800" decode to lone surrogates: not UTF-8.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        _decode_error(f"lone surrogate escape: {exc.reason}")
    return value


def loads(
    data: bytes | bytearray | memoryview | str,
    *,
    limits: Limits = DEFAULT_LIMITS,
    allow_non_finite: bool = True,
) -> Any:
    """Parse one JSON document with relayna's limits and strictness rules.

    Args:
        data: the body; ``str`` is accepted and encoded as UTF-8 first.
        limits: size and depth limits, checked before parsing.
        allow_non_finite: accept bare ``NaN``/``Infinity``/``-Infinity``
            tokens (the original accepted them); when False they are
            ``invalid_json``.

    Raises:
        EnvelopeTooLarge: over ``limits.max_body_bytes`` (reason ``too_large``).
        ContractError: reason ``too_deep``, ``decode_error``, ``invalid_json``,
            ``schema`` for duplicate keys, or :data:`DECODER_ERROR` when the
            parser itself failed (the original exception is the cause).
    """
    try:
        return _loads(data, limits, allow_non_finite)
    except ContractError:
        raise
    except Exception as exc:  # the codec boundary: see decoder_failure
        raise decoder_failure(exc, "JSON body") from exc


def _loads(
    data: bytes | bytearray | memoryview | str, limits: Limits, allow_non_finite: bool
) -> Any:
    if type(data) is not bytes:
        if isinstance(data, str):
            try:
                data = data.encode("utf-8")
            except UnicodeEncodeError as exc:
                _decode_error(str(exc))
        else:
            data = bytes(data)
    size = len(data)
    if size > limits.max_body_bytes:
        check_body_size(size, limits)
    # Same pre-check as check_depth, inlined for small bodies (the common case).
    if size > SMALL_BODY or len(data.translate(None, NON_OPENERS)) > limits.max_depth:
        check_depth(data, limits)
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _loads_slow(data, allow_non_finite)
    canonical = orjson.dumps(value)
    if canonical != data and canonical.translate(None, _WHITESPACE) != data.translate(
        None, _WHITESPACE
    ):
        return _loads_slow(data, allow_non_finite)
    return value


def _default(value: object) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def _nulls_for_non_finite(value: Any, depth: int, max_depth: int) -> Any:
    if depth > max_depth:
        raise RecursionError
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nulls_for_non_finite(v, depth + 1, max_depth) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nulls_for_non_finite(v, depth + 1, max_depth) for v in value]
    return value


def _dumps_slow(value: Any, limits: Limits) -> bytes:
    try:
        text = json.dumps(
            _nulls_for_non_finite(value, 0, limits.max_depth),
            ensure_ascii=False,
            separators=(",", ":"),
            default=_default,
        )
        return text.encode("utf-8")
    except RecursionError:
        raise ContractError(
            "value nests too deeply",
            errors=[("body", f"nesting deeper than {limits.max_depth}")],
            reason="too_deep",
        ) from None
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise ContractError(
            "value is not JSON-serialisable", errors=[("body", str(exc))], reason="schema"
        ) from None


def dumps(
    value: Any,
    *,
    limits: Limits = DEFAULT_LIMITS,
    default: Callable[[Any], Any] | None = None,
) -> bytes:
    """Encode ``value`` as compact UTF-8 JSON bytes within ``limits``.

    Datetimes are ISO-8601 (naive ones taken as UTC, UTC written as ``Z``).
    Integers beyond 64 bits are preserved through the stdlib fallback.

    Raises:
        ContractError: unserialisable value (``schema``) or too deep (``too_deep``).
        EnvelopeTooLarge: the encoded body exceeds ``limits.max_body_bytes``.
    """
    try:
        data = orjson.dumps(value, default=default or _default, option=_DUMPS_OPTIONS)
    except orjson.JSONEncodeError as exc:
        if "64-bit" in str(exc) or "Recursion" in str(exc):
            data = _dumps_slow(value, limits)
        else:
            raise ContractError(
                "value is not JSON-serialisable", errors=[("body", str(exc))], reason="schema"
            ) from None
    size = len(data)
    if size > limits.max_body_bytes:
        check_body_size(size, limits)
    if size > SMALL_BODY or len(data.translate(None, NON_OPENERS)) > limits.max_depth:
        check_depth(data, limits)
    return data

"""Reading a JSON request body: the contracts' codec and limits, not a second parser.

Every relayna route that takes a JSON body reads it here, so HTTP ingress
follows the same rules as a message from the broker (:func:`relayna.contracts.loads`):
size checked while reading (413) and before parsing, nesting depth, strict
UTF-8, duplicate keys refused, integers of any size kept exact (never turned
into floats), bare ``NaN``/``Infinity`` refused. The media type is compared
case-insensitively (``Application/JSON; charset=utf-8`` is JSON). A client
that disconnects while sending the body is not an error: one debug line, and
the route's answer goes nowhere.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
from starlette.requests import ClientDisconnect, Request

from relayna.contracts import DEFAULT_LIMITS, Limits, loads
from relayna.errors import ContractError, EnvelopeTooLarge

__all__ = ["MAX_BODY_BYTES", "BodyError", "read_json_body"]

log = logging.getLogger("relayna.api")

#: Largest JSON body a relayna POST route reads (bad input #26: 413 above it).
MAX_BODY_BYTES = DEFAULT_LIMITS.max_body_bytes

#: Status of the answer to a client that went away mid-body (nginx's 499);
#: nobody receives it.
CLIENT_CLOSED = 499


class BodyError(Exception):
    """The body cannot be used: ``status`` is 400, 413, 415, 422 (or 499: the client left)."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _is_json(request: Request) -> bool:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _check_type(request: Request) -> None:
    if not _is_json(request):
        raise BodyError(415, "Content-Type must be application/json")


async def _read(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyError(413, f"body larger than {max_bytes} bytes")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                raise BodyError(413, f"body larger than {max_bytes} bytes")
    except ClientDisconnect:
        client = request.client
        log.debug(
            "client %s disconnected while sending the body of %s %s (%d bytes read)",
            f"{client.host}:{client.port}" if client else "?",
            request.method,
            request.url.path,
            len(body),
        )
        raise BodyError(CLIENT_CLOSED, "client disconnected") from None
    return bytes(body)


async def read_json_body(
    request: Request,
    *,
    max_bytes: int = MAX_BODY_BYTES,
    required: bool = True,
    invalid_json_status: int = 422,
    limits: Limits = DEFAULT_LIMITS,
) -> Any:
    """The parsed JSON body; ``None`` for an empty optional body (and only for
    that: an optional body that is JSON ``null`` is refused with 422, since every
    optional body relayna reads is an object and ``None`` means "no body").

    Raises:
        BodyError: 415 (not ``application/json`` or ``application/*+json``;
            an empty optional body needs no Content-Type), 413 (over
            ``max_bytes``, checked while reading), ``invalid_json_status``
            (not JSON, invalid UTF-8, ``NaN``), 422 (duplicate keys, nested
            deeper than ``limits.max_depth``, or empty but required), 499
            (the client disconnected before the body was complete).
    """
    if required:
        _check_type(request)
    body = await _read(request, max_bytes)
    if not body:
        if required:
            raise BodyError(422, [{"loc": ["body"], "msg": "a JSON body is required"}])
        return None
    if not required:
        _check_type(request)
    try:
        parsed = loads(
            body, limits=attrs.evolve(limits, max_body_bytes=max_bytes), allow_non_finite=False
        )
    except EnvelopeTooLarge as exc:
        raise BodyError(413, str(exc)) from None
    except ContractError as exc:
        status = invalid_json_status if exc.reason in ("invalid_json", "decode_error") else 422
        detail = [
            {"loc": ["body"] if p in ("", "body") else ["body", p], "msg": m, "type": exc.reason}
            for p, m in exc.errors
        ] or str(exc)
        raise BodyError(status, detail) from None
    if parsed is None and not required:
        raise BodyError(422, [{"loc": ["body"], "msg": "send no body or a JSON object, not null"}])
    return parsed

"""Bytes <-> envelopes: encode, decode, status event ids, per-kind shortcuts.

:mod:`._codec` maps envelopes to wire dicts and back; :mod:`._json` maps wire
dicts to bytes and back under the limits. This module joins the two and owns
the decode hot path: a small canonical body of an ordinary envelope is checked,
parsed and structured inline, the same steps as :func:`~._json.loads` followed
by :func:`~._codec.structure`. Anything else declines to those two functions,
which decide and report.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import attrs
import orjson

from relayna.contracts._aliases import ContractAliasConfig
from relayna.contracts._codec import (
    _GENERATED,
    _WIRE,
    E,
    Envelope,
    is_batch_task_payload,
    structure,
    unstructure,
)
from relayna.contracts._envelopes import (
    BatchTaskEnvelope,
    StatusEvent,
    TaskEnvelope,
    WorkflowEnvelope,
)
from relayna.contracts._json import dumps, loads
from relayna.contracts._limits import DEFAULT_LIMITS, NON_OPENERS, SMALL_BODY, Limits

__all__ = [
    "compute_event_id", "decode", "decode_batch", "decode_status", "decode_task",
    "decode_task_message", "decode_workflow", "encode", "encode_batch", "encode_status",
    "encode_task", "encode_workflow", "ensure_event_id",
]  # fmt: skip

Body = bytes | bytearray | memoryview | str


# -- status event ids -------------------------------------------------------------


#: ``json.dumps(..., ensure_ascii=False, sort_keys=True, separators=(",", ":"),
#: default=str)`` without building an encoder per call (same output): the
#: original's canonical form, and the reference the fast path must equal.
_CANONICAL = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str
).encode


_LEAVES = frozenset((str, int, bool, type(None)))


def _float_same(value: float) -> bool:
    magnitude = abs(value)
    return magnitude == 0.0 or 1e-4 <= magnitude < 1e16  # NaN compares False


def _same_in_orjson(value: Any) -> bool:
    """Whether ``orjson.dumps(value, option=OPT_SORT_KEYS)`` is byte-identical
    to :data:`_CANONICAL` for ``value``.

    orjson and the stdlib agree on strings (UTF-8, the same escapes), integers,
    booleans, null, containers and code-point key order; they differ on floats
    below 1e-4 (``1e-05`` vs ``0.00001``), on NaN/infinity (``NaN`` vs ``null``),
    and on every type the stdlib hands to ``default=str`` (enums, datetimes,
    subclasses...). Exact type checks keep only the first group; integers
    beyond 64 bits make orjson raise, which the caller treats as "not the same"
    too. Plain loops, not generators: this scan is most of the fast path's cost.
    """
    kind = type(value)
    if kind is dict:
        for key in value:
            if type(key) is not str:
                return False
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    elif kind is float:
        return _float_same(value)
    else:
        return kind in _LEAVES
    for item in items:
        item_kind = type(item)
        if item_kind in _LEAVES:
            continue
        if item_kind is float:
            if not _float_same(item):
                return False
        elif not _same_in_orjson(item):
            return False
    return True


def _canonical_bytes(wire: Mapping[str, Any]) -> bytes:
    if type(wire) is dict and _same_in_orjson(wire):
        try:
            return orjson.dumps(wire, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # a 65-bit integer, a key orjson refuses...
            pass
    return _CANONICAL(wire).encode("utf-8")


def compute_event_id(wire: Mapping[str, Any]) -> str:
    """The original's deterministic event id: sha256 hex of the wire dict
    without ``event_id``, as sorted-key compact non-ASCII-preserving JSON.

    The bytes are orjson's when orjson writes exactly what the original's
    ``json.dumps`` call writes (:func:`_same_in_orjson`), the stdlib's
    otherwise: the id never changes, only the time it takes (about 5x less
    for an ordinary event; ``python -m benchmarks contracts``).
    """
    canonical = (
        wire if "event_id" not in wire else {k: v for k, v in wire.items() if k != "event_id"}
    )
    return hashlib.sha256(_canonical_bytes(canonical)).hexdigest()


_STATUS_SLOTS = tuple(
    (a.name, StatusEvent.__dict__[a.name].__set__) for a in attrs.fields(StatusEvent)
)


def _with_ids(event: StatusEvent, correlation_id: str, event_id: str) -> StatusEvent:
    """``attrs.evolve(event, correlation_id=..., event_id=...)`` for values that
    are valid by construction (the task id, a sha256 hex): no validators run."""
    new = StatusEvent.__new__(StatusEvent)
    for name, set_ in _STATUS_SLOTS:
        set_(new, getattr(event, name))
    _STATUS_SET_CORRELATION(new, correlation_id)
    _STATUS_SET_EVENT_ID(new, event_id)
    return new


_STATUS_SET_CORRELATION = StatusEvent.__dict__["correlation_id"].__set__
_STATUS_SET_EVENT_ID = StatusEvent.__dict__["event_id"].__set__


def ensure_event_id(event: StatusEvent) -> StatusEvent:
    """Fill ``correlation_id`` (defaults to ``task_id``) and ``event_id``.

    A non-blank ``event_id`` is kept; otherwise it is :func:`compute_event_id`
    of the event's wire form, timestamp included.
    """
    if event.event_id is not None:
        if event.correlation_id is None:  # the task id: valid, no validators to run
            return _with_ids(event, event.task_id, event.event_id)
        return event
    wire = unstructure(event)  # no "event_id": it is None
    correlation_id = event.correlation_id
    if correlation_id is None:
        # The id hashes sorted keys, so adding the key last changes nothing.
        correlation_id = wire["correlation_id"] = event.task_id
    return _with_ids(event, correlation_id, compute_event_id(wire))


# -- bytes <-> envelopes ------------------------------------------------------------


def encode(envelope: Envelope, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Encode an envelope as compact JSON bytes.

    Status events get ``correlation_id``/``event_id`` filled
    (:func:`ensure_event_id`); workflow messages get ``correlation_id`` =
    ``task_id`` when unset, as in the original's transport form.

    Raises:
        EnvelopeTooLarge: the body exceeds ``limits.max_body_bytes``.
        ContractError: the payload is not JSON-serialisable or nests too deeply.
    """
    if type(envelope) is StatusEvent and (
        envelope.event_id is None or envelope.correlation_id is None
    ):
        envelope = ensure_event_id(envelope)
    fn = _WIRE.get(type(envelope))
    wire = unstructure(envelope) if fn is None else fn(envelope)
    if type(envelope) is WorkflowEnvelope and envelope.correlation_id is None:
        wire["correlation_id"] = envelope.task_id
    return dumps(wire, limits=limits)


def decode(
    data: Body,
    cls: type[E],
    *,
    limits: Limits = DEFAULT_LIMITS,
    aliases: ContractAliasConfig | None = None,
    allow_non_finite: bool = True,
) -> E:
    """Decode and validate one envelope of type ``cls`` from a body.

    Raises:
        EnvelopeTooLarge: reason ``too_large`` (checked before parsing).
        ContractError: reason ``too_deep``, ``decode_error``, ``invalid_json``
            or ``schema``.
    """
    if aliases is None and type(data) is bytes and len(data) <= SMALL_BODY:
        # Hot path, loads() + structure() inline: size and depth pre-checks,
        # orjson, the canonical re-encode check, the generated structure
        # function. Any doubt declines to the full path below (an unusual
        # small body is then parsed again there; that path is far slower anyway).
        if (
            len(data) <= limits.max_body_bytes
            and len(data.translate(None, NON_OPENERS)) <= limits.max_depth
        ):
            try:
                value = orjson.loads(data)
                if (
                    orjson.dumps(value) == data
                    and type(value) is dict
                    and "documentId" not in value
                ):
                    result: E | None = _GENERATED[cls](value)
                    if result is not None:
                        return result
            except Exception:  # noqa: BLE001 - bad JSON or value: the full path reports it
                pass
    value = loads(data, limits=limits, allow_non_finite=allow_non_finite)
    return structure(value, cls, aliases=aliases)


# -- per-kind shortcuts -------------------------------------------------------------


def encode_task(task: TaskEnvelope, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    return encode(task, limits=limits)


def encode_batch(batch: BatchTaskEnvelope, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    return encode(batch, limits=limits)


def encode_status(event: StatusEvent, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    return encode(event, limits=limits)


def encode_workflow(message: WorkflowEnvelope, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    return encode(message, limits=limits)


def decode_task(
    data: Body, *, limits: Limits = DEFAULT_LIMITS, aliases: ContractAliasConfig | None = None
) -> TaskEnvelope:
    return decode(data, TaskEnvelope, limits=limits, aliases=aliases)


def decode_batch(
    data: Body, *, limits: Limits = DEFAULT_LIMITS, aliases: ContractAliasConfig | None = None
) -> BatchTaskEnvelope:
    return decode(data, BatchTaskEnvelope, limits=limits, aliases=aliases)


def decode_status(
    data: Body, *, limits: Limits = DEFAULT_LIMITS, aliases: ContractAliasConfig | None = None
) -> StatusEvent:
    return decode(data, StatusEvent, limits=limits, aliases=aliases)


def decode_workflow(
    data: Body, *, limits: Limits = DEFAULT_LIMITS, aliases: ContractAliasConfig | None = None
) -> WorkflowEnvelope:
    return decode(data, WorkflowEnvelope, limits=limits, aliases=aliases)


def decode_task_message(
    data: Body, *, limits: Limits = DEFAULT_LIMITS, aliases: ContractAliasConfig | None = None
) -> TaskEnvelope | BatchTaskEnvelope:
    """Decode a task queue body: a batch (string ``batch_id`` + list ``tasks``)
    or a single task."""
    value: Any = loads(data, limits=limits)
    if type(value) is dict and is_batch_task_payload(value):
        return structure(value, BatchTaskEnvelope, aliases=aliases)
    return structure(value, TaskEnvelope, aliases=aliases)

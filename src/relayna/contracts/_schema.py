"""JSON Schemas of the wire envelopes, derived from their attrs definitions.

Each field's schema is chosen by the same validator or converter that checks
it at decode time (identifier rule, priority range, non-empty string, UTC
date-time), the way :mod:`._fast` picks its templates, so a field added to an
envelope without a rule here fails at import. Unknown top-level fields are
allowed (they are kept in ``extra``), as the codec does.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import attrs

from relayna.contracts import _envelopes as env
from relayna.contracts._envelopes import (
    BatchTaskEnvelope,
    StatusEvent,
    TaskEnvelope,
    WorkflowEnvelope,
)
from relayna.contracts._ids import IDENTIFIER_MAX_LENGTH

__all__ = ["IDENTIFIER_SCHEMA", "json_schema"]

_ID_CHAR = r"A-Za-z0-9_:@/+=\-"
#: The identifier rule as a JSON Schema (1..256 characters of
#: ``[A-Za-z0-9._:@/+=-]``, no leading/trailing dot, no ``..``).
IDENTIFIER_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": IDENTIFIER_MAX_LENGTH,
    "pattern": f"^[{_ID_CHAR}](?:[.{_ID_CHAR}]*[{_ID_CHAR}])?$",
    "not": {"pattern": r"\.\."},
}

_BY_VALIDATOR: dict[Any, dict[str, Any]] = {
    env._identifier: IDENTIFIER_SCHEMA,
    env._optional_identifier: IDENTIFIER_SCHEMA,
    env._optional_str: {"type": "string"},
    env._non_empty_str: {"type": "string", "minLength": 1, "pattern": r"\S"},
    env._mapping: {"type": "object"},
    env._optional_mapping: {"type": "object"},
    env._priority: {"type": "integer", "minimum": 0, "maximum": 255},
}
_DATETIME = {"type": "string", "format": "date-time"}


def _field_schema(field: attrs.Attribute[Any]) -> dict[str, Any]:
    if field.converter is cast(Any, env._as_utc):
        return dict(_DATETIME)
    if field.validator is env._tasks:
        return {"type": "array", "minItems": 1, "items": json_schema(TaskEnvelope)}
    try:
        return dict(_BY_VALIDATOR[field.validator])
    except KeyError:  # pragma: no cover - a new field without a rule
        raise TypeError(f"no JSON Schema rule for field {field.name!r}") from None


def json_schema(
    cls: type[TaskEnvelope | BatchTaskEnvelope | StatusEvent | WorkflowEnvelope],
    *,
    required: Iterable[str] = (),
    title: str | None = None,
) -> dict[str, Any]:
    """The JSON Schema of envelope ``cls`` on the wire.

    Args:
        required: fields to require besides those without a default (e.g. the
            ``event_id`` and ``correlation_id`` every *stored* status event has).
        title: defaults to the class name.
    """
    fields = [f for f in attrs.fields(cls) if f.name != "extra"]
    needed = {f.name for f in fields if f.default is attrs.NOTHING} | set(required)
    return {
        "title": title or cls.__name__,
        "type": "object",
        "required": sorted(needed),
        "properties": {f.name: _field_schema(f) for f in fields},
        "additionalProperties": True,
    }

"""The one module that knows the wire format of relayna envelopes.

A cattrs converter maps envelopes to plain JSON-ready dicts and back, with
strict scalar hooks (no ``str(5)`` coercion, no ``bool`` as ``int``), UTC
ISO-8601 datetimes written with ``Z``, ``None`` fields omitted, unknown
top-level fields kept in ``extra``. :mod:`._api` turns those dicts into
compact bytes and back (through :mod:`._json`, under the configured limits),
and computes status event ids from them. Every failure is one
:class:`~relayna.errors.ContractError` whose ``errors`` list readable paths
such as ``tasks[2].task_id``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import BaseValidationError, ClassValidationError, IterableValidationError
from cattrs.gen import make_dict_structure_fn

from relayna.contracts._aliases import ContractAliasConfig, normalize_aliases
from relayna.contracts._envelopes import (
    BatchTaskEnvelope,
    StatusEvent,
    TaskEnvelope,
    WorkflowEnvelope,
)
from relayna.contracts._fast import structure_fns, unstructure_fns
from relayna.contracts._json import decoder_failure
from relayna.errors import ContractError

__all__ = [
    "Envelope",
    "converter",
    "format_datetime",
    "is_batch_task_payload",
    "structure",
    "unstructure",
]

Envelope = TaskEnvelope | BatchTaskEnvelope | StatusEvent | WorkflowEnvelope
E = TypeVar("E", TaskEnvelope, BatchTaskEnvelope, StatusEvent, WorkflowEnvelope)

#: The wire converter. Structuring runs on a twin without detailed validation
#: (faster); only a failure is re-run on this one to collect every error path.
converter = cattrs.Converter(detailed_validation=True)
_fast = cattrs.Converter(detailed_validation=False)


# -- scalar hooks -------------------------------------------------------------


def _structure_str(value: object, _: object) -> str:
    if type(value) is not str:
        raise TypeError(f"expected a string, got {_json_type(value)}")
    return value


def _structure_int(value: object, _: object) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {_json_type(value)}")
    return value


def _structure_object(value: object, _: object) -> dict[str, Any]:
    if type(value) is not dict:
        raise TypeError(f"expected an object, got {_json_type(value)}")
    return value


def _structure_datetime(value: object, _: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if type(value) is not str or len(value) > 64:
        raise TypeError(f"expected an ISO-8601 date-time string, got {_json_type(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"invalid ISO-8601 date-time {value!r}") from None
    if parsed.utcoffset():
        try:
            parsed.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"date-time {value!r} is out of range in UTC") from None
    return parsed


def format_datetime(value: datetime) -> str:
    """ISO-8601 in UTC with ``Z``, microseconds only when non-zero."""
    if value.tzinfo is UTC:  # the common case: "...+00:00" -> "...Z"
        return value.isoformat()[:-6] + "Z"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.utcoffset():
        value = value.astimezone(UTC)
    text = value.replace(tzinfo=None).isoformat()
    return text + "Z"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _optional(hook: Callable[[object, object], Any]) -> Callable[[object, object], Any]:
    def structure_optional(value: object, type_: object) -> Any:
        return None if value is None else hook(value, type_)

    return structure_optional


def _register_scalars(conv: cattrs.Converter) -> None:
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], _structure_object)
    conv.register_structure_hook_func(lambda t: t == str | None, _optional(_structure_str))
    conv.register_structure_hook_func(lambda t: t == int | None, _optional(_structure_int))
    conv.register_structure_hook_func(
        lambda t: t == dict[str, Any] | None, _optional(_structure_object)
    )


# -- error paths ----------------------------------------------------------------


def _join(path: str, sub: str) -> str:
    if not path:
        return sub
    if not sub:
        return path
    return path + sub if sub.startswith("[") else f"{path}.{sub}"


def _flatten(exc: BaseException, path: str = "") -> list[tuple[str, str]]:
    """(path, message) pairs for a structuring failure, like cattrs' transform_error."""
    out: list[tuple[str, str]] = []
    if isinstance(exc, ClassValidationError):
        with_notes, others = exc.group_exceptions()
        for sub, note in with_notes:
            out += _flatten(sub, _join(path, note.name))
        for sub in others:
            out += _flatten(sub, path)
    elif isinstance(exc, IterableValidationError):
        with_index, others_i = exc.group_exceptions()
        for sub, inote in with_index:
            out += _flatten(sub, f"{path}[{inote.index}]")
        for sub in others_i:
            out += _flatten(sub, path)
    elif isinstance(exc, ContractError):
        out += [(_join(path, p), m) for p, m in exc.errors] or [(path, str(exc))]
    elif isinstance(exc, KeyError):
        out.append((path, "required field missing"))
    else:
        out.append((path, str(exc) or type(exc).__name__))
    return out


# -- envelope hooks -------------------------------------------------------------


def _envelope_structure_hook(conv: cattrs.Converter, cls: type[E]) -> Callable[[Any, Any], E]:
    inner = make_dict_structure_fn(cls, conv, _cattrs_detailed_validation=conv.detailed_validation)
    known = frozenset(a.name for a in attrs.fields(cls)) - {"extra"}

    def hook(value: Any, _: Any) -> E:
        if type(value) is not dict:
            raise TypeError(f"expected an object, got {_json_type(value)}")
        if known.issuperset(value):
            return inner(value, cls)
        data = {k: v for k, v in value.items() if k in known}
        data["extra"] = {k: v for k, v in value.items() if k not in known}
        return inner(data, cls)

    return hook


def _envelope_unstructure_hook(cls: type[E]) -> Callable[[E], dict[str, Any]]:
    names = tuple(a.name for a in attrs.fields(cls) if a.name != "extra")

    def hook(obj: E) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in names:
            value = getattr(obj, name)
            if value is None:
                continue
            if type(value) is datetime:
                value = format_datetime(value)
            elif type(value) is tuple:
                value = [converter.unstructure(item) for item in value]
            out[name] = value
        if obj.extra:
            out.update(obj.extra)
        return out

    return hook


def _tasks_hook(conv: cattrs.Converter) -> Callable[[object, object], tuple[TaskEnvelope, ...]]:
    def structure_tasks(value: object, _: object) -> tuple[TaskEnvelope, ...]:
        if type(value) is not list:
            raise TypeError(f"expected an array, got {_json_type(value)}")
        if not value:
            raise ContractError("invalid tasks", errors=[("", "must hold at least one task")])
        if not conv.detailed_validation:
            return tuple([conv.structure(item, TaskEnvelope) for item in value])
        tasks: list[TaskEnvelope] = []
        errors: list[tuple[str, str]] = []
        for index, item in enumerate(value):
            try:
                tasks.append(conv.structure(item, TaskEnvelope))
            except _STRUCTURE_ERRORS as exc:
                errors += _flatten(exc, f"[{index}]")
        if errors:
            raise ContractError("invalid tasks", errors=errors)
        return tuple(tasks)

    return structure_tasks


_STRUCTURE_ERRORS = (BaseValidationError, ContractError, TypeError, ValueError, KeyError)

for _conv in (converter, _fast):
    _register_scalars(_conv)
    _conv.register_structure_hook_func(lambda t: t == tuple[TaskEnvelope, ...], _tasks_hook(_conv))
    _conv.register_structure_hook(TaskEnvelope, _envelope_structure_hook(_conv, TaskEnvelope))
    _conv.register_structure_hook(
        BatchTaskEnvelope, _envelope_structure_hook(_conv, BatchTaskEnvelope)
    )
    _conv.register_structure_hook(StatusEvent, _envelope_structure_hook(_conv, StatusEvent))
    _conv.register_structure_hook(
        WorkflowEnvelope, _envelope_structure_hook(_conv, WorkflowEnvelope)
    )
converter.register_unstructure_hook(TaskEnvelope, _envelope_unstructure_hook(TaskEnvelope))
converter.register_unstructure_hook(
    BatchTaskEnvelope, _envelope_unstructure_hook(BatchTaskEnvelope)
)
converter.register_unstructure_hook(StatusEvent, _envelope_unstructure_hook(StatusEvent))
converter.register_unstructure_hook(WorkflowEnvelope, _envelope_unstructure_hook(WorkflowEnvelope))


_FAST_HOOKS: dict[type[Any], Callable[[Any, Any], Any]] = {
    cls: _fast.get_structure_hook(cls)
    for cls in (TaskEnvelope, BatchTaskEnvelope, StatusEvent, WorkflowEnvelope)
}

# Generated one-pass functions (see :mod:`._fast`); the cattrs paths above stay
# the authority for anything the fast path declines and for every error message.
_GENERATED = structure_fns()
_UNSTRUCTURE = unstructure_fns(format_datetime)
#: For encode only: exact-UTC datetimes are left for orjson to write.
_WIRE = unstructure_fns(format_datetime, keep_utc=True)


# -- public functions -------------------------------------------------------------


def is_batch_task_payload(data: Mapping[str, Any]) -> bool:
    """A body is a batch when it has a string ``batch_id`` and a list ``tasks``."""
    return isinstance(data.get("batch_id"), str) and isinstance(data.get("tasks"), list)


def structure(data: object, cls: type[E], *, aliases: ContractAliasConfig | None = None) -> E:
    """Validate a decoded JSON value (or HTTP body) as envelope ``cls``.

    Payload aliases are normalised first (``documentId`` -> ``task_id`` always).

    Raises:
        ContractError: reason ``schema``, one error per bad field path (or
            ``decoder_error`` when a converter failed unexpectedly; the
            original exception is the cause).
    """
    try:
        return _structure(data, cls, aliases)
    except ContractError:
        raise
    except Exception as exc:  # the codec boundary: see decoder_failure
        raise decoder_failure(exc, cls.__name__) from exc


def _structure(data: object, cls: type[E], aliases: ContractAliasConfig | None) -> E:
    if type(data) is not dict:
        raise ContractError(
            f"invalid {cls.__name__}",
            errors=[("", f"expected a JSON object, got {_json_type(data)}")],
        )
    if aliases is None and "documentId" not in data:
        value: Mapping[str, Any] = data
    else:
        value = normalize_aliases(data, aliases)
    if cls is BatchTaskEnvelope and type(value.get("tasks")) is list:
        value = dict(value)
        value["tasks"] = [
            normalize_aliases(t, aliases) if type(t) is dict else t for t in value["tasks"]
        ]
    try:
        result: E | None = _GENERATED[cls](value)
    except Exception:  # noqa: BLE001 - the full path below decides and reports
        result = None
    if result is not None:
        return result
    try:
        result = _FAST_HOOKS[cls](value, cls)
        return result
    except _STRUCTURE_ERRORS as fast_exc:
        try:
            converter.structure(value, cls)
        except _STRUCTURE_ERRORS as exc:
            raise ContractError(f"invalid {cls.__name__}", errors=_flatten(exc)) from None
        raise ContractError(f"invalid {cls.__name__}", errors=_flatten(fast_exc)) from None


def unstructure(envelope: Envelope) -> dict[str, Any]:
    """The wire dict of ``envelope`` (JSON types only; ``None`` fields omitted)."""
    fn = _UNSTRUCTURE.get(type(envelope))
    if fn is not None:
        return fn(envelope)
    result: dict[str, Any] = converter.unstructure(envelope)
    return result

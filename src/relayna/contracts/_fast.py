"""Generated fast paths: one structure and one unstructure function per envelope.

The generic cattrs path plus attrs validators costs several microseconds per
envelope, more than parsing a 1 KB body. The functions here do the same job in
one pass with the checks inlined, and build the instance without re-running
the validators they have just applied.

They are an accelerator, not an authority. A structure function returns
``None`` (or raises) whenever anything is unusual: a missing or mistyped field,
a value rule broken, a datetime subclass. :func:`relayna.contracts._codec.structure`
then runs the full cattrs + attrs path, which accepts or rejects the value and
builds the error paths exactly as before. So the fast path may only ever
*accept* what the full path accepts, and build the same object.

The code is generated from the attrs field definitions, keyed by each field's
validator, so a field added to an envelope without a rule here fails at import.

Building the instance: the envelopes are frozen slotted classes, so each slot
would have to be set through its descriptor (a method-wrapper call per field,
the largest single cost of the function). Instead it fills a mutable twin with
the identical slot layout (plain attribute stores) and then assigns
``__class__``, which CPython allows between layout-compatible classes. The
twin is probed at import; where the interpreter refuses (a layout change, a
``__weakref__`` slot on CPython 3.11), the descriptors are used as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import attrs

from relayna.contracts import _envelopes as env
from relayna.contracts._ids import IDENTIFIER_MAX_LENGTH, RECENT_IDENTIFIERS, is_valid_identifier

__all__ = ["make_structure_fn", "make_unstructure_fn", "structure_fns", "unstructure_fns"]

_MISSING = object()

# Per-field source templates: {n} is the field name, {v} its local variable.
# Each binds {v} or returns None (decline: the full path takes over). Each
# optional field present adds one to ``_n``, which starts at the number of
# required fields: ``_n == len(_data)`` then proves there are no extra keys,
# cheaper than a set operation on the keys.
#
# Identifiers: cache hit first (task and correlation ids recur), then letters
# and digits only (hex digests; bytes.isalnum is a table lookup and False for
# any non-ASCII byte, str.isalnum a Unicode database lookup per character).
_ID_CHECK = (
    "type({v}) is not str or not ({v} in _recent_ids"
    " or (len({v}) <= _MAXLEN and {v}.encode().isalnum()) or _valid_id({v}))"
)
_REQUIRED_ID = f"""
    {{v}} = _get({{n!r}})
    if {_ID_CHECK}:
        return None
"""
_OPTIONAL_ID = f"""
    {{v}} = _get({{n!r}})
    if {{v}} is not None:
        if {_ID_CHECK}:
            return None
        _n += 1
"""
_FACTORY_ID = f"""
    {{v}} = _get({{n!r}}, _MISSING)
    if {{v}} is _MISSING:
        {{v}} = _default_{{n}}()
    else:
        _n += 1
    if {_ID_CHECK}:
        return None
"""
_OPTIONAL_STR = """
    {v} = _get({n!r})
    if {v} is not None:
        if type({v}) is not str:
            return None
        _n += 1
"""
_NON_EMPTY = """
    {v} = _get({n!r})
    if type({v}) is not str or not {v}.strip():
        return None
"""
_NON_EMPTY_DEFAULT = """
    {v} = _get({n!r}, _MISSING)
    if {v} is _MISSING:
        {v} = _default_{n}
    elif type({v}) is not str or not {v}.strip():
        return None
    else:
        _n += 1
"""
_MAPPING = """
    {v} = _get({n!r}, _MISSING)
    if {v} is _MISSING:
        {v} = {{}}
    elif type({v}) is not dict:
        return None
    else:
        _n += 1
"""
_OPTIONAL_MAPPING = """
    {v} = _get({n!r})
    if {v} is not None:
        if type({v}) is not dict:
            return None
        _n += 1
"""
_PRIORITY = """
    {v} = _get({n!r})
    if {v} is not None:
        if type({v}) is not int or not 0 <= {v} <= 255:
            return None
        _n += 1
"""
# The cattrs datetime hook (an exact datetime, or an ISO string of at most 64
# characters) followed by the attrs converter ``_as_utc``.
_DATETIME = """
    {v} = _get({n!r}, _MISSING)
    if {v} is _MISSING:
        {v} = _default_{n}()
    else:
        if type({v}) is str and len({v}) <= 64:
            {v} = _fromisoformat({v})
        elif type({v}) is not datetime:
            return None
        _n += 1
    _tz = {v}.tzinfo
    if _tz is not UTC:
        if _tz is None:
            {v} = {v}.replace(tzinfo=UTC)
        elif {v}.utcoffset():
            try:
                {v} = {v}.astimezone(UTC)
            except OverflowError:  # out of range in UTC: the full path reports it
                return None
"""
_TASKS = """
    {v} = _get({n!r})
    if type({v}) is not list or not {v}:
        return None
    _items = []
    for _item in {v}:
        if type(_item) is not dict:
            return None
        _task = _structure_task(_item)
        if _task is None:
            return None
        _items.append(_task)
    {v} = tuple(_items)
"""
_REQUIRED = (_REQUIRED_ID, _NON_EMPTY, _TASKS)
#: The class of ``attrs.Factory(...)`` defaults (attrs' stubs declare Factory as
#: a function returning the default's type, so it cannot be named in isinstance).
_FACTORY: type[Any] = type(attrs.Factory(list))


def _template(field: attrs.Attribute[Any]) -> str:
    """The structure template for ``field``, chosen by its validator and default."""
    validator = field.validator
    default = field.default
    has_default = default is not attrs.NOTHING
    if validator is env._identifier:
        return _FACTORY_ID if isinstance(default, _FACTORY) else _REQUIRED_ID
    table: dict[Any, str] = {
        env._optional_identifier: _OPTIONAL_ID,
        env._optional_str: _OPTIONAL_STR,
        env._optional_mapping: _OPTIONAL_MAPPING,
        env._priority: _PRIORITY,
        env._tasks: _TASKS,
    }
    if validator in table and (not has_default or default is None or validator is env._tasks):
        return table[validator]
    if validator is env._non_empty_str:
        return _NON_EMPTY_DEFAULT if has_default else _NON_EMPTY
    if validator is env._mapping and default == attrs.Factory(dict):
        return _MAPPING
    if field.converter is cast(Any, env._as_utc) and validator is None:
        return _DATETIME
    raise TypeError(f"no fast-path rule for field {field.name!r}")  # pragma: no cover


def _mutable_twin(cls: type[Any]) -> type[Any] | None:
    """A plain class with the slots of ``cls``, or None when instances cannot
    be moved to ``cls`` by ``__class__`` assignment on this interpreter."""
    slots = vars(cls).get("__slots__")
    if type(slots) is not tuple or sorted(slots) != sorted(a.name for a in attrs.fields(cls)):
        return None
    twin = type(f"_Mutable{cls.__name__}", (), {"__slots__": slots})
    probe: Any = object.__new__(twin)
    try:
        probe.__class__ = cls
    except TypeError:
        return None
    return twin


def make_structure_fn(
    cls: type[Any], structure_task: Callable[[Mapping[str, Any]], Any] | None = None
) -> Callable[[Mapping[str, Any]], Any]:
    """A function ``dict -> instance | None`` for envelope ``cls`` (``None``: use the full path)."""
    fields = [f for f in attrs.fields(cls) if f.name != "extra"]
    known = frozenset(f.name for f in fields)
    templates = [_template(f) for f in fields]
    required = sum(t in _REQUIRED for t in templates)
    lines = ["def structure(_data):", "    _get = _data.get", f"    _n = {required}"]
    namespace: dict[str, Any] = {
        "_MISSING": _MISSING,
        "_MAXLEN": IDENTIFIER_MAX_LENGTH,
        "_valid_id": is_valid_identifier,
        "_recent_ids": RECENT_IDENTIFIERS,
        "_fromisoformat": datetime.fromisoformat,
        "_known": known,
        "_new": cls.__new__,
        "_cls": cls,
        "UTC": UTC,
        "datetime": datetime,
        "_structure_task": structure_task,
        "_set_extra": cls.__dict__["extra"].__set__,
    }
    for field, template in zip(fields, templates, strict=True):
        lines.append(template.format(n=field.name, v="v_" + field.name).strip("\n"))
        namespace["_set_" + field.name] = cls.__dict__[field.name].__set__
        default = field.default
        if isinstance(default, _FACTORY):
            namespace["_default_" + field.name] = default.factory
        elif default is not attrs.NOTHING:
            namespace["_default_" + field.name] = default
    lines += [
        "    if _n == len(_data):\n        _extra = {}",
        "    else:\n        _extra = {_k: _x for _k, _x in _data.items() if _k not in _known}",
    ]
    twin = _mutable_twin(cls)
    if twin is None:
        lines.append("    _self = _new(_cls)")
        lines += [f"    _set_{f.name}(_self, v_{f.name})" for f in fields]
        lines += ["    _set_extra(_self, _extra)", "    return _self"]
    else:
        namespace["_twin"] = twin
        lines.append("    _self = _twin()")
        lines += [f"    _self.{f.name} = v_{f.name}" for f in fields]
        lines += ["    _self.extra = _extra", "    _self.__class__ = _cls", "    return _self"]
    exec(compile("\n".join(lines), f"<relayna structure {cls.__name__}>", "exec"), namespace)
    fn: Callable[[Mapping[str, Any]], Any] = namespace["structure"]
    return fn


def make_unstructure_fn(
    cls: type[Any],
    format_datetime: Callable[[datetime], str],
    unstructure_task: Callable[[Any], dict[str, Any]] | None = None,
    *,
    keep_utc: bool = False,
) -> Callable[[Any], dict[str, Any]]:
    """A function ``instance -> wire dict`` for envelope ``cls`` (``None`` fields omitted).

    With ``keep_utc`` a datetime whose tzinfo is exactly ``UTC`` is left as is,
    for orjson to write (``OPT_UTC_Z`` gives the same text as ``format_datetime``);
    the result is then only fit for :func:`relayna.contracts._json.dumps`.
    """
    fields = [f for f in attrs.fields(cls) if f.name != "extra"]
    lines = ["def unstructure(_obj):", "    _out = {}"]
    for field in fields:
        v = "v_" + field.name
        lines.append(f"    {v} = _obj.{field.name}")
        if field.converter is cast(Any, env._as_utc):
            value = f"{v} if {v}.tzinfo is UTC else _fmt({v})" if keep_utc else f"_fmt({v})"
        elif field.validator is env._tasks:
            value = f"[_unstructure_task(_t) for _t in {v}]"
        else:
            value = v
        lines.append(f"    if {v} is not None:\n        _out[{field.name!r}] = {value}")
    lines += ["    if _obj.extra:\n        _out.update(_obj.extra)", "    return _out"]
    namespace: dict[str, Any] = {
        "_fmt": format_datetime,
        "_unstructure_task": unstructure_task,
        "UTC": UTC,
    }
    exec(compile("\n".join(lines), f"<relayna unstructure {cls.__name__}>", "exec"), namespace)
    fn: Callable[[Any], dict[str, Any]] = namespace["unstructure"]
    return fn


def structure_fns() -> dict[type[Any], Callable[[Mapping[str, Any]], Any]]:
    """The generated structure function of every envelope class."""
    task = make_structure_fn(env.TaskEnvelope)
    return {
        env.TaskEnvelope: task,
        env.BatchTaskEnvelope: make_structure_fn(env.BatchTaskEnvelope, task),
        env.StatusEvent: make_structure_fn(env.StatusEvent),
        env.WorkflowEnvelope: make_structure_fn(env.WorkflowEnvelope),
    }


def unstructure_fns(
    format_datetime: Callable[[datetime], str], *, keep_utc: bool = False
) -> dict[type[Any], Callable[[Any], dict[str, Any]]]:
    """The generated unstructure function of every envelope class."""
    task = make_unstructure_fn(env.TaskEnvelope, format_datetime, keep_utc=keep_utc)
    return {
        env.TaskEnvelope: task,
        env.BatchTaskEnvelope: make_unstructure_fn(
            env.BatchTaskEnvelope, format_datetime, task, keep_utc=keep_utc
        ),
        env.StatusEvent: make_unstructure_fn(env.StatusEvent, format_datetime, keep_utc=keep_utc),
        env.WorkflowEnvelope: make_unstructure_fn(
            env.WorkflowEnvelope, format_datetime, keep_utc=keep_utc
        ),
    }

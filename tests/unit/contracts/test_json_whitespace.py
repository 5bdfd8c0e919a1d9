"""``loads`` takes pretty-printed JSON through orjson: it must answer exactly as
the strict stdlib path did.

Whatever text the generator writes (any whitespace between tokens, spaces
inside strings, duplicate keys, integers beyond 64 bits, non-finite numbers,
escapes, lone surrogates), ``loads`` gives the value (same types) or refuses
it with the reason of ``_loads_slow``, the stdlib parser with relayna's rules
that every non-canonical text took before.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from relayna.contracts import loads
from relayna.contracts._json import _loads_slow
from relayna.errors import ContractError

WHITESPACE = st.sampled_from(["", "", " ", "  ", "\n", "\t", "\r\n", " \n\t "])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(' \t\n"\\/:,{}[]')),
)
#: Objects are lists of pairs, so a key can repeat.
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.builds(
            lambda pairs: ("object", pairs),
            st.lists(
                st.tuples(st.sampled_from(["a", "b", "a b", " ", "é", "k:1"]), inner), max_size=4
            ),
        )
    ),
    max_leaves=12,
)


def render(value: Any, draw: st.DrawFn, ascii_only: bool) -> str:
    """``value`` as JSON text with drawn whitespace around every token."""

    def ws() -> str:
        return draw(WHITESPACE)

    if isinstance(value, tuple):
        members = [
            f"{ws()}{json.dumps(k, ensure_ascii=ascii_only)}{ws()}:{render(v, draw, ascii_only)}"
            for k, v in value[1]
        ]
        return f"{ws()}{{{','.join(members) or ws()}}}{ws()}"
    if isinstance(value, list):
        items = [render(v, draw, ascii_only) for v in value]
        return f"{ws()}[{','.join(items) or ws()}]{ws()}"
    return f"{ws()}{json.dumps(value, ensure_ascii=ascii_only)}{ws()}"


@st.composite
def texts(draw: st.DrawFn) -> bytes:
    value = draw(VALUES)
    text = render(value, draw, draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


def outcome(fn: Any, data: bytes, allow_non_finite: bool) -> tuple[str, Any]:
    try:
        return "value", typed(fn(data, allow_non_finite=allow_non_finite))
    except ContractError as exc:
        return "refused", exc.reason


def typed(value: Any) -> Any:
    """``value`` with every type spelled out (1, 1.0 and True differ; -0.0 and 0.0 too)."""
    if isinstance(value, dict):
        return ("dict", [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, repr(value))


def slow(data: bytes, *, allow_non_finite: bool) -> Any:
    return _loads_slow(data, allow_non_finite)


@settings(max_examples=400, deadline=None)
@given(data=texts(), allow_non_finite=st.booleans())
@example(data=b'{"a": 1, "a": 2}', allow_non_finite=False)
@example(data=b'{"a":1,"a":1}', allow_non_finite=False)
@example(data=b'{ "a b" : [1, 2.5e3, -0.0, 18446744073709551616] }', allow_non_finite=False)
@example(data=b'[1e400, "x"]', allow_non_finite=False)
@example(data=b"[NaN]", allow_non_finite=True)
@example(data=b'["\\ud800 "]', allow_non_finite=False)
@example(data=b'["\\u0020", " "]', allow_non_finite=False)
@example(data=b'{"a":\n  {"b": [true, null]}\n}', allow_non_finite=False)
def test_loads_answers_as_the_strict_stdlib_path(data: bytes, allow_non_finite: bool) -> None:
    assert outcome(loads, data, allow_non_finite) == outcome(slow, data, allow_non_finite)


def test_pretty_printed_json_is_parsed_without_the_stdlib(monkeypatch: Any) -> None:
    """The point of the change: indented JSON no longer goes through ``json.loads``."""
    import relayna.contracts._json as module

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("slow path taken")

    monkeypatch.setattr(module, "_loads_slow", refuse)
    body = json.dumps({"task_id": "t 1", "payload": {"items": [1, 2.5, None]}}, indent=2)
    assert loads(body.encode()) == {"task_id": "t 1", "payload": {"items": [1, 2.5, None]}}

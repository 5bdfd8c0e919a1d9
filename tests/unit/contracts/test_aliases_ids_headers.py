from __future__ import annotations

import math

import pytest

from relayna.contracts import (
    ContractAliasConfig,
    Limits,
    TerminalStatusSet,
    check_header_budget,
    denormalize_aliases,
    get_header,
    headers,
    is_valid_identifier,
    normalize_aliases,
    parse_count_header,
    public_output_aliases,
    read_count_header,
    validate_identifier,
    without_headers,
)
from relayna.errors import ContractError


@pytest.mark.parametrize(
    "value",
    ["a", "task-1", "550e8400-e29b-41d4-a716-446655440000", "a.b", "ns:t/1+x=y@z_", "x" * 256],
)
def test_valid_identifiers(value: str) -> None:
    assert is_valid_identifier(value)
    assert validate_identifier(value) == value


@pytest.mark.parametrize(
    "value", ["", "x" * 257, "a b", "a\nb", "a*", "a..b", ".a", "a.", "ü", "a?", "a%20", None, 3]
)
def test_invalid_identifiers(value: object) -> None:
    assert not is_valid_identifier(value)
    with pytest.raises(ContractError) as info:
        validate_identifier(value, "stage")
    assert info.value.fields == ["stage"]


def test_alias_normalise_and_denormalise() -> None:
    cfg = ContractAliasConfig(field_aliases={"task_id": "jobId"}, http_aliases={"task_id": "id"})
    assert cfg.http_alias_for("task_id") == "id"
    assert cfg.payload_alias_for("task_id") == "jobId"
    assert normalize_aliases({"jobId": "j"}, cfg) == {"jobId": "j", "task_id": "j"}
    assert normalize_aliases({"jobId": "j"}, cfg, drop_aliases=True) == {"task_id": "j"}
    assert normalize_aliases({"id": "h"}, cfg, source="http")["task_id"] == "h"
    # top-level only
    nested = {"task_id": "t", "payload": {"documentId": "x"}}
    assert normalize_aliases(nested) is nested
    assert denormalize_aliases({"task_id": "t"})["documentId"] == "t"
    assert public_output_aliases({"task_id": "t"}) == {"task_id": "t"}
    assert public_output_aliases({"task_id": "t"}, cfg) == {"jobId": "t"}
    assert public_output_aliases({"task_id": "t"}, cfg, source="http") == {"id": "t"}


def test_terminal_status_set() -> None:
    default = TerminalStatusSet()
    assert default.is_terminal("COMPLETED")
    assert default.is_terminal("failed")
    assert not default.is_terminal("processing")
    assert not default.is_terminal(None)
    custom = TerminalStatusSet(statuses=frozenset({"Done"}))
    assert custom.is_terminal("done")
    assert not custom.is_terminal("completed")


def test_header_names_and_legacy_reader() -> None:
    assert headers.RETRY_ATTEMPT == "relayna-retry-attempt"
    assert headers.legacy_name(headers.RETRY_ATTEMPT) == "x-relayna-retry-attempt"
    assert get_header({"x-relayna-retry-attempt": 2}, headers.RETRY_ATTEMPT) == 2
    both = {"x-relayna-retry-attempt": 2, "relayna-retry-attempt": 3}
    assert read_count_header(both) == 3
    assert read_count_header({}) == 0
    assert read_count_header(None) == 0
    left = without_headers(
        {"x-relayna-failure-reason": "e", "relayna-retry-attempt": 1, "task_id": "t"},
        headers.RETRY_HEADERS,
    )
    assert left == {"task_id": "t"}


@pytest.mark.parametrize("value", [0, 5, 10**6, "7", b"12", " 3 "])
def test_count_header_valid(value: object) -> None:
    assert 0 <= parse_count_header(value) <= 10**6


@pytest.mark.parametrize(
    "value", ["abc", -1, 2**70, math.nan, 1.0, True, "-1", "1e3", "٣", 10**6 + 1, b"\xff", [1]]
)
def test_count_header_invalid(value: object) -> None:
    with pytest.raises(ContractError) as info:
        parse_count_header(value)
    assert info.value.reason == "invalid_header"
    assert info.value.fields == ["relayna-retry-attempt"]


def test_header_budget() -> None:
    check_header_budget({"task_id": "t", "relayna-retry-attempt": 1, "nested": {"a": [1, 2]}})
    for bad in (
        {f"h{i}": i for i in range(10_000)},
        {"big": "x" * 20_000},
        {"n": {"inner": "y" * (1024 * 1024)}},
        {"list": list(range(100))},
    ):
        with pytest.raises(ContractError) as info:
            check_header_budget(bad)
        assert info.value.reason == "invalid_header"
    deep: dict[str, object] = {}
    cur = deep
    for _ in range(100):
        cur["d"] = {}
        cur = cur["d"]  # type: ignore[assignment]
    with pytest.raises(ContractError):
        check_header_budget(deep, Limits(max_header_entries=1000))

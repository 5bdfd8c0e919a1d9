"""Foundation pieces that need no event loop: URL handling, errors, import rule."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from relayna._urls import redact_url, split_url
from relayna.errors import (
    ChannelClosed,
    ConfigurationError,
    ContractError,
    NotFound,
    RelaynaError,
    TransportError,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import check_imports


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("amqp://guest:secret@host:5672/vh", "amqp://guest:***@host:5672/vh"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("amqps://u:p@[::1]:5671/", "amqps://u:***@[::1]:5671/"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("memory://", "memory://"),
    ],
)
def test_redact_url_hides_passwords(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_never_raises_on_garbage() -> None:
    assert "secret" not in redact_url("amqp://u:secret@host:99999999/")


@pytest.mark.parametrize("url", ["", "no-scheme", "ftp://x/", "http://h/"])
def test_split_url_rejects_unknown_schemes(url: str) -> None:
    with pytest.raises(ConfigurationError):
        split_url(url, schemes=("amqp", "amqps"))


def test_split_url_error_redacts_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        split_url("amqp://u:topsecret@host:notaport/", schemes=("amqp",))
    assert "topsecret" not in str(info.value)
    assert "***" in str(info.value)


def test_one_exception_hierarchy() -> None:
    assert issubclass(NotFound, ChannelClosed)
    assert issubclass(ChannelClosed, TransportError)
    for cls in (ConfigurationError, ContractError, TransportError):
        assert issubclass(cls, RelaynaError)
    err = NotFound("no exchange", url="amqp://u:***@h/", reply_code=404, reply_text="NOT_FOUND")
    assert err.reply_code == 404
    assert "amqp://u:***@h/" in str(err)


def test_contract_error_lists_readable_paths() -> None:
    err = ContractError("invalid task", errors=[("task_id", "missing"), ("priority", "> 255")])
    assert err.fields == ["task_id", "priority"]
    assert "task_id: missing" in str(err)
    assert err.reason == "schema"


def test_library_code_imports_no_asyncio_or_trio() -> None:
    assert check_imports.offenders() == []


def test_import_checker_catches_offenders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "relayna"
    pkg.mkdir()
    (pkg / "bad.py").write_text("import asyncio\nfrom trio import sleep\n")
    monkeypatch.setattr(check_imports, "ROOT", pkg)
    found = check_imports.offenders()
    assert len(found) == 2


@pytest.mark.parametrize(
    ("open_", "url", "valid"),
    [
        ("open_broker", "amqp://h/", "'native', 'aiormq'"),
        ("open_store", "redis://h/0", "'native', 'coredis', 'redis-py'"),
    ],
)
@pytest.mark.parametrize("adapter", ["bogus", "memory", ""])
def test_an_unknown_adapter_is_a_configuration_error(
    open_: str, url: str, valid: str, adapter: str
) -> None:
    import relayna.transport

    with pytest.raises(ConfigurationError, match=f"adapter {adapter!r}; expected one of {valid}"):
        getattr(relayna.transport, open_)(url, adapter=adapter)


def test_a_memory_url_opens_the_memory_implementation_whatever_the_adapter() -> None:
    from relayna.transport import open_broker, open_store

    def opener(cm: object) -> str:  # opening is lazy: the call only selects the opener
        return str(vars(cm)["func"].__name__)

    assert opener(open_store("memory://", adapter="coredis")) == "open_memory_store"
    assert opener(open_broker("memory://", adapter="aiormq")) == "open_memory_broker"

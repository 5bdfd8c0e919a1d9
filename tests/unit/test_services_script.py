"""scripts/services.py hygiene (issue 24, item 11), without starting servers."""

from __future__ import annotations

from pathlib import Path

from services import Services, _ephemeral_range, free_port

ROOT = Path(__file__).resolve().parents[2]


def _services(directory: Path, *, owned: bool) -> Services:
    return Services(
        directory=str(directory),
        amqp_port=20001,
        mgmt_port=20002,
        stream_port=20003,
        dist_port=20004,
        redis_port=20005,
        node="relayna-test@localhost",
        owned=owned,
    )


def test_exports_the_names_the_cli_and_examples_read(tmp_path: Path) -> None:
    env = _services(tmp_path, owned=False).env()
    assert env["RELAYNA_BROKER_URL"] == env["RELAYNA_TEST_AMQP_URL"]
    assert env["RELAYNA_STORE_URL"] == env["RELAYNA_TEST_REDIS_URL"]


def test_ports_are_outside_the_ephemeral_range() -> None:
    low, high = _ephemeral_range()
    for _ in range(50):
        port = free_port()
        assert not low <= port <= high


def test_a_directory_it_created_is_removed_on_stop(tmp_path: Path) -> None:
    owned = tmp_path / "owned"
    (owned / "rabbitmq").mkdir(parents=True)
    _services(owned, owned=True).stop()  # nothing runs: no pid files
    assert not owned.exists()
    given = tmp_path / "given"
    given.mkdir()
    _services(given, owned=False).stop()
    assert given.exists()  # a directory the caller named is the caller's


def test_crash_dumps_go_to_the_temporary_directory(tmp_path: Path) -> None:
    env = _services(tmp_path, owned=False)._rabbit_env()
    assert Path(env["ERL_CRASH_DUMP"]).is_relative_to(tmp_path)
    assert "erl_crash.dump" in (ROOT / ".gitignore").read_text().splitlines()

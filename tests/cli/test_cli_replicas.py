"""The replica-wait knob (``replica_acks`` / ``replica_wait``) through the CLI, the
env and an App, as the cluster key layout is carried."""

from __future__ import annotations

import pytest

from relayna.app import App
from relayna.cli._common import UsageError, replica_options
from relayna.cli._main import build_parser
from relayna.errors import ConfigurationError


def _worker(*flags: str) -> object:
    return build_parser().parse_args(["worker", "m:app", *flags])


def test_worker_help_names_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["worker", "--help"])
    out = capsys.readouterr().out
    assert "--replica-acks" in out
    assert "RELAYNA_STORE_REPLICA_ACKS" in out
    assert "--replica-wait" in out


@pytest.mark.parametrize("flags", [("--replica-acks", "-1"), ("--replica-wait", "0"),
                                   ("--replica-acks", "one"), ("--replica-wait", "nan")])  # fmt: skip
def test_bad_flags_are_usage_errors(flags: tuple[str, str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _worker(*flags)
    assert exc.value.code == 2


def test_flags_override_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAYNA_STORE_REPLICA_ACKS", raising=False)
    monkeypatch.delenv("RELAYNA_STORE_REPLICA_WAIT", raising=False)
    assert replica_options(_worker(), env=True) == {"replica_acks": None, "replica_wait": 1.0}
    assert replica_options(_worker(), env=False) == {}  # an App reads the env itself
    monkeypatch.setenv("RELAYNA_STORE_REPLICA_ACKS", "2")
    monkeypatch.setenv("RELAYNA_STORE_REPLICA_WAIT", "0.5")
    assert replica_options(_worker(), env=True) == {"replica_acks": 2, "replica_wait": 0.5}
    given = replica_options(_worker("--replica-acks", "0", "--replica-wait", "3"), env=True)
    assert given == {"replica_acks": 0, "replica_wait": 3.0}
    monkeypatch.setenv("RELAYNA_STORE_REPLICA_ACKS", "-3")
    with pytest.raises(UsageError, match="RELAYNA_STORE_REPLICA_ACKS"):
        replica_options(_worker(), env=True)


def test_an_app_carries_the_knob_to_its_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYNA_STORE_REPLICA_ACKS", "0")
    monkeypatch.setenv("RELAYNA_STORE_REPLICA_WAIT", "2.5")
    app = App(name="replicas", broker="memory://", store="memory://")

    @app.task("noop")
    async def noop(ctx: object, payload: object) -> None:
        return None

    consumer = app.consumer()
    assert (consumer.replica_acks, consumer.replica_wait) == (0, 2.5)
    explicit = App(name="replicas2", broker="memory://", store="memory://", replica_acks=1)
    assert explicit.replica_acks == 1
    for bad in ("x", "1.5"):
        monkeypatch.setenv("RELAYNA_STORE_REPLICA_ACKS", bad)
        with pytest.raises(ConfigurationError, match="RELAYNA_STORE_REPLICA_ACKS"):
            App(name="replicas3")
    monkeypatch.setenv("RELAYNA_STORE_REPLICA_ACKS", "")
    monkeypatch.setenv("RELAYNA_STORE_REPLICA_WAIT", "-1")
    with pytest.raises(ConfigurationError, match="RELAYNA_STORE_REPLICA_WAIT"):
        App(name="replicas4")

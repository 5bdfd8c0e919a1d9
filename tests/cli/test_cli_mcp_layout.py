"""``relayna mcp --cluster-keys``: the key layout of the stores the MCP server reads,
chosen as every other command chooses it (flag, env, a cluster URL implies it)."""

from __future__ import annotations

import pytest

from relayna.api import RuntimeConfig
from relayna.app import App
from relayna.cli._cmd_mcp import _with_layout
from relayna.cli._common import UsageError
from relayna.cli._main import build_parser

CLUSTER_URL = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001/"


def _args(*flags: str) -> object:
    return build_parser().parse_args(["mcp", "--app", "m:x", *flags])


def test_help_names_the_flag_and_its_env(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["mcp", "--help"])
    out = capsys.readouterr().out
    assert "--cluster-keys" in out
    assert "RELAYNA_STORE_CLUSTER_KEYS" in out


def test_runtime_config_takes_the_flag_and_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAYNA_STORE_CLUSTER_KEYS", raising=False)
    config = RuntimeConfig(store_url="redis://127.0.0.1:6379/0")
    assert _with_layout(config, _args()).store.cluster is False
    assert _with_layout(config, _args("--cluster-keys")).store.cluster is True
    monkeypatch.setenv("RELAYNA_STORE_CLUSTER_KEYS", "1")
    assert _with_layout(config, _args()).store.cluster is True
    assert _with_layout(config, _args("--no-cluster-keys")).store.cluster is False
    monkeypatch.setenv("RELAYNA_STORE_CLUSTER_KEYS", "perhaps")
    with pytest.raises(UsageError, match="RELAYNA_STORE_CLUSTER_KEYS"):
        _with_layout(config, _args())


def test_a_cluster_url_refuses_the_default_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAYNA_STORE_CLUSTER_KEYS", raising=False)
    config = RuntimeConfig(store_url=CLUSTER_URL)
    with pytest.raises(UsageError, match="cluster key layout"):
        _with_layout(config, _args("--no-cluster-keys"))
    # no flag: the runtime's own rule (a cluster URL implies the layout) applies on open
    assert _with_layout(config, _args()) == config


def test_an_app_takes_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAYNA_STORE_CLUSTER_KEYS", raising=False)
    app = App(name="mcplayout", broker="memory://", store="memory://")
    assert _with_layout(app, _args()).store_config.cluster is False
    assert _with_layout(app, _args("--cluster-keys")).store_config.cluster is True
    other = App(name="mcplayout2", broker="memory://", store=CLUSTER_URL)
    _with_layout(other, _args("--no-cluster-keys"))
    with pytest.raises(Exception, match="key layout is the default one"):
        other._store_layout()  # what App.open() runs: the chosen default layout is refused

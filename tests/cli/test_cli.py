"""The ``relayna`` command: help, exit codes, one-line errors, the memory broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from _cli_run import run_cli  # tests/ is on sys.path (rootdir conftest)

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _in_fixture_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(HERE)


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["worker"],
        ["declare"],
        ["topology", "show"],
        ["publish"],
        ["dev"],
        ["status"],
        ["history"],
        ["watch"],
    ],
)
def test_every_command_has_help(command: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "relayna.cli", *command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout.lower()


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys)
    assert code == 2
    assert "usage" in err.lower()


def test_unknown_command_is_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "bogus")
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("relayna: error:")


def test_topology_show_prints_plan(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "topology", "show", "_topo_fixture:topology")
    assert code == 0
    assert "kind: shared_tasks_shared_status" in out
    assert "queue     cli.tasks.q" in out
    assert "binding   cli.status.q" in out


def test_topology_show_mermaid_for_workflows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys, "topology", "show", "_topo_fixture:workflow", "--format", "mermaid"
    )
    assert code == 0
    assert out.startswith("flowchart LR")
    code, _, err = run_cli(
        capsys, "topology", "show", "_topo_fixture:topology", "--format", "mermaid"
    )
    assert code == 2
    assert "Mermaid" in err


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nope_module:x", "cannot import module"),
        ("_topo_fixture:missing", "has no attribute"),
        ("_topo_fixture:not_a_topology", "not a relayna topology"),
        ("no-colon", "MODULE:ATTRIBUTE"),
    ],
)
def test_bad_targets_are_usage_errors(
    capsys: pytest.CaptureFixture[str], target: str, message: str
) -> None:
    code, _, err = run_cli(capsys, "declare", target, "--dry-run")
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_declare_applies_plan_to_memory_broker(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys,
        "declare",
        "_topo_fixture:topology",
        "--broker-url",
        "memory://",
        "--backend",
        "trio",
    )
    assert code == 0
    assert "declared 2 exchanges, 2 queues, 2 bindings on memory://" in out


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_declare_on_a_node_list_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, amqp_url: str, backend: str
) -> None:
    """RELAYNA_BROKER_URL may list the nodes of a cluster: the first one that
    answers (here the second: nothing listens on the first) is used."""
    import socket
    from urllib.parse import urlsplit

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    real = urlsplit(amqp_url).port
    monkeypatch.setenv(
        "RELAYNA_BROKER_URL", f"amqp://guest:guest@127.0.0.1:{dead},127.0.0.1:{real}/"
    )
    code, out, err = run_cli(capsys, "declare", "_topo_fixture:topology", "--backend", backend)
    assert code == 0, err
    assert f"on amqp://guest:***@127.0.0.1:{dead},127.0.0.1:{real}/" in out


def test_declare_needs_a_broker_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RELAYNA_BROKER_URL", raising=False)
    code, _, err = run_cli(capsys, "declare", "_topo_fixture:topology")
    assert code == 2
    assert "--broker-url" in err


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_publish_prints_generated_task_id(capsys: pytest.CaptureFixture[str], backend: str) -> None:
    code, out, _ = run_cli(
        capsys,
        "publish",
        '{"payload": {"n": 1}}',
        "--topology",
        "_topo_fixture:topology",
        "--broker-url",
        "memory://",
        "--backend",
        backend,
    )
    assert code == 0
    assert len(out.strip()) == 32


@pytest.mark.parametrize(
    ("task", "code", "message"),
    [
        ('{"task_id": "bad id"}', 1, "task_id"),
        ("[1, 2]", 2, "must be an object"),
        ("{not json", 2, "not valid JSON"),
    ],
)
def test_publish_bad_input(
    capsys: pytest.CaptureFixture[str], task: str, code: int, message: str
) -> None:
    got, _, err = run_cli(
        capsys, "publish", task, "--topology", "_topo_fixture:topology", "--broker-url", "memory://"
    )
    assert got == code
    assert message in err
    assert "Traceback" not in err


def test_publish_task_on_workflow_topology_fails_cleanly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_cli(
        capsys, "publish", "{}", "--topology", "_topo_fixture:workflow", "--broker-url", "memory://"
    )
    assert code == 1
    assert "publish_to_stage" in err


def test_redacts_passwords_in_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(
        capsys,
        "declare",
        "_topo_fixture:topology",
        "--broker-url",
        "amqp://u:hunter2@127.0.0.1:1/",
    )
    assert code == 2  # an unreachable broker is a configuration error: one line, exit 2
    assert "cannot reach the broker" in err
    assert "hunter2" not in err
    assert "***" in err


def test_top_level_help_lists_every_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "relayna.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for command in (
        "dev",
        "worker",
        "serve",
        "declare",
        "topology",
        "publish",
        "status",
        "history",
        "watch",
    ):
        assert f"\n    {command} " in proc.stdout, command

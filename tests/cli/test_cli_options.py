"""The command line's options: help on each, shared logging, worker defaults."""

from __future__ import annotations

import argparse
import importlib.metadata
import re
from pathlib import Path

import pytest

from relayna.cli import build_parser
from relayna.cli._cmd_worker import build_consumer
from relayna.consumer import RetryPolicy

ROOT = Path(__file__).resolve().parents[2]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                for inner, deeper in _subparsers(sub).items():
                    found[f"{name} {inner}"] = deeper
    return found


def test_every_option_of_every_command_has_help() -> None:
    missing = []
    for name, sub in _subparsers(build_parser()).items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"relayna {name} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


@pytest.mark.parametrize("command", ["dev", "worker", "serve"])
def test_long_running_commands_share_the_logging_options(command: str) -> None:
    sub = _subparsers(build_parser())[command]
    options = {o for a in sub._actions for o in a.option_strings}
    assert {"--log-level", "--log-format", "--backend"} <= options
    if command != "worker":
        assert "--access-log" in options


def _worker_args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(
        ["worker", "_topo_fixture:handler", "--topology", "_topo_fixture:topology",
         "--broker-url", "memory://", *extra]
    )  # fmt: skip


def test_worker_publishes_lifecycle_statuses_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).parent)
    consumer = build_consumer(_worker_args(), lambda task, ctx: None)
    assert consumer.statuses.enabled
    assert consumer.statuses.include_error_message
    off = build_consumer(
        _worker_args("--no-lifecycle-statuses", "--no-error-messages"), lambda task, ctx: None
    )
    assert not off.statuses.enabled
    assert not off.statuses.include_error_message


def test_worker_retry_delay_defaults_to_the_policy_and_the_docs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(Path(__file__).parent)
    consumer = build_consumer(_worker_args("--max-retries", "2"), lambda task, ctx: None)
    assert consumer.retry_policy == RetryPolicy(max_retries=2)
    documented = re.search(r"--retry-delay-ms (\d+)", (ROOT / "docs" / "worker.md").read_text())
    assert documented is not None
    assert int(documented.group(1)) == RetryPolicy().delay_ms == consumer.retry_policy.delay_ms
    assert build_consumer(_worker_args(), lambda task, ctx: None).retry_policy is None


def test_trio_is_a_base_dependency() -> None:
    requirements = importlib.metadata.requires("relayna") or []
    base = [r for r in requirements if "extra ==" not in r]
    assert any(re.match(r"trio\b", r) for r in base), base


def test_idempotency_is_opt_in_not_taken_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELAYNA_STORE_URL", "redis://127.0.0.1:6379/0")
    assert _worker_args().store_url is None  # it would skip tasks whose ids completed before
    assert _worker_args("--store-url", "redis://h/0").store_url == "redis://h/0"

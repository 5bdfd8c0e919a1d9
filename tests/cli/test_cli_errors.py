"""Configuration errors end a command with one line and exit code 2 (issue 24, item 6)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from cli_app import make_retry_topology  # the module the worker subprocess imports
from hypothesis import given
from hypothesis import strategies as st

from relayna.cli._errors import explain, parse_inequivalent
from relayna.consumer import RetryPolicy
from relayna.errors import (
    AuthenticationError,
    BrokerConnectionError,
    ConfigurationError,
    ConnectionLost,
    PreconditionFailed,
    StoreConnectionError,
    TopologyError,
)
from relayna.transport import open_broker

HERE = Path(__file__).resolve().parent

RABBIT_TEXT = (
    "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'jobs.retry' in vhost "
    "'/': received the value '1000' of type 'signedint' but current is the value '30000' of "
    "type 'long'"
)


def test_rabbitmq_refusal_names_queue_argument_both_values_and_the_fix() -> None:
    exc = PreconditionFailed("channel closed", reply_code=406, reply_text=RABBIT_TEXT)
    explained = explain(ExceptionGroup("tg", [exc]))  # what a task group raises
    assert explained is not None
    assert explained.exit_code == 2
    message = explained.message
    assert "\n" not in message
    assert "'jobs.retry'" in message
    assert "x-message-ttl=30000" in message  # existing
    assert "x-message-ttl=1000" in message  # requested
    assert "--retry-delay-ms 30000" in message
    assert "rabbitmqctl delete_queue jobs.retry" in message


def test_rabbitmq_310_wording_is_parsed_too() -> None:
    found = parse_inequivalent(
        "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'zz' in vhost '/': "
        "received '1000' but current is '30000'"
    )
    assert found is not None
    assert (found.name, found.argument, found.requested, found.current) == (
        "zz",
        "x-message-ttl",
        "1000",
        "30000",
    )


def test_argument_missing_on_one_side_reads_as_not_set() -> None:
    found = parse_inequivalent(
        "inequivalent arg 'x-max-priority' for queue 'q' in vhost '/': received none "
        "but current is the value '10' of type 'byte'"
    )
    assert found is not None
    assert (found.requested, found.current) == (None, "10")
    explained = explain(PreconditionFailed("x", reply_text="PRECONDITION_FAILED - " + str(found)))
    assert explained is not None
    assert explained.exit_code == 2


@pytest.mark.parametrize(
    ("exc", "code", "words"),
    [
        (
            AuthenticationError("ACCESS_REFUSED", url="amqp://u:***@h/"),
            2,
            "refused the credentials",
        ),
        (BrokerConnectionError("refused", url="amqp://h:1/"), 2, "cannot reach the broker"),
        (StoreConnectionError("refused", url="redis://h:1/0"), 2, "cannot reach the store"),
        (ConfigurationError("unsupported URL scheme 'foo'"), 2, "unsupported URL scheme"),
        (ConnectionLost("connection lost"), 1, "connection lost"),
        (TopologyError("bad"), 1, "bad"),
    ],
)
def test_each_kind_of_failure_has_its_line(exc: Exception, code: int, words: str) -> None:
    explained = explain(exc)
    assert explained is not None
    assert explained.exit_code == code
    assert words in explained.message


def test_foreign_errors_and_groups_of_several_are_not_explained() -> None:
    assert explain(KeyError("x")) is None
    assert (
        explain(ExceptionGroup("two", [ConfigurationError("a"), ConfigurationError("b")])) is None
    )


@given(st.text(max_size=300))
def test_any_reply_text_is_explained_in_one_exit_2_line(text: str) -> None:
    explained = explain(PreconditionFailed(text, reply_code=406, reply_text=text))
    assert explained is not None
    assert explained.exit_code == 2


def _worker(*argv: str, cwd: Path = HERE) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYNA_") or "TEST" in k}
    return subprocess.run(
        [sys.executable, "-m", "relayna.cli", "worker", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
        env=env,
    )


def _one_line_exit_2(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("relayna: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["nope_module:handler", "--topology", "_topo_fixture:topology"], "cannot import module"),
        (["_topo_fixture:topology", "--broker-url", "memory://"], "pass --topology"),
        (["_topo_fixture:missing", "--topology", "_topo_fixture:topology"], "has no attribute"),
        (
            ["cli_app:app", "--broker-url", "foo://nowhere/"],
            "foo",
        ),
        (
            ["cli_app:app", "--broker-url", "amqp://u:secret@127.0.0.1:1/"],
            "cannot reach the broker",
        ),
        (
            ["cli_app:app", "--broker-url", "memory://", "--store-url", "redis://127.0.0.1:1/0"],
            "cannot reach the store",
        ),
    ],
)
def test_worker_startup_failures_are_one_line(argv: list[str], words: str) -> None:
    line = _one_line_exit_2(_worker(*argv, "--drain-timeout", "1"))
    assert words in line
    assert "secret" not in line


@pytest.mark.rabbitmq
def test_wrong_password_is_one_line(amqp_url: str) -> None:
    bad = amqp_url.replace("guest:guest@", "guest:wrong@")
    line = _one_line_exit_2(_worker("cli_app:app", "--broker-url", bad))
    assert "refused the credentials" in line
    assert "wrong" not in line


@pytest.mark.rabbitmq
def test_retry_delay_differing_from_the_existing_retry_queue(amqp_url: str, unique: str) -> None:
    """The newcomer's case: a .retry queue exists with another x-message-ttl."""
    topology = make_retry_topology(unique)
    retry_queue = f"cli-err-{unique}.retry"

    async def declare_first() -> None:
        async with open_broker(amqp_url) as broker:
            await topology.plan().apply(broker)
            await topology.retry_plan(topology.tasks_queue, RetryPolicy().delay_ms).apply(broker)

    async def cleanup() -> None:
        async with open_broker(amqp_url) as broker:
            for queue in (retry_queue, f"{topology.tasks_queue}.dlq", topology.tasks_queue,
                          topology.status_queue):  # fmt: skip
                await broker.delete_queue(queue)

    anyio.run(declare_first)
    try:
        env_unique = dict(os.environ, CLI_ERR_UNIQUE=unique)
        proc = subprocess.run(
            [sys.executable, "-m", "relayna.cli", "worker", "cli_app:handler",
             "--topology", "cli_app:retry_topology", "--broker-url", amqp_url,
             "--max-retries", "1", "--retry-delay-ms", "1000"],
            capture_output=True, text=True, timeout=60, check=False, cwd=HERE, env=env_unique,
        )  # fmt: skip
    finally:
        anyio.run(cleanup)
    line = _one_line_exit_2(proc)
    assert f"queue '{retry_queue}'" in line
    assert "x-message-ttl=30000" in line
    assert "x-message-ttl=1000" in line
    assert "--retry-delay-ms 30000" in line


@pytest.mark.anyio
async def test_memory_broker_refusal_is_explained_with_both_values(anyio_backend: str) -> None:
    from relayna.transport import QueueSpec

    async with open_broker("memory://") as broker:
        await broker.declare_queue(QueueSpec("jobs.retry", arguments={"x-message-ttl": 30000}))
        with pytest.raises(PreconditionFailed) as caught:
            await broker.declare_queue(QueueSpec("jobs.retry", arguments={"x-message-ttl": 1000}))
    explained = explain(caught.value)
    assert explained is not None
    assert "x-message-ttl=30000" in explained.message
    assert "--retry-delay-ms 30000" in explained.message

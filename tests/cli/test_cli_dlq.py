"""`relayna dlq list|show|replay|import` against the real Redis and RabbitMQ."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from _cli_run import run_cli  # tests/ is on sys.path (rootdir conftest)
from _dlq_records import dlq_record
from relayna.dlq import DLQStore, DLQStoreConfig
from relayna.transport import Properties, QueueSpec, open_broker, open_store

pytestmark = [pytest.mark.redis, pytest.mark.rabbitmq]


def _seed(redis_url: str, amqp_url: str, prefix: str, queue: str) -> str:
    record = dlq_record(
        1,
        queue_name=f"{queue}.dlq",
        source_queue_name=queue,
        retry_queue_name=f"{queue}.retry",
        task_id="cli-1",
        body=b'{"task_id": "cli-1"}',
    )

    async def seed() -> None:
        async with open_store(redis_url) as store, open_broker(amqp_url) as broker:
            await DLQStore(store, DLQStoreConfig(prefix=prefix)).add(record)
            for name in (queue, f"{queue}.retry", f"{queue}.dlq"):
                await broker.declare_queue(QueueSpec(name, auto_delete=False))
            await broker.publish("", f"{queue}.dlq", b"raw", Properties())

    anyio.run(seed)
    return record.dlq_id


def _take(amqp_url: str, queue: str) -> int:
    async def count() -> Any:
        async with open_broker(amqp_url) as broker:
            info = await broker.inspect_queue(queue)
            await broker.delete_queue(queue)
            return info.message_count

    return int(anyio.run(count))


def test_dlq_commands(
    capsys: pytest.CaptureFixture[str], redis_url: str, amqp_url: str, unique: str
) -> None:
    prefix = f"cli-dlq-{unique}"
    queue = f"cli-q-{unique}"
    dlq_id = _seed(redis_url, amqp_url, prefix, queue)
    common = ["--store-url", redis_url, "--prefix", prefix]
    code, out, _ = run_cli(capsys, "dlq", "list", *common, "--json")
    assert code == 0
    [item] = json.loads(out)["items"]
    assert item["dlq_id"] == dlq_id
    code, out, _ = run_cli(capsys, "dlq", "list", *common, "--task-id", "cli-1")
    assert code == 0
    assert dlq_id[:16] in out
    assert "handler_error" in out
    code, out, _ = run_cli(capsys, "dlq", "show", dlq_id, *common)
    assert code == 0
    assert "reason             handler_error" in out
    code, out, _ = run_cli(capsys, "dlq", "replay", dlq_id, *common, "--broker-url", amqp_url)
    assert code == 0
    assert f"to {queue}.retry" in out
    code, _, err = run_cli(capsys, "dlq", "replay", dlq_id, *common, "--broker-url", amqp_url)
    assert code == 1
    assert "already_replayed" in err
    code, out, _ = run_cli(
        capsys, "dlq", "replay", dlq_id, *common, "--broker-url", amqp_url, "--force", "--json"
    )
    assert code == 0
    assert json.loads(out)["replay_count"] == 2
    code, out, err = run_cli(
        capsys, "dlq", "import", f"{queue}.dlq", *common, "--broker-url", amqp_url
    )
    assert code == 0
    [imported] = out.split()
    code, out, _ = run_cli(capsys, "dlq", "show", imported, *common, "--json")
    assert json.loads(out)["source_queue_name"] == "unknown"
    code, _, err = run_cli(capsys, "dlq", "replay", imported, *common, "--broker-url", amqp_url)
    assert code == 1
    assert "source_unknown" in err
    code, _, _ = run_cli(
        capsys,
        "dlq",
        "replay",
        imported,
        *common,
        "--broker-url",
        amqp_url,
        "--target-queue",
        queue,
    )
    assert code == 0
    assert _take(amqp_url, f"{queue}.retry") == 2  # the replay and the forced one
    assert _take(amqp_url, queue) == 1
    assert _take(amqp_url, f"{queue}.dlq") == 1  # import left the message there


@pytest.mark.parametrize(
    "argv",
    [
        ["dlq", "show", "bad id"],
        ["dlq", "list", "--limit", "0"],
        ["dlq", "list", "--cursor", "garbage"],
        ["dlq", "replay", "abc"],  # no broker URL
    ],
)
def test_dlq_usage_errors(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    redis_url: str,
    argv: list[str],
) -> None:
    # scripts/services.py exports RELAYNA_BROKER_URL, the default of --broker-url
    monkeypatch.delenv("RELAYNA_BROKER_URL", raising=False)
    code, _, err = run_cli(capsys, *argv, "--store-url", redis_url)
    assert code == 2
    assert "relayna: error:" in err


def test_missing_record_is_exit_1(capsys: pytest.CaptureFixture[str], redis_url: str) -> None:
    code, _, err = run_cli(capsys, "dlq", "show", "a" * 64, "--store-url", redis_url)
    assert code == 1
    assert "no DLQ record" in err

"""Every example of ``examples/`` on the memory transports, on asyncio and trio.

Each test calls the example's ``main(...)`` (or ``run(...)``) with small
timings and checks what the example is about: the statuses a client sees,
the DLQ record, the batch positions, the aggregated result... One more test
runs every example as a script (``python examples/NAME.py``), concurrently,
and checks that each exits 0 by itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import _common  # noqa: E402
import batch_envelopes  # noqa: E402
import pipeline_worker  # noqa: E402
import retry_dlq  # noqa: E402
import routed_manual_retry  # noqa: E402
import sharded_aggregation  # noqa: E402
import shared_tasks_sse  # noqa: E402
import trio_app  # noqa: E402

SCRIPTS = (
    "shared_tasks_sse",
    "routed_manual_retry",
    "sharded_aggregation",
    "retry_dlq",
    "batch_envelopes",
    "trio_app",
    "pipeline_worker",
)


def _statuses(events: list[dict[str, Any]]) -> list[str]:
    return [e["status"] for e in events]


@pytest.mark.anyio
async def test_shared_tasks_sse_follows_the_task_to_completed() -> None:
    events = await shared_tasks_sse.main(steps=3, step_seconds=0.01, time_limit=20)
    assert _statuses(events) == ["processing", "running", "running", "running", "completed"]
    assert len({e["task_id"] for e in events}) == 1
    assert [e["meta"]["progress"] for e in events[1:4]] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert len({e["event_id"] for e in events}) == len(events)  # SSE ids are unique


@pytest.mark.anyio
async def test_routed_manual_retry_keeps_the_task_id_and_records_lineage() -> None:
    events = await routed_manual_retry.main(time_limit=20)
    assert _statuses(events) == [
        "processing", "running", "manual_retrying", "processing", "running", "completed",
    ]  # fmt: skip
    assert len({e["task_id"] for e in events}) == 1
    handoff = events[2]
    assert handoff["message"] == "handing off to OCR"
    assert handoff["meta"]["manual_retry"] == {
        "count": 1,
        "source_consumer": "examples-documents",
        "previous_task_type": routed_manual_retry.EXTRACT,
        "target_task_type": routed_manual_retry.OCR,
        "reason": "no text layer",
    }
    ocr_running = events[4]
    assert ocr_running["message"] == "OCR at 300 dpi (hand-off #1 from document.extract)"
    assert ocr_running["meta"]["manual_retry"]["count"] == 1
    assert ocr_running["meta"]["manual_retry"]["previous_task_type"] == routed_manual_retry.EXTRACT


@pytest.mark.anyio
async def test_sharded_aggregation_completes_each_parent_with_the_combined_result() -> None:
    outcome = await sharded_aggregation.main(parents=3, children=3, time_limit=20)
    assert len(outcome) == 3
    topology = sharded_aggregation.TOPOLOGY
    for parent, seen in outcome.items():
        assert seen["statuses"] == ["processing", "waiting", "completed"]
        final = seen["final"]
        assert final["result"]["total"] == sum(seen["numbers"])
        assert sorted(final["result"]["parts"]) == sorted(
            sum(seen["numbers"][i::3]) for i in range(3)
        )
        # the aggregator owning the parent's shard completed it
        assert seen["shard"] == topology.shard_for(parent)
        assert final["meta"]["aggregated_by"] == f"aggregator-{seen['shard']}"
        assert final["meta"]["aggregation_shard"] == seen["shard"]
        assert seen["children"] == [f"{parent}-part{i}" for i in range(3)]


@pytest.mark.anyio
async def test_retry_dlq_retries_the_flaky_task_and_dead_letters_the_broken_one() -> None:
    result = await retry_dlq.main(delay_ms=50, time_limit=20)
    flaky = _statuses(result["statuses"][result["flaky"]])
    broken_events = result["statuses"][result["broken"]]
    assert flaky == ["processing", "running", "retrying", "processing", "running", "completed"]
    assert _statuses(broken_events) == [
        "processing", "running", "retrying",
        "processing", "running", "retrying",
        "processing", "running", "failed",
    ]  # fmt: skip
    assert [e["message"] for e in broken_events if e["status"] == "retrying"] == [
        "Task processing failed. Scheduling retry 1/2.",
        "Task processing failed. Scheduling retry 2/2.",
    ]
    assert broken_events[-1]["message"] == "upstream said 503 (attempt 3)"

    [record] = result["dlq_records"]
    assert record.task_id == result["broken"]
    assert record.queue_name == result["dlq_queue"] == "examples.retry.tasks.dlq"
    assert record.source_queue_name == "examples.retry.tasks"
    assert (record.reason, record.retry_attempt, record.max_retries) == ("handler_error", 2, 2)
    assert record.exception_type == "UpstreamUnavailable"
    headers = result["dlq_headers"]
    assert headers["relayna-failure-reason"] == "handler_error"
    assert headers["relayna-exception-type"] == "UpstreamUnavailable"
    assert headers["relayna-retry-attempt"] == 2
    stats = result["stats"]
    assert (stats.acked, stats.retried, stats.dead_lettered) == (1, 3, 1)


@pytest.mark.anyio
async def test_batch_envelopes_fan_out_with_batch_positions() -> None:
    result = await batch_envelopes.main(size=4, time_limit=20)
    assert result["published_messages"] == 1
    assert result["batches_fanned_out"] == 1
    batch_id = result["batch_id"]
    assert sorted(result["resized"]) == [f"{batch_id}-img{i}" for i in range(4)]
    assert set(result["finals"].values()) == {"completed"}
    for i in range(4):
        event = result["resized"][f"{batch_id}-img{i}"]
        assert event["meta"] == {"batch_id": batch_id, "batch_index": i, "batch_size": 4}
        assert event["message"] == f"photo-{i}.jpg is item {i + 1} of 4"


@pytest.mark.anyio
async def test_pipeline_worker_bounds_concurrency_and_reports_progress() -> None:
    result = await pipeline_worker.main(pages=12, concurrency=3, fetch_seconds=0.01, time_limit=20)
    events = result["events"]
    assert _statuses(events) == [
        "processing", "running", "running", "running", "summary", "completed",
    ]  # fmt: skip
    progress = [e["meta"]["progress"] for e in events if e["status"] == "running"]
    assert progress == sorted(progress)
    assert progress[-1] == 1.0
    summary = events[-2]["result"]
    assert summary["fetched"] == 11
    assert summary["failed"] == [
        {"index": 6, "error": "https://broken.example.org/: connection reset"}
    ]
    assert result["writes"] == [5, 5, 1]
    assert 1 < result["max_in_flight"] <= 3


@pytest.mark.anyio
async def test_trio_app_main_refuses_asyncio_and_runs_on_trio(anyio_backend: str) -> None:
    if anyio_backend == "asyncio":
        with pytest.raises(RuntimeError, match="meant to run under trio"):
            await trio_app.main()
        return
    result = await trio_app.main(steps=2, step_seconds=0.01, time_limit=20)
    assert result["backend"] == "trio"
    assert _statuses(result["events"]) == ["processing", "running", "running", "completed"]


def test_trio_app_run_uses_the_trio_backend() -> None:
    result = trio_app.run(
        ["--broker-url", "memory://", "--store-url", "memory://"], steps=1, step_seconds=0.01
    )
    assert result["backend"] == "trio"
    assert _statuses(result["events"]) == ["processing", "running", "completed"]


def test_common_cli_reads_flags_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYNA_BROKER_URL", "amqp://u:p@h/")
    monkeypatch.setenv("RELAYNA_STORE_URL", "redis://h/1")
    monkeypatch.delenv("RELAYNA_BACKEND", raising=False)
    args = _common.parse_args("doc", [])
    assert (args.broker_url, args.store_url, args.backend) == (
        "amqp://u:p@h/",
        "redis://h/1",
        "asyncio",
    )
    args = _common.parse_args("doc", ["--broker-url", "memory://", "--backend", "trio"])
    assert (args.broker_url, args.store_url, args.backend) == ("memory://", "redis://h/1", "trio")

    seen: dict[str, Any] = {}

    async def main(*, broker_url: str, store_url: str) -> None:
        import sniffio

        seen.update(broker=broker_url, store=store_url, backend=sniffio.current_async_library())

    assert _common.cli(main, "doc", ["--store-url", "memory://", "--backend", "trio"]) == 0
    assert seen == {"broker": "amqp://u:p@h/", "store": "memory://", "backend": "trio"}


def test_every_example_runs_as_a_script_and_exits_0() -> None:
    """``python examples/NAME.py`` on the memory transports, all at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYNA_")}

    async def run_all() -> dict[str, subprocess.CompletedProcess[bytes]]:
        done: dict[str, subprocess.CompletedProcess[bytes]] = {}

        async def one(name: str) -> None:
            done[name] = await anyio.run_process(
                [sys.executable, str(EXAMPLES / f"{name}.py")], env=env, check=False
            )

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for name in SCRIPTS:
                    tg.start_soon(one, name)
        return done

    done = anyio.run(run_all)
    for name, proc in done.items():
        assert proc.returncode == 0, (name, proc.stderr.decode()[-2000:])
        assert b"completed" in proc.stdout, (name, proc.stdout.decode())

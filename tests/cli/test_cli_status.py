"""`relayna status/history` against the real Redis, `relayna watch` against `relayna dev`."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import anyio
import httpx
import pytest
from services import free_port  # scripts/ is on sys.path (tests/conftest.py)

from _cli_run import run_cli  # tests/ is on sys.path (rootdir conftest)
from _dev_process import relayna_dev  # tests/ is on sys.path (rootdir conftest)
from relayna.status import StatusStore, StatusStoreConfig
from relayna.transport import open_store


def _seed(redis_url: str, prefix: str, task_id: str, *, cluster: bool = False) -> None:
    async def write() -> None:
        async with open_store(redis_url) as store:
            config = StatusStoreConfig(prefix=prefix, ttl_seconds=60, cluster=cluster)
            status = StatusStore(store, config)
            for i, name in enumerate(["processing", "running", "completed"]):
                await status.write(
                    {
                        "task_id": task_id,
                        "status": name,
                        "event_id": f"e{i}",
                        "timestamp": f"2026-01-01T00:00:0{i}Z",
                        "meta": {"progress": i / 2},
                    }
                )

    anyio.run(write)


def test_status_and_history_read_the_store(
    capsys: pytest.CaptureFixture[str], redis_url: str, unique: str
) -> None:
    prefix, task_id = f"cli{unique}", f"task-{unique}"
    _seed(redis_url, prefix, task_id)
    code, out, _ = run_cli(capsys, "status", task_id, "--store-url", redis_url, "--prefix", prefix)
    assert code == 0
    assert "completed" in out
    code, out, _ = run_cli(
        capsys,
        "history",
        task_id,
        "--store-url",
        redis_url,
        "--prefix",
        prefix,
        "--backend",
        "trio",
    )
    assert code == 0
    assert [line.split()[1] for line in out.splitlines()] == ["processing", "running", "completed"]
    assert "[##########..........]  50%" in out
    code, _, err = run_cli(capsys, "status", f"missing-{unique}", "--store-url", redis_url)
    assert code == 1
    assert "no status stored" in err


def test_status_reads_the_cluster_key_layout_when_asked(
    capsys: pytest.CaptureFixture[str],
    redis_url: str,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefix, task_id = f"clu{unique}", f"task-{unique}"
    _seed(redis_url, prefix, task_id, cluster=True)
    base = ("status", task_id, "--store-url", redis_url, "--prefix", prefix)
    code, _, err = run_cli(capsys, *base)  # the default layout: other key names
    assert code == 1
    assert "no status stored" in err
    code, out, _ = run_cli(capsys, *base, "--cluster-keys")
    assert code == 0
    assert "completed" in out
    monkeypatch.setenv("RELAYNA_STORE_CLUSTER_KEYS", "yes")
    code, out, _ = run_cli(capsys, *base)
    assert code == 0
    assert "completed" in out
    code, _, _ = run_cli(capsys, *base, "--no-cluster-keys")
    assert code == 1
    monkeypatch.setenv("RELAYNA_STORE_CLUSTER_KEYS", "perhaps")
    code, _, err = run_cli(capsys, *base)
    assert code == 2
    assert "RELAYNA_STORE_CLUSTER_KEYS" in err


@pytest.mark.parametrize("bad", ["a b", "x" * 5000, "a\r\nb"])
def test_bad_task_ids_never_reach_the_store(capsys: pytest.CaptureFixture[str], bad: str) -> None:
    code, _, err = run_cli(capsys, "status", bad, "--store-url", "redis://127.0.0.1:1/0")
    assert code == 2
    assert "invalid task id" in err


@pytest.fixture(scope="module")
def dev_url() -> Iterator[str]:
    port = free_port()
    with relayna_dev(
        [sys.executable, "-m", "relayna.cli", "dev", "--port", str(port), "--no-studio"], port
    ) as url:
        yield url


def test_watch_follows_a_task_to_completion(
    capsys: pytest.CaptureFixture[str], dev_url: str
) -> None:
    resp = httpx.post(f"{dev_url}/tasks", json={"payload": {"steps": 2, "text": "w"}}, timeout=10)
    task_id = resp.json()["task_id"]
    code, out, _ = run_cli(capsys, "watch", task_id, "--url", dev_url)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[1] == "processing"
    assert lines[-1].split()[1] == "completed"
    assert "100%" in out


def test_watch_gives_up_on_a_task_nobody_published(
    capsys: pytest.CaptureFixture[str], dev_url: str, unique: str
) -> None:
    code, out, err = run_cli(capsys, "watch", f"nobody-{unique}", "--url", dev_url, "--wait", "0.5")
    assert code == 1
    assert out == ""
    assert f"No status found for task_id 'nobody-{unique}' after waiting 0.5 s" in err
    code, _, err = run_cli(capsys, "watch", "t", "--url", dev_url, "--wait", "-1")
    assert code == 2
    assert "--wait" in err

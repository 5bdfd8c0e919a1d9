"""Run ``relayna dev`` as a subprocess for a test (shared by cli and e2e tests).

The start deadline is enforced even if the process prints nothing (its output
is read by a thread), the output is kept for failure messages, and the
process is stopped with SIGINT (the graceful drain) and must exit 0.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pytest

READY = "relayna dev is running"


@contextmanager
def relayna_dev(
    argv: Sequence[str],
    port: int,
    *,
    start_timeout: float = 30.0,
    stop_timeout: float = 30.0,
    ready: str = READY,
    output: list[str] | None = None,
    cwd: str | None = None,
) -> Iterator[str]:
    """Start ``argv`` (a ``relayna dev`` or ``relayna serve`` command line); yield its
    base URL once a line contains ``ready``. ``output`` collects every line.

    The process runs on the memory transports unless ``argv`` names URLs: the
    ``RELAYNA_BROKER_URL`` / ``RELAYNA_STORE_URL`` that scripts/services.py
    exports are not passed on.
    """
    env = {k: v for k, v in os.environ.items()
           if k not in {"RELAYNA_BROKER_URL", "RELAYNA_STORE_URL"}}  # fmt: skip
    with running(argv, ready, start_timeout=start_timeout, stop_timeout=stop_timeout,
                 output=output, env=env, cwd=cwd):  # fmt: skip
        yield f"http://127.0.0.1:{port}"


@contextmanager
def running(
    argv: Sequence[str],
    ready: str,
    *,
    start_timeout: float = 30.0,
    stop_timeout: float = 30.0,
    output: list[str] | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> Iterator[str]:
    """Start ``argv``; yield the first output line containing ``ready``."""
    name = " ".join(argv[1:3])
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output = [] if output is None else output

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(
                    f"{' '.join(argv[1:3])} not ready after {start_timeout} s:\n{''.join(output)}"
                )
            if line is None:
                pytest.fail(f"{name} exited ({proc.wait()}) before it was ready:\n"
                            + "".join(output))  # fmt: skip
            output.append(line)
            if ready in line:
                break
        yield line
    finally:
        proc.send_signal(signal.SIGINT)  # the graceful drain
        try:
            code = proc.wait(timeout=stop_timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    # Only reached when the test body passed: then the drain must succeed too.
    while not lines.empty():
        output.append(lines.get() or "")
    assert code == 0, f"{' '.join(argv[1:3])} exited with {code}:\n{''.join(output)}"

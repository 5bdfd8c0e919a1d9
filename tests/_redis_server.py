"""A throwaway redis-server for tests that must not touch the shared one.

``redis_server`` starts ``redis-server`` with persistence off (``--save ""
--appendonly no``) in a scratch directory, waits until every listener it was
given accepts connections, yields the process and stops it afterwards.
``admin`` sends a command to a server from a separate (redis-py, sync)
client, e.g. ``CLIENT KILL`` or ``SCRIPT FLUSH`` on such a private server.
Import as ``from _redis_server import admin, redis_server`` (tests/ is on sys.path:
rootdir conftest).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import anyio.to_thread
import pytest
import redis

__all__ = ["admin", "redis_server"]


@contextmanager
def redis_server(
    *args: str,
    port: int | None = None,
    tls_port: int | None = None,
    unix_socket: str | Path | None = None,
    bind: Sequence[str] = ("127.0.0.1",),
    directory: str | Path | None = None,
    logfile: str | Path | None = None,
    start_timeout: float = 10.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``redis-server`` for the duration of the ``with`` block; yield its process.

    The command line is ``--port`` (``port``, or 0: no plaintext listener),
    ``--tls-port`` (if ``tls_port``), ``--bind`` (``bind``: keep 127.0.0.1 in
    it, the listeners are probed there), ``--unixsocket`` (if
    ``unix_socket``), ``--save "" --appendonly no --dir`` (``directory``, or a
    temporary directory removed afterwards), ``--logfile`` (if ``logfile``),
    then ``args`` (further options, e.g. ``"--requirepass", "pw"``).

    Fails the test (``pytest.fail``) if ``redis-server`` is not installed, or
    if it exits or a listener does not accept within ``start_timeout`` seconds;
    the message then ends with the last lines of ``logfile`` if there is one.
    The server is terminated (killed if it does not exit within 10 s) when the
    block is left.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (not found on PATH)")
    with ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="redis-"))
        argv = [binary, "--port", str(port or 0)]
        if tls_port is not None:
            argv += ["--tls-port", str(tls_port)]
        argv += ["--bind", *bind]
        if unix_socket is not None:
            argv += ["--unixsocket", str(unix_socket)]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(directory)]
        if logfile is not None:
            argv += ["--logfile", str(logfile)]
        argv += args
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        try:
            tcp_ports = [p for p in (port, tls_port) if p]
            _wait_accepting(proc, tcp_ports, unix_socket, start_timeout, logfile)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_accepting(
    proc: subprocess.Popen[bytes],
    ports: Sequence[int],
    unix_socket: str | Path | None,
    timeout: float,
    logfile: str | Path | None,
) -> None:
    """Return once every TCP port (on 127.0.0.1) and the unix socket accept."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"redis-server exited with {proc.returncode}{_tail(logfile)}")
        try:
            for p in ports:
                socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
            if unix_socket is not None:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(str(unix_socket))
            return
        except OSError as error:
            if time.monotonic() > deadline:
                listeners = [f"127.0.0.1:{p}" for p in ports]
                listeners += [str(unix_socket)] if unix_socket is not None else []
                pytest.fail(
                    f"redis-server did not accept on {', '.join(listeners)} within {timeout} s "
                    f"({error}){_tail(logfile)}"
                )
            time.sleep(0.05)


def _tail(logfile: str | Path | None, lines: int = 20) -> str:
    """``":\\n"`` and the last ``lines`` lines of the log, or ``""`` without one."""
    if logfile is None:
        return ""
    try:
        text = Path(logfile).read_text(errors="replace")
    except OSError as error:
        return f" (no log: {error})"
    return ":\n" + "\n".join(text.splitlines()[-lines:])


async def admin(url: str, *command: object) -> object:
    """``command`` sent from a separate (redis-py, sync) client, in a worker thread."""
    return await anyio.to_thread.run_sync(lambda: _admin(url, *command))


def _admin(url: str, *command: object) -> object:
    with redis.Redis.from_url(url) as client:
        return client.execute_command(*command)

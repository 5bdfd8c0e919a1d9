#!/usr/bin/env python3
"""Install, start and stop the real RabbitMQ and Redis used by relayna's tests.

Also installs Debian's chromium for the browser test of ``relayna dev``.

Usage::

    python scripts/services.py start [--dir DIR]   # prints `export NAME=value` lines
    python scripts/services.py start --rabbitmq-cluster 3   # and a 3-node RabbitMQ cluster
    python scripts/services.py stop --dir DIR
    python scripts/services.py run -- CMD ...       # start, run CMD with the URLs, stop
    python scripts/services.py start --redis-cluster  # also a 6-node Redis Cluster

The servers run as plain processes on free loopback ports in a temporary
directory (no systemd, no Docker). Missing Debian packages are installed with
apt-get when running as root. Exported variables:

    RELAYNA_TEST_AMQP_URL, RELAYNA_TEST_RABBITMQ_MGMT_URL,
    RELAYNA_TEST_RABBITMQ_NODE, RELAYNA_TEST_RABBITMQ_DIR,
    RELAYNA_TEST_REDIS_URL, RELAYNA_TEST_REDIS_PORT, RELAYNA_TEST_SERVICES_DIR
    RELAYNA_BROKER_URL, RELAYNA_STORE_URL    (the names the CLI and examples read)
    RELAYNA_TEST_REDIS_CLUSTER_URL, RELAYNA_TEST_REDIS_CLUSTER_DIR
                                             (with --redis-cluster: scripts/redis_cluster.py)

A temporary directory the script created is removed when the services stop.
Erlang crash dumps go into that directory, never into the working tree.

Ports are picked below the kernel's ephemeral range
(``/proc/sys/net/ipv4/ip_local_port_range``): outgoing connections of any
process take their local port from that range, so a port outside it stays
free while a restarted RabbitMQ node is down. The Erlang distribution port is
picked anew on every (re)start, and a start that fails because a port was
taken is retried on new ones.

The module is also imported by ``tests/conftest.py`` (``Services.start()``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
REDIS_SERVER = "redis-server"


class ServiceError(RuntimeError):
    """A service could not be installed or started."""


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


#: Where :func:`free_port` looks: above the well-known/registered ports that local
#: servers like to use, below the ephemeral range.
PORT_FLOOR = 20000


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A free loopback port outside the ephemeral range (see the module docstring)."""
    low, high = _ephemeral_range()
    start, end = (PORT_FLOOR, low - 1) if low - 1 > PORT_FLOOR else (max(1024, high + 1), 65535)
    for _ in range(200):
        port = random.randint(start, end)
        if _is_free(port):
            return port
    # Fall back to a kernel-chosen port (inside the ephemeral range).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log(msg: str) -> None:
    print(f"[services] {msg}", file=sys.stderr, flush=True)


def ensure_installed() -> None:
    missing = []
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        missing.append("rabbitmq-server")
    if shutil.which(REDIS_SERVER) is None:
        missing.append("redis-server")
    if shutil.which("chromium") is None:
        missing.append("chromium")  # the browser test of `relayna dev`
    if shutil.which("prometheus") is None:
        missing.append("prometheus")  # the metrics scrape test (started per test)
    if not missing:
        return
    if os.geteuid() != 0:
        raise ServiceError(f"missing {' '.join(missing)} and not root: install them with apt-get")
    _log(f"installing {' '.join(missing)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    # The Debian package starts nothing without systemd; make sure no stray node runs.


@dataclass
class Services:
    directory: str
    amqp_port: int
    mgmt_port: int
    stream_port: int
    dist_port: int
    redis_port: int
    node: str
    # Optional TLS listener (``Services.start(tls=(certfile, keyfile, cafile))``).
    amqps_port: int = 0
    tls: tuple[str, str, str] | None = None
    # The directory was created by start(): stop() removes it.
    owned: bool = False
    # Extra node settings for a private node: lines appended to rabbitmq.conf,
    # and an Erlang term list for advanced.config (keys the .conf schema lacks).
    rabbitmq_conf: str = ""
    rabbitmq_advanced: str = ""

    # -- derived -------------------------------------------------------------
    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"

    @property
    def amqps_url(self) -> str:
        """The TLS listener (host ``localhost``, the usual certificate name); no query."""
        if not self.amqps_port:
            raise ServiceError("started without tls=(certfile, keyfile, cafile)")
        return f"amqps://guest:guest@localhost:{self.amqps_port}/"

    @property
    def mgmt_url(self) -> str:
        return f"http://guest:guest@127.0.0.1:{self.mgmt_port}/"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def env(self) -> dict[str, str]:
        return {
            "RELAYNA_TEST_AMQP_URL": self.amqp_url,
            "RELAYNA_TEST_RABBITMQ_MGMT_URL": self.mgmt_url,
            "RELAYNA_TEST_RABBITMQ_NODE": self.node,
            "RELAYNA_TEST_RABBITMQ_DIR": str(Path(self.directory) / "rabbitmq"),
            "RELAYNA_TEST_REDIS_URL": self.redis_url,
            "RELAYNA_TEST_REDIS_PORT": str(self.redis_port),
            "RELAYNA_TEST_SERVICES_DIR": self.directory,
            # What `relayna dev/worker/serve/...` and the examples read.
            "RELAYNA_BROKER_URL": self.amqp_url,
            "RELAYNA_STORE_URL": self.redis_url,
        }

    # -- lifecycle -----------------------------------------------------------
    @classmethod
    def start(
        cls,
        directory: str | None = None,
        *,
        tls: tuple[str, str, str] | None = None,
        rabbitmq_conf: str = "",
        rabbitmq_advanced: str = "",
    ) -> Services:
        """Start Redis and RabbitMQ; with ``tls=(certfile, keyfile, cafile)`` RabbitMQ
        also listens for AMQPS on ``amqps_port`` (no client certificate required).

        ``rabbitmq_conf`` (``rabbitmq.conf`` lines, e.g. ``"consumer_timeout =
        2000"``) and ``rabbitmq_advanced`` (the body of ``advanced.config``, e.g.
        ``"[{rabbit, [{channel_tick_interval, 200}]}]."``) configure a private
        node for a fault test; the shared test node uses neither."""
        ensure_installed()
        owned = directory is None
        d = Path(directory or tempfile.mkdtemp(prefix="relayna-services-"))
        d.mkdir(parents=True, exist_ok=True)
        svc = cls(
            directory=str(d),
            amqp_port=free_port(),
            mgmt_port=free_port(),
            stream_port=free_port(),
            dist_port=free_port(),
            redis_port=free_port(),
            node=f"relayna-{os.getpid()}-{free_port()}@localhost",
            amqps_port=free_port() if tls else 0,
            tls=tls,
            owned=owned,
            rabbitmq_conf=rabbitmq_conf,
            rabbitmq_advanced=rabbitmq_advanced,
        )
        svc._save()
        try:
            svc.start_redis()
            svc.start_rabbitmq()
        except BaseException:
            svc.stop()
            raise
        return svc

    @classmethod
    def load(cls, directory: str) -> Services:
        data = json.loads((Path(directory) / "services.json").read_text())
        if data.get("tls"):
            data["tls"] = tuple(data["tls"])
        return cls(**data)

    def _rabbit_env(self) -> dict[str, str]:
        r = Path(self.directory) / "rabbitmq"
        return dict(
            os.environ,
            HOME=str(r),
            RABBITMQ_MNESIA_BASE=str(r / "mnesia"),
            RABBITMQ_LOG_BASE=str(r / "log"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(r / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(r / "pid"),
            # erl_crash.dump would otherwise land in the current directory.
            ERL_CRASH_DUMP=str(r / "erl_crash.dump"),
            RABBITMQ_CONFIG_FILE=str(r / "rabbitmq"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(r / "advanced.config"),
            RABBITMQ_SERVER_START_ARGS=(
                f'-rabbitmq_management tcp_config [{{port,{self.mgmt_port}}},{{ip,"127.0.0.1"}}] '
                f"-rabbitmq_stream tcp_listeners [{self.stream_port}]"
            ),
        )

    def rabbitmqctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self._rabbit_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start_rabbitmq(self) -> None:
        r = Path(self.directory) / "rabbitmq"
        (r / "mnesia").mkdir(parents=True, exist_ok=True)
        (r / "log").mkdir(parents=True, exist_ok=True)
        (r / "enabled_plugins").write_text("[rabbitmq_management,rabbitmq_stream].\n")
        conf = "loopback_users = none\n"
        if self.tls:
            certfile, keyfile, cafile = self.tls
            conf += (
                f"listeners.ssl.default = 127.0.0.1:{self.amqps_port}\n"
                f"ssl_options.cacertfile = {cafile}\n"
                f"ssl_options.certfile = {certfile}\n"
                f"ssl_options.keyfile = {keyfile}\n"
                "ssl_options.verify = verify_none\n"
                "ssl_options.fail_if_no_peer_cert = false\n"
            )
        if self.rabbitmq_conf:
            conf += self.rabbitmq_conf.rstrip("\n") + "\n"
        (r / "rabbitmq.conf").write_text(conf)
        if self.rabbitmq_advanced:
            (r / "advanced.config").write_text(self.rabbitmq_advanced.rstrip("\n") + "\n")
        self.launch_rabbitmq()

    def launch_rabbitmq(self, attempts: int = 3) -> None:
        """(Re)start the node with its existing data directory and wait until ready.

        The distribution port is new on each start; a start that fails (e.g. a
        port taken meanwhile) is retried on a new distribution port.
        """
        for attempt in range(1, attempts + 1):
            self.dist_port = free_port()
            self._save()
            try:
                self._launch_rabbitmq_once()
                return
            except ServiceError as exc:
                if attempt == attempts:
                    raise
                _log(f"RabbitMQ start failed (attempt {attempt}), retrying: {str(exc)[:300]}")
                self.stop_rabbitmq()

    def _save(self) -> None:
        (Path(self.directory) / "services.json").write_text(json.dumps(asdict(self)))

    def _launch_rabbitmq_once(self) -> None:
        r = Path(self.directory) / "rabbitmq"
        started = time.monotonic()
        with open(r / "out.log", "ab") as out:
            subprocess.Popen(
                [str(RABBIT_BIN / "rabbitmq-server")],
                env=self._rabbit_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        res = self.rabbitmqctl("wait", str(r / "pid"), "--timeout", "120", timeout=150)
        if res.returncode != 0:
            tail = (r / "out.log").read_text(errors="replace")[-3000:]
            raise ServiceError(f"RabbitMQ did not start:\n{res.stdout}{res.stderr}\n{tail}")
        # `wait` returns when the app runs; also wait for the AMQP listener.
        _wait_port(self.amqp_port, 60, "RabbitMQ AMQP")
        if self.amqps_port:
            _wait_port(self.amqps_port, 60, "RabbitMQ AMQPS")
        _log(f"RabbitMQ ready on {self.amqp_port} in {time.monotonic() - started:.1f}s")

    def stop_rabbitmq(self) -> None:
        if (Path(self.directory) / "rabbitmq" / "pid").exists():
            self.rabbitmqctl("stop", timeout=60)

    def restart_rabbitmq(self) -> None:
        """Stop the node and start it again on the same ports and data (for fault tests)."""
        self.stop_rabbitmq()
        self.launch_rabbitmq()

    def start_redis(self) -> None:
        d = Path(self.directory)
        self.launch_redis()
        _log(f"Redis ready on {self.redis_port} ({d})")

    def launch_redis(self) -> None:
        d = Path(self.directory)
        subprocess.run(
            [
                REDIS_SERVER,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--dir",
                str(d),
                "--pidfile",
                str(d / "redis.pid"),
                "--logfile",
                str(d / "redis.log"),
            ],
            check=True,
        )
        _wait_port(self.redis_port, 30, "Redis")

    def stop_redis(self) -> None:
        pidfile = Path(self.directory) / "redis.pid"
        if pidfile.exists():
            try:
                pid = int(pidfile.read_text().strip())
                os.kill(pid, 15)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.05)
            except (ValueError, ProcessLookupError):
                pass
            pidfile.unlink(missing_ok=True)

    def restart_redis(self) -> None:
        self.stop_redis()
        self.launch_redis()

    def stop(self) -> None:
        """Stop both servers; remove the directory when :meth:`start` created it."""
        try:
            self.stop_rabbitmq()
        finally:
            self.stop_redis()
            if self.owned:
                shutil.rmtree(self.directory, ignore_errors=True)


def start_prometheus(
    directory: Path, targets: list[str], port: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start Debian's ``prometheus`` scraping ``targets`` (``host:port``) every second.

    Returns the process and its base URL (ready: ``/-/ready`` answered). The
    package's system service is never used; stop it with ``proc.terminate()``.
    """
    import urllib.request

    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    config = directory / "prometheus.yml"
    quoted = ", ".join(f"'{t}'" for t in targets)
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: relayna\n    static_configs:\n      - targets: [{quoted}]\n"
    )
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=open(directory / "prometheus.log", "ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(
                f"prometheus exited: {(directory / 'prometheus.log').read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    _log(f"Prometheus ready on {port}")
                    return proc, url
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise ServiceError("prometheus did not become ready within 60s")


def _wait_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise ServiceError(f"{what} is not listening on 127.0.0.1:{port} after {timeout}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start", help="start both services, print export lines")
    p_start.add_argument("--dir", default=None, help="directory for the servers' data and logs")
    p_start.add_argument(
        "--redis-cluster",
        action="store_true",
        help="also start a 6-node Redis Cluster (3 primaries, 3 replicas) in DIR/redis-cluster",
    )
    p_start.add_argument(
        "--rabbitmq-cluster",
        type=int,
        default=0,
        metavar="N",
        help="also start an N-node RabbitMQ cluster (scripts/rabbitmq_cluster.py); exports "
        "RELAYNA_TEST_RABBITMQ_CLUSTER_URL and _DIR",
    )
    p_stop = sub.add_parser("stop", help="stop the services started in DIR")
    p_stop.add_argument("--dir", required=True, help="the directory `start` printed")
    p_run = sub.add_parser("run", help="start, run a command with the URLs exported, stop")
    p_run.add_argument("command", nargs=argparse.REMAINDER)
    sub.add_parser("install", help="install rabbitmq-server and redis-server if missing")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "install":
            ensure_installed()
            return 0
        if args.cmd == "start":
            svc = Services.start(args.dir)
            env = svc.env()
            if args.redis_cluster:
                try:
                    cluster = RedisCluster.start(str(Path(svc.directory) / "redis-cluster"))
                except BaseException:
                    svc.stop()
                    raise
                env.update(cluster.env())
            if args.rabbitmq_cluster:
                from rabbitmq_cluster import RabbitCluster

                try:
                    rabbit = RabbitCluster.start(
                        args.rabbitmq_cluster, str(Path(svc.directory) / "rabbitmq-cluster")
                    )
                except BaseException:
                    svc.stop()
                    raise
                env.update(rabbit.env())
            lines = "".join(f"export {k}={v}\n" for k, v in env.items())
            (Path(svc.directory) / "env.sh").write_text(lines)
            print(lines, end="")
            return 0
        if args.cmd == "stop":
            cluster_dir = Path(args.dir) / "redis-cluster"
            if (cluster_dir / "redis-cluster.json").exists():
                RedisCluster.load(str(cluster_dir)).stop()
            if (Path(args.dir) / "rabbitmq-cluster" / "cluster.json").exists():
                from rabbitmq_cluster import RabbitCluster

                RabbitCluster.load(str(Path(args.dir) / "rabbitmq-cluster")).stop()
            Services.load(args.dir).stop()
            return 0
        command = (
            [c for c in args.command if c != "--"] if args.command[:1] == ["--"] else args.command
        )
        if not command:
            parser.error("run needs a command")
        svc = Services.start()
        try:
            return subprocess.call(command, env=dict(os.environ, **svc.env()))
        finally:
            svc.stop()
    except (ServiceError, ClusterError) as exc:
        print(f"services: {exc}", file=sys.stderr)
        return 3


from redis_cluster import ClusterError, RedisCluster  # noqa: E402 (it imports free_port from here)

if __name__ == "__main__":
    sys.exit(main())

"""A RabbitMQ cluster of N nodes on one machine, for the cluster tests and benchmark.

Each node has its own node name (``relayna-c<pid>-<token>-<i>@localhost``),
AMQP, management, stream and distribution ports and data directory; all share
one Erlang cookie (one ``HOME`` holding ``.erlang.cookie``). Node 1 starts
first, the others start beside it and join it with ``rabbitmqctl
join_cluster``. Every node runs one scheduler thread without busy-waiting
(``+S 1:1 +sbwt none``), so three nodes stay cheap on a shared 2-core box.

::

    cluster = RabbitCluster.start(3)
    cluster.amqp_url                # amqp://guest:guest@127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/
    cluster.kill(0)                 # SIGKILL node 1's Erlang VM
    cluster.restart(0)              # same ports and data: it rejoins the cluster
    cluster.queue_leader("tasks")   # index of the node leading a quorum queue / stream
    cluster.stop()

``scripts/services.py start --rabbitmq-cluster 3`` starts one from the shell
(``RELAYNA_TEST_RABBITMQ_CLUSTER_DIR``/``_URL`` are exported); tests use the
session fixture ``rabbit_cluster`` (tests/integration/cluster/conftest.py).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from services import RABBIT_BIN, ServiceError, _log, _wait_port, ensure_installed, free_port

__all__ = ["RabbitCluster", "RabbitNode", "shared_cluster"]

#: One scheduler, no busy-waiting: the nodes share 2 cores with everything else.
ERL_ARGS = "+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none"


@dataclass
class RabbitNode:
    index: int
    name: str
    amqp_port: int
    mgmt_port: int
    stream_port: int
    dist_port: int

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/"


@dataclass
class RabbitCluster:
    directory: str
    nodes: list[RabbitNode] = field(default_factory=list)
    owned: bool = False

    # -- derived -------------------------------------------------------------
    @property
    def amqp_url(self) -> str:
        """One URL naming every node (relayna's multi-host form)."""
        hosts = ",".join(f"127.0.0.1:{n.amqp_port}" for n in self.nodes)
        return f"amqp://guest:guest@{hosts}/"

    @property
    def amqp_urls(self) -> list[str]:
        return [n.amqp_url for n in self.nodes]

    def env(self) -> dict[str, str]:
        return {
            "RELAYNA_TEST_RABBITMQ_CLUSTER_DIR": self.directory,
            "RELAYNA_TEST_RABBITMQ_CLUSTER_URL": self.amqp_url,
        }

    def _home(self) -> Path:
        return Path(self.directory) / "home"

    def _node_dir(self, node: RabbitNode) -> Path:
        return Path(self.directory) / f"node{node.index + 1}"

    def _env(self, node: RabbitNode) -> dict[str, str]:
        r = self._node_dir(node)
        return dict(
            os.environ,
            HOME=str(self._home()),  # the shared .erlang.cookie
            RABBITMQ_MNESIA_BASE=str(r / "mnesia"),
            RABBITMQ_LOG_BASE=str(r / "log"),
            RABBITMQ_NODENAME=node.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(node.amqp_port),
            RABBITMQ_DIST_PORT=str(node.dist_port),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(r / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(r / "pid"),
            ERL_CRASH_DUMP=str(r / "erl_crash.dump"),
            RABBITMQ_CONFIG_FILE=str(r / "rabbitmq"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=ERL_ARGS,
            RABBITMQ_SERVER_START_ARGS=(
                f'-rabbitmq_management tcp_config [{{port,{node.mgmt_port}}},{{ip,"127.0.0.1"}}] '
                f"-rabbitmq_stream tcp_listeners [{node.stream_port}]"
            ),
        )

    def rabbitmqctl(
        self, index: int, *args: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        node = self.nodes[index]
        return subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-n", node.name, *args],
            env=self._env(node),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _ctl(self, index: int, *args: str, timeout: float = 120) -> str:
        res = self.rabbitmqctl(index, *args, timeout=timeout)
        if res.returncode != 0:
            raise ServiceError(
                f"rabbitmqctl -n {self.nodes[index].name} {' '.join(args)} failed: "
                f"{res.stdout}{res.stderr}"
            )
        return res.stdout

    # -- lifecycle -----------------------------------------------------------
    @classmethod
    def start(cls, size: int = 3, directory: str | None = None) -> RabbitCluster:
        """Start ``size`` nodes and join nodes 2.. to node 1; ready when it returns."""
        if size < 1:
            raise ServiceError("a cluster needs at least one node")
        ensure_installed()
        owned = directory is None
        d = Path(directory or tempfile.mkdtemp(prefix="relayna-rabbit-cluster-"))
        token = secrets.token_hex(3)
        cluster = cls(directory=str(d), owned=owned)
        for i in range(size):
            cluster.nodes.append(
                RabbitNode(
                    index=i,
                    name=f"relayna-c{os.getpid()}-{token}-{i + 1}@localhost",
                    amqp_port=free_port(),
                    mgmt_port=free_port(),
                    stream_port=free_port(),
                    dist_port=free_port(),
                )
            )
        home = cluster._home()
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        for node in cluster.nodes:
            r = cluster._node_dir(node)
            (r / "mnesia").mkdir(parents=True, exist_ok=True)
            (r / "log").mkdir(parents=True, exist_ok=True)
            (r / "enabled_plugins").write_text("[rabbitmq_management,rabbitmq_stream].\n")
            (r / "rabbitmq.conf").write_text("loopback_users = none\n")
        cluster._save()
        started = time.monotonic()
        try:
            with ThreadPoolExecutor(size) as pool:
                list(pool.map(cluster._launch, range(size)))
            for i in range(1, size):
                cluster._ctl(i, "stop_app")
                cluster._ctl(i, "join_cluster", cluster.nodes[0].name)
                cluster._ctl(i, "start_app")
                _wait_port(cluster.nodes[i].amqp_port, 60, f"RabbitMQ node {i + 1} AMQP")
            cluster.wait_running(size)
        except BaseException:
            cluster.stop()
            raise
        _log(f"RabbitMQ cluster of {size} ready in {time.monotonic() - started:.1f}s ({d})")
        return cluster

    @classmethod
    def load(cls, directory: str) -> RabbitCluster:
        data = json.loads((Path(directory) / "cluster.json").read_text())
        data["nodes"] = [RabbitNode(**n) for n in data["nodes"]]
        return cls(**data)

    def _save(self) -> None:
        (Path(self.directory) / "cluster.json").write_text(json.dumps(asdict(self)))

    def _launch(self, index: int) -> None:
        node = self.nodes[index]
        r = self._node_dir(node)
        for attempt in range(1, 4):
            with open(r / "out.log", "ab") as out:
                subprocess.Popen(
                    [str(RABBIT_BIN / "rabbitmq-server")],
                    env=self._env(node),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            res = self.rabbitmqctl(index, "wait", str(r / "pid"), "--timeout", "120", timeout=150)
            if res.returncode == 0:
                _wait_port(node.amqp_port, 60, f"RabbitMQ node {index + 1} AMQP")
                return
            if attempt == 3:
                tail = (r / "out.log").read_text(errors="replace")[-3000:]
                raise ServiceError(f"node {node.name} did not start:\n{res.stderr}\n{tail}")
            _log(f"node {index + 1} start failed (attempt {attempt}); new distribution port")
            self._kill_pid(r / "pid")
            node.dist_port = free_port()
            self._save()

    def wait_running(self, count: int, timeout: float = 120) -> None:
        """Wait until ``count`` nodes are running members (as node 1... sees it)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for i in self.alive():
                res = self.rabbitmqctl(i, "cluster_status", "--formatter", "json", timeout=30)
                if res.returncode == 0:
                    running = json.loads(res.stdout).get("running_nodes", [])
                    if len(running) >= count:
                        return
                    last = res.stdout
                    break
            time.sleep(0.5)
        raise ServiceError(f"cluster did not reach {count} running nodes: {last[-1000:]}")

    def alive(self) -> list[int]:
        """Indexes of the nodes whose VM is running."""
        return [n.index for n in self.nodes if _pid_alive(self._node_dir(n) / "pid")]

    @staticmethod
    def _kill_pid(pidfile: Path) -> None:
        try:
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGKILL)
            for _ in range(200):
                os.kill(pid, 0)
                time.sleep(0.025)
        except (OSError, ValueError):
            pass
        pidfile.unlink(missing_ok=True)

    def kill(self, index: int) -> None:
        """SIGKILL node ``index``'s Erlang VM (no shutdown: a crashed machine)."""
        self._kill_pid(self._node_dir(self.nodes[index]) / "pid")
        _log(f"killed node {index + 1} ({self.nodes[index].name})")

    def restart(self, index: int) -> None:
        """Start a killed node again: same name, ports and data; it rejoins."""
        self._launch(index)
        self.wait_running(len(self.alive()))

    def node_of_port(self, port: int) -> int:
        for node in self.nodes:
            if node.amqp_port == port:
                return node.index
        raise ServiceError(f"no node listens for AMQP on {port}")

    def queue_leader(self, queue: str) -> int:
        """Index of the node leading the quorum queue or stream ``queue``."""
        for i in self.alive():
            res = self.rabbitmqctl(
                i, "list_queues", "name", "leader", "--formatter", "json", timeout=30
            )
            if res.returncode != 0:
                continue
            for row in json.loads(res.stdout):
                if row.get("name") == queue:
                    leader = row.get("leader")
                    for node in self.nodes:
                        if node.name == leader:
                            return node.index
        raise ServiceError(f"no leader found for queue {queue!r}")

    def stop(self) -> None:
        """Stop every node (SIGKILL: their data is thrown away) and the directory."""
        for node in self.nodes:
            self._kill_pid(self._node_dir(node) / "pid")
        if self.owned:
            shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def shared_cluster(size: int = 3) -> Iterator[RabbitCluster]:
    """The cluster named by ``RELAYNA_TEST_RABBITMQ_CLUSTER_DIR`` (left running),
    else a new one of ``size`` nodes, stopped on exit."""
    directory = os.environ.get("RELAYNA_TEST_RABBITMQ_CLUSTER_DIR")
    if directory:
        yield RabbitCluster.load(directory)
        return
    cluster = RabbitCluster.start(size)
    try:
        yield cluster
    finally:
        cluster.stop()


def _pid_alive(pidfile: Path) -> bool:
    try:
        os.kill(int(pidfile.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True

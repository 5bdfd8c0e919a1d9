"""A 6-node Redis Cluster (3 primaries, 3 replicas) on loopback ports, for tests.

``RedisCluster.start()`` starts six ``redis-server --cluster-enabled yes``
processes on free loopback ports in a directory of their own, joins them with
``redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`` and
waits until ``CLUSTER INFO`` says ``cluster_state:ok`` on every node and
every primary has its replica attached.

Fault helpers: :meth:`RedisCluster.kill` (SIGKILL one node),
:meth:`RedisCluster.fail_primary` (kill a slot's primary, wait for the promotion),
:meth:`RedisCluster.restart` (the same port and node id: its
``nodes.conf`` is kept, so it rejoins as a replica of whoever replaced it),
:meth:`RedisCluster.primary_of` (the port of the primary serving a slot or a
key) and :meth:`RedisCluster.wait_ok` (the cluster serves every slot again).

``cluster-node-timeout`` is 1000 ms (Redis's default is 15000): a killed
primary is marked failed and its replica promoted within about 2 s, which
keeps failover tests short. Production clusters should keep a larger value
(a short one turns a GC pause or a slow disk into a failover). Persistence is
off (``save ""``, ``appendonly no``) to keep six servers' CPU modest.

Only the standard library: ``scripts/services.py`` and ``tests/conftest.py``
import it before relayna's own dependencies are known to be installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["NODE_TIMEOUT_MS", "ClusterError", "RedisCluster"]

#: ``cluster-node-timeout`` of the test cluster (see the module docstring).
NODE_TIMEOUT_MS = 1000
_NODES = 6


class ClusterError(RuntimeError):
    """The cluster could not be started or did not become healthy."""


def _cli(port: int, *args: str, timeout: float = 10) -> str:
    res = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return res.stdout


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisCluster:
    directory: str
    ports: list[int]
    owned: bool = False
    killed: list[int] = field(default_factory=list)

    # -- derived -------------------------------------------------------------
    @property
    def url(self) -> str:
        """``redis+cluster://`` with every node as a seed (relayna's cluster URL form)."""
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        return f"redis+cluster://{hosts}/"

    def env(self) -> dict[str, str]:
        return {
            "RELAYNA_TEST_REDIS_CLUSTER_URL": self.url,
            "RELAYNA_TEST_REDIS_CLUSTER_DIR": self.directory,
        }

    def _node_dir(self, port: int) -> Path:
        return Path(self.directory) / str(port)

    def _save(self) -> None:
        (Path(self.directory) / "redis-cluster.json").write_text(json.dumps(asdict(self)))

    # -- lifecycle -----------------------------------------------------------
    @classmethod
    def start(cls, directory: str | None = None, *, ports: list[int] | None = None) -> RedisCluster:
        from services import free_port  # the same port rule as the other servers

        owned = directory is None
        d = Path(directory or tempfile.mkdtemp(prefix="relayna-redis-cluster-"))
        d.mkdir(parents=True, exist_ok=True)
        chosen = ports or []
        while len(chosen) < _NODES:
            # A cluster node also listens on port + 10000 (the cluster bus).
            port = free_port()
            if port + 10000 <= 65535 and port not in chosen and _bus_free(port):
                chosen.append(port)
        cluster = cls(directory=str(d), ports=chosen, owned=owned)
        cluster._save()
        try:
            for port in cluster.ports:
                cluster.launch(port)
            out = subprocess.run(
                [
                    "redis-cli",
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{p}" for p in cluster.ports),
                    "--cluster-replicas",
                    "1",
                    "--cluster-yes",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if out.returncode != 0:
                raise ClusterError(f"redis-cli --cluster create failed:\n{out.stdout}{out.stderr}")
            cluster.wait_ok(timeout=60, replicas=True)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @classmethod
    def load(cls, directory: str) -> RedisCluster:
        data = json.loads((Path(directory) / "redis-cluster.json").read_text())
        return cls(**data)

    def launch(self, port: int) -> None:
        """Start (or restart) the node on ``port`` with its existing ``nodes.conf``."""
        nd = self._node_dir(port)
        nd.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(nd / "nodes.conf"),
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                # A replica may always take over (the default refuses one whose
                # link to the primary was down for long: a test kills right away).
                "--cluster-replica-validity-factor",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--dir",
                str(nd),
                "--pidfile",
                str(nd / "redis.pid"),
                "--logfile",
                str(nd / "redis.log"),
            ],
            check=True,
        )
        deadline = time.monotonic() + 30
        while not _answers(port):
            if time.monotonic() > deadline:
                raise ClusterError(f"Redis cluster node {port} did not start")
            time.sleep(0.05)
        if port in self.killed:
            self.killed.remove(port)
            self._save()

    def _pid(self, port: int) -> int | None:
        try:
            return int((self._node_dir(port) / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port`` (no shutdown, no goodbye to the cluster)."""
        pid = self._pid(port)
        if pid is None:
            return
        _signal_and_wait(pid, signal.SIGKILL)
        (self._node_dir(port) / "redis.pid").unlink(missing_ok=True)
        self.killed.append(port)
        self._save()

    def isolate(self, port: int) -> list[int]:
        """Cut the primary on ``port`` off from its replicas: each replica is
        frozen (SIGSTOP) and its link dropped (``CLIENT KILL TYPE replica``), so
        a write the primary acknowledges now is on no replica; :meth:`thaw` them
        (after killing the primary, they hold only what came before). The
        replicas' ports."""
        nodes = self.nodes()
        primary = next(n["id"] for n in nodes if n["port"] == port)
        replicas = [int(str(n["port"])) for n in nodes if n["master"] == primary]
        for replica in replicas:
            pid = self._pid(replica)
            if pid is not None:
                os.kill(pid, signal.SIGSTOP)
        _cli(port, "CLIENT", "KILL", "TYPE", "replica")
        return replicas

    def thaw(self, ports: list[int]) -> None:
        """Resume replicas frozen by :meth:`isolate`."""
        for port in ports:
            pid = self._pid(port)
            if pid is not None:
                os.kill(pid, signal.SIGCONT)

    def restart(self, port: int) -> None:
        """Start a killed node again; it rejoins (as a replica when it was replaced)."""
        self.launch(port)

    # -- topology ------------------------------------------------------------
    def _live_ports(self) -> list[int]:
        return [p for p in self.ports if p not in self.killed]

    def nodes(self) -> list[dict[str, object]]:
        """``CLUSTER NODES`` of a live node, parsed: id, port, role, slots, failed flag."""
        for port in self._live_ports():
            text = _cli(port, "CLUSTER", "NODES")
            if text.strip():
                return [_parse_node(line) for line in text.strip().splitlines()]
        raise ClusterError("no cluster node answers")

    def slot_of(self, key: str) -> int:
        """The key's slot, as a live node answers ``CLUSTER KEYSLOT``."""
        for port in self._live_ports():
            answer = _cli(port, "CLUSTER", "KEYSLOT", key).strip()
            if answer.isdigit():
                return int(answer)
        raise ClusterError("no cluster node answers")

    def primary_of(self, slot_or_key: int | str) -> int:
        """The port of the (healthy) primary that serves a slot, or a key's slot."""
        slot = slot_or_key if isinstance(slot_or_key, int) else self.slot_of(slot_or_key)
        for node in self.nodes():
            if node["role"] == "master" and not node["failed"]:
                ranges = node["slots"]
                assert isinstance(ranges, list)
                if any(lo <= slot <= hi for lo, hi in ranges):
                    port = node["port"]
                    assert isinstance(port, int)
                    return port
        raise ClusterError(f"no healthy primary serves slot {slot}")

    def replicas_of(self, primary_port: int) -> list[int]:
        nodes = self.nodes()
        ids = [n["id"] for n in nodes if n["port"] == primary_port]
        return [
            int(str(n["port"])) for n in nodes if ids and n["master"] == ids[0] and not n["failed"]
        ]

    def wait_promoted(self, slot_or_key: int | str, old: int, *, timeout: float = 30) -> int:
        """Wait until a node other than ``old`` is the primary serving the slot
        (its replica was promoted) and the cluster is ok; that node's port."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                port = self.primary_of(slot_or_key)
            except ClusterError:
                port = old
            if port != old and port not in self.killed:
                self.wait_ok(timeout=max(1.0, deadline - time.monotonic()))
                return port
            if time.monotonic() > deadline:
                raise ClusterError(f"no replica of {old} was promoted within {timeout}s")
            time.sleep(0.05)

    def fail_primary(self, slot_or_key: int | str, *, timeout: float = 30) -> tuple[int, int]:
        """SIGKILL the primary serving a slot (or a key's slot) and wait for its
        replica's promotion: ``(killed port, promoted port)``."""
        old = self.primary_of(slot_or_key)
        self.kill(old)
        return old, self.wait_promoted(slot_or_key, old, timeout=timeout)

    def wait_ok(self, *, timeout: float = 30, replicas: bool = False) -> float:
        """Wait until every live node says ``cluster_state:ok`` (and, with
        ``replicas``, every primary has a connected replica); the seconds waited."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            states = [_cli(p, "CLUSTER", "INFO") for p in self._live_ports()]
            ok = all("cluster_state:ok" in s for s in states)
            if ok and replicas:
                ok = self._replicas_linked()
            if ok:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise ClusterError(f"cluster not ok after {timeout}s: {states}")
            time.sleep(0.05)

    def _replicas_linked(self) -> bool:
        """Every serving primary has a replica whose link is up (synced)."""
        nodes = self.nodes()
        for node in nodes:
            if node["role"] == "master" and node["slots"] and not node["failed"]:
                linked = [
                    n
                    for n in nodes
                    if n["master"] == node["id"]
                    and not n["failed"]
                    and "master_link_status:up" in _cli(int(str(n["port"])), "INFO", "replication")
                ]
                if not linked:
                    return False
        return True

    def flushall(self) -> None:
        for node in self.nodes():
            if node["role"] == "master" and not node["failed"]:
                _cli(int(str(node["port"])), "FLUSHALL")

    def stop(self) -> None:
        for port in self.ports:
            pid = self._pid(port)
            if pid is not None:
                _signal_and_wait(pid, signal.SIGTERM)
        if self.owned:
            shutil.rmtree(self.directory, ignore_errors=True)


def _signal_and_wait(pid: int, sig: signal.Signals, timeout: float = 10) -> None:
    """Send ``sig`` to ``pid`` and wait (up to ``timeout``) until it has exited."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of a daemonised redis is reaped by init; treat "Z" as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _bus_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port + 10000))
        except OSError:
            return False
    return True


def _parse_node(line: str) -> dict[str, object]:
    parts = line.split()
    flags = parts[2].split(",")
    slots: list[tuple[int, int]] = []
    for item in parts[8:]:
        if item.startswith("["):
            continue  # a slot being migrated
        lo, _, hi = item.partition("-")
        slots.append((int(lo), int(hi or lo)))
    return {
        "id": parts[0],
        "port": int(parts[1].split("@")[0].rsplit(":", 1)[1]),
        "role": "master" if "master" in flags else "replica",
        "failed": "fail" in flags or "fail?" in flags,
        "master": parts[3],
        "slots": slots,
    }

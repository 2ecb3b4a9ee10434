"""Test-only launchers: a real Redis Cluster (3 primaries) and a Sentinel set, on loopback."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import redis
from redis.cluster import ClusterNode, RedisCluster

from flask_spark.core.errors import SparkConfigError
from flask_spark.testing.redis_server import RedisServer, redis_server_binary

# -- Redis Cluster and Sentinel on loopback (tests, benchmarks, trying a topology locally) -----

#: Redis 6.2 has no ``cluster-port``: a node's cluster bus is its port + 10000.
CLUSTER_BUS_OFFSET = 10000
CLUSTER_SLOTS = 16384

S = TypeVar("S", bound="RedisServer")


def _command(client: redis.Redis, *args: Any) -> Any:
    """``client.execute_command(*args)`` (untyped in redis-py) for the admin commands here."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_cluster_port(host: str = "127.0.0.1") -> int:
    """A port ``p`` such that ``p`` and its cluster bus ``p + 10000`` are both free now."""
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randint(20000, 45000)
        if _bindable(host, port) and _bindable(host, port + CLUSTER_BUS_OFFSET):
            return port
    raise SparkConfigError(f"No free port pair (p, p+{CLUSTER_BUS_OFFSET}) found on {host}.")


def _start_with_retries(make: Callable[[], S], timeout: float) -> S:
    """Start a server, choosing new ports when the chosen ones were taken meanwhile."""
    for attempt in range(5):
        server = make()
        try:
            server.start(timeout)
        except SparkConfigError:
            server.stop()
            if attempt == 4:
                raise
        else:
            return server
    raise AssertionError("unreachable")  # pragma: no cover


def _poll(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Readiness polling with a deadline; ``check`` may raise redis errors while not ready."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            pass
        if time.monotonic() > deadline:
            raise SparkConfigError(f"Timed out after {timeout:.0f} s waiting for {what}.")
        time.sleep(0.02)  # polling interval, not synchronisation


class RedisClusterServer:
    """A Redis Cluster of ``primaries`` nodes (no replicas) on loopback, built as
    ``redis-cli --cluster create`` does: distinct config epochs, contiguous slot ranges, MEET.

    :attr:`url` is the ``redis+cluster://host:port,...`` form ``SPARK_REDIS_URL`` accepts.
    """

    def __init__(
        self, primaries: int = 3, *, host: str = "127.0.0.1", node_timeout_ms: int = 2000
    ) -> None:
        if primaries < 1:
            raise ValueError("a cluster needs at least one primary")
        self.host = host
        self.primaries = primaries
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[RedisServer] = []

    def _node(self) -> RedisServer:
        return RedisServer(
            host=self.host,
            port=free_cluster_port(self.host),
            extra_args=[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--cluster-announce-ip",
                self.host,
            ],
        )

    @property
    def url(self) -> str:
        """``redis+cluster://`` URL listing every node (any one is enough to bootstrap)."""
        return "redis+cluster://" + ",".join(f"{n.host}:{n.port}" for n in self.nodes)

    def start(self, timeout: float = 20.0) -> RedisClusterServer:
        """Start the nodes, assign the slots, join them and wait until every node says ``ok``."""
        try:
            for _ in range(self.primaries):
                self.nodes.append(_start_with_retries(self._node, timeout))
            clients = [n.client() for n in self.nodes]
            per_node = CLUSTER_SLOTS // self.primaries
            for index, client in enumerate(clients):
                _command(client, "CLUSTER", "SET-CONFIG-EPOCH", index + 1)
                first = index * per_node
                last = CLUSTER_SLOTS if index == self.primaries - 1 else first + per_node
                _command(client, "CLUSTER", "ADDSLOTS", *range(first, last))
            # Every node meets every other: no waiting for gossip to spread the introductions.
            for client in clients:
                for node in self.nodes:
                    _command(client, "CLUSTER", "MEET", node.host, node.port)

            def ready() -> bool:
                for client in clients:
                    info = _command(client, "CLUSTER", "INFO")
                    text = info.decode() if isinstance(info, bytes) else str(info)
                    fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
                    if (
                        fields.get("cluster_state") != "ok"
                        or fields.get("cluster_known_nodes") != str(self.primaries)
                        or fields.get("cluster_slots_ok") != str(CLUSTER_SLOTS)
                    ):
                        return False
                return True

            _poll(ready, timeout, "the Redis Cluster to agree on its slots")
            for client in clients:
                client.close()
        except BaseException:
            self.stop()
            raise
        return self

    def client(self, **kwargs: Any) -> RedisCluster:
        """A redis-py ``RedisCluster`` client for this cluster."""
        nodes = [ClusterNode(n.host, n.port) for n in self.nodes]  # type: ignore[no-untyped-call]
        return RedisCluster(startup_nodes=nodes, **kwargs)

    def stop(self) -> None:
        """Stop every node and remove their directories (idempotent)."""
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RedisClusterServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SentinelServer(RedisServer):
    """One ``redis-server --sentinel`` watching ``service`` at ``primary_host:primary_port``."""

    def __init__(
        self,
        primary_host: str,
        primary_port: int,
        *,
        service: str = "mymaster",
        host: str = "127.0.0.1",
        down_after_ms: int = 500,
        failover_timeout_ms: int = 2000,
    ) -> None:
        super().__init__(host=host)
        self.service = service
        # Sentinel rewrites its configuration file, so it lives in the server's own directory.
        self.config_path = str(Path(self.dir) / "sentinel.conf")
        Path(self.config_path).write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    f"bind {host}",
                    f'dir "{self.dir}"',
                    f"sentinel monitor {service} {primary_host} {primary_port} 1",
                    f"sentinel down-after-milliseconds {service} {down_after_ms}",
                    f"sentinel failover-timeout {service} {failover_timeout_ms}",
                    f"sentinel parallel-syncs {service} 1",
                    "",
                ]
            )
        )

    @property
    def url(self) -> str:
        """The sentinel's own ``redis://`` URL (for ``SENTINEL`` commands)."""
        return f"redis://{self.host}:{self.port}/0"

    def args(self) -> list[str]:
        return [redis_server_binary(), self.config_path, "--sentinel"]


class SentinelSet:
    """A Sentinel-managed set on loopback: one primary, ``replicas`` replicas, one sentinel.

    :attr:`url` is the ``redis+sentinel://host:port/<service>/0`` form ``SPARK_REDIS_URL``
    accepts. :meth:`kill_primary` and :meth:`wait_for_failover` stage an outage.
    """

    def __init__(
        self,
        *,
        service: str = "mymaster",
        replicas: int = 1,
        host: str = "127.0.0.1",
        down_after_ms: int = 500,
        failover_timeout_ms: int = 2000,
    ) -> None:
        self.service = service
        self.host = host
        self.replica_count = replicas
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.primary: RedisServer | None = None
        self.replicas: list[RedisServer] = []
        self.sentinel: SentinelServer | None = None

    @property
    def servers(self) -> list[RedisServer]:
        """Every data server, primary first (the original roles)."""
        return [s for s in [self.primary, *self.replicas] if s is not None]

    @property
    def url(self) -> str:
        """``redis+sentinel://`` URL of the set's primary, database 0."""
        assert self.sentinel is not None, "start() first"
        return f"redis+sentinel://{self.host}:{self.sentinel.port}/{self.service}/0"

    def start(self, timeout: float = 20.0) -> SentinelSet:
        """Start the servers and the sentinel; wait until it sees every replica linked."""
        try:
            self.primary = _start_with_retries(lambda: RedisServer(host=self.host), timeout)
            primary = self.primary
            for _ in range(self.replica_count):
                self.replicas.append(
                    _start_with_retries(
                        lambda: RedisServer(
                            host=self.host,
                            extra_args=["--replicaof", primary.host, str(primary.port)],
                        ),
                        timeout,
                    )
                )
            watched = primary.client()
            _poll(
                lambda: watched.info("replication").get("connected_slaves") == self.replica_count,
                timeout,
                "the replicas to connect to the primary",
            )
            watched.close()
            self.sentinel = _start_with_retries(
                lambda: SentinelServer(
                    primary.host,
                    primary.port,
                    service=self.service,
                    host=self.host,
                    down_after_ms=self.down_after_ms,
                    failover_timeout_ms=self.failover_timeout_ms,
                ),
                timeout,
            )
            sentinel = self.sentinel.client(decode_responses=True)

            def replicas_known() -> bool:
                found = _command(sentinel, "SENTINEL", "REPLICAS", self.service)
                healthy = [r for r in found if _sentinel_fields(r).get("flags") == "slave"]
                return len(healthy) == self.replica_count

            _poll(replicas_known, timeout, "the sentinel to discover the replicas")
            sentinel.close()
        except BaseException:
            self.stop()
            raise
        return self

    def sentinel_client(self) -> redis.Redis:
        """A client of the sentinel itself (decoded responses)."""
        assert self.sentinel is not None, "start() first"
        return self.sentinel.client(decode_responses=True)

    def primary_state(self) -> dict[str, str]:
        """``SENTINEL MASTER <service>``: the sentinel's view of the primary (ip, port, flags)."""
        client = self.sentinel_client()
        try:
            return _sentinel_fields(_command(client, "SENTINEL", "MASTER", self.service))
        finally:
            client.close()

    def primary_address(self) -> tuple[str, int]:
        """The primary's address in the sentinel's current configuration.

        This is what clients discover (redis-py reads ``SENTINEL MASTERS``). During a failover
        ``GET-MASTER-ADDR-BY-NAME`` already names the promoted replica, but the configuration,
        hence the clients, switch only when the failover ends.
        """
        state = self.primary_state()
        return state["ip"], int(state["port"])

    def server_at(self, address: tuple[str, int]) -> RedisServer:
        """The data server listening at ``address``."""
        for server in self.servers:
            if (server.host, server.port) == address:
                return server
        raise KeyError(address)

    def kill_primary(self) -> RedisServer:
        """SIGKILL the current primary (no shutdown, no save); returns the killed server."""
        server = self.server_at(self.primary_address())
        if server.process is not None:
            server.process.kill()
            server.process.wait()
        return server

    def wait_for_failover(self, old: tuple[str, int], timeout: float = 20.0) -> RedisServer:
        """Wait until the failover has ended: the sentinel's configuration names a new primary
        (``+switch-master``), no failover is in progress, and that server's ``ROLE`` is master.
        """
        promoted: list[RedisServer] = []

        def switched() -> bool:
            state = self.primary_state()
            address = (state["ip"], int(state["port"]))
            if address == old or "failover_in_progress" in state.get("flags", ""):
                return False
            server = self.server_at(address)
            client = server.client()
            try:
                role = _command(client, "ROLE")
            finally:
                client.close()
            if role[0] not in (b"master", "master"):
                return False
            promoted.append(server)
            return True

        _poll(switched, timeout, f"the sentinel to promote a replica of {self.service}")
        return promoted[-1]

    def stop(self) -> None:
        """Stop the sentinel and every server, removing their directories (idempotent)."""
        if self.sentinel is not None:
            self.sentinel.stop()
        for server in self.servers:
            server.stop()

    def __enter__(self) -> SentinelSet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _sentinel_fields(entry: Any) -> dict[str, str]:
    """``SENTINEL REPLICAS`` answers flat lists (RESP2) or maps (RESP3) per replica."""
    if isinstance(entry, dict):
        return {str(k): str(v) for k, v in entry.items()}
    items = list(entry)
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}

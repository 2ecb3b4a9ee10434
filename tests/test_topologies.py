"""Real Redis topologies: every ``SPARK_REDIS_URL`` form, a 3-primary Redis Cluster and a
Sentinel set whose primary dies mid-test. All servers are the embedded ``redis-server`` binary,
started on loopback by the fixtures below (free ports, temporary directories, torn down after).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from redis.cluster import RedisCluster
from redis.connection import SSLConnection, UnixDomainSocketConnection

from flask_spark import SparkAuth
from flask_spark.core.errors import SparkConfigError
from flask_spark.core.redis_client import redis_from_url
from flask_spark.sandbox import MEMBERS, SandboxServer
from flask_spark.testing.redis_server import RedisServer
from tests.redis_topologies import RedisClusterServer, SentinelSet

from .conftest import app_config, make_app
from .helpers import FlowClient

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServer]:
    """A 3-primary Redis Cluster (no replicas), slots split evenly."""
    with RedisClusterServer(primaries=3) as servers:
        yield servers


@pytest.fixture(scope="module")
def unix_redis() -> Iterator[RedisServer]:
    """A redis-server listening on a unix socket only."""
    with RedisServer(unix_socket=True) as server:
        yield server


def session_id(flow: FlowClient) -> str:
    sid = flow.cookie()
    assert sid
    return sid


def sign_in(app: Flask, sandbox: SandboxServer, member_index: int = 0) -> FlowClient:
    flow = FlowClient(app, sandbox)
    member = MEMBERS[member_index]
    response = flow.login("/dashboard", member_id=member.id)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == "/dashboard"
    return flow


def dashboard_of(flow: FlowClient) -> dict[str, Any]:
    page = flow.get("/dashboard")
    assert page.status_code == 200, page.get_data(as_text=True)
    assert page.json is not None
    return page.json


def log_out(flow: FlowClient) -> None:
    answer = flow.post("/spark/logout", headers={"X-CSRFToken": flow.csrf()})
    assert answer.status_code == 302


# -- URL forms -------------------------------------------------------------------------------


def test_redis_url_keeps_the_database_number() -> None:
    client = redis_from_url("redis://127.0.0.1:6390/3")
    assert isinstance(client, redis.Redis)
    assert client.connection_pool.connection_kwargs["db"] == 3
    assert client.connection_pool.connection_kwargs["port"] == 6390


def test_rediss_url_uses_tls() -> None:
    client = redis_from_url("rediss://:secret@redis.example:6380/1?ssl_cert_reqs=required")
    assert client.connection_pool.connection_class is SSLConnection
    assert client.connection_pool.connection_kwargs["password"] == "secret"


def test_sentinel_url_names_the_service_and_database() -> None:
    client = redis_from_url("redis+sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/mymaster/2")
    pool = client.connection_pool
    assert pool.service_name == "mymaster"
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_kwargs["password"] == "pw"
    hosts = [c.connection_pool.connection_kwargs["port"] for c in pool.sentinel_manager.sentinels]
    assert hosts == [26379, 26380]


def test_sentinel_hosts_default_to_the_sentinel_port() -> None:
    client = redis_from_url("redis+sentinel://sentinel-a,[::1],sentinel-c:5000/mymaster")
    pool = client.connection_pool
    found = [
        (c.connection_pool.connection_kwargs["host"], c.connection_pool.connection_kwargs["port"])
        for c in pool.sentinel_manager.sentinels
    ]
    assert found == [("sentinel-a", 26379), ("::1", 26379), ("sentinel-c", 5000)]
    assert pool.connection_kwargs["db"] == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://127.0.0.1:26379", "service name"),
        ("redis+sentinel://127.0.0.1:26379/mymaster/first", "must be a number"),
        ("redis+cluster://127.0.0.1:notaport", "Bad host:port"),
        ("redis+cluster://127.0.0.1:7000/2", "only database 0"),
        ("memcached://127.0.0.1:11211", "unknown scheme"),
    ],
)
def test_bad_urls_say_what_to_write(url: str, message: str) -> None:
    with pytest.raises(SparkConfigError, match=message):
        redis_from_url(url)


def test_unix_socket_url_signs_in_and_calls_the_api(
    sandbox: SandboxServer, unix_redis: RedisServer, key_prefix: str
) -> None:
    assert unix_redis.url.startswith("unix://")
    app = make_app(app_config(sandbox, unix_redis, key_prefix))
    state = app.extensions["spark.state"]
    assert state.redis.connection_pool.connection_class is UnixDomainSocketConnection
    flow = sign_in(app, sandbox)
    assert dashboard_of(flow)["user"] == MEMBERS[0].name
    assert unix_redis.client().exists(f"{key_prefix}tok:{{{key_prefix}session:{session_id(flow)}}}")


# -- Redis Cluster ---------------------------------------------------------------------------


class RecordingCluster(RedisCluster):
    """A ``RedisCluster`` that remembers the keys of every command it sends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sent: list[tuple[str, list[str]]] = []
        self._sent_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        name = str(args[0]).upper()
        if name in ("EVAL", "EVALSHA"):
            keys = list(args[3 : 3 + int(args[2])])
        else:
            keys = list(self._get_command_keys(*args) or []) if len(args) > 1 else []
        with self._sent_lock:
            self.sent.append((name, [k.decode() if isinstance(k, bytes) else str(k) for k in keys]))
        return super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        # A pipeline's commands are recorded one by one, and as one "PIPELINE" entry with all
        # their keys: one slot means one node, so one round trip (the session + token read).
        pipe = super().pipeline(transaction, shard_hint)
        execute = pipe.execute

        def recorded(raise_on_error: bool = True) -> Any:
            queued = [c.args for c in pipe._execution_strategy.command_queue]
            everything: list[str] = []
            for args in queued:
                keys = [
                    k.decode() if isinstance(k, bytes) else str(k)
                    for k in self._get_command_keys(*args) or []
                ]
                everything += keys
                with self._sent_lock:
                    self.sent.append((str(args[0]).upper(), keys))
            with self._sent_lock:
                self.sent.append(("PIPELINE", everything))
            return execute(raise_on_error)

        pipe.execute = recorded
        return pipe

    def _split_command_across_slots(self, command: str, *keys: Any) -> int:
        # DEL, UNLINK, EXISTS, TOUCH of several keys: redis-py splits them by slot (losing
        # atomicity), so record them as the one command the caller made.
        with self._sent_lock:
            self.sent.append(
                (command.upper(), [k.decode() if isinstance(k, bytes) else str(k) for k in keys])
            )
        return int(super()._split_command_across_slots(command, *keys))


def cluster_config(
    sandbox: SandboxServer, cluster: RedisClusterServer, prefix: str
) -> dict[str, Any]:
    config = app_config(sandbox, cluster.nodes[0], prefix)
    config["SPARK_REDIS_URL"] = cluster.url
    return config


def test_cluster_url_lists_every_node_and_one_is_enough(cluster: RedisClusterServer) -> None:
    one = cluster.nodes[1]
    for url in (cluster.url, f"redis+cluster://{one.host}:{one.port}/0"):
        client = redis_from_url(url)
        assert isinstance(client, RedisCluster)
        assert len(client.get_primaries()) == 3
        client.close()


def test_cluster_sign_in_api_refresh_and_logout(
    sandbox: SandboxServer, cluster: RedisClusterServer, key_prefix: str
) -> None:
    app = make_app(cluster_config(sandbox, cluster, key_prefix))
    state = app.extensions["spark.state"]
    assert isinstance(state.redis, RedisCluster)
    client = cluster.client()

    flow = sign_in(app, sandbox)
    sid = session_id(flow)
    assert dashboard_of(flow) == {
        "user": MEMBERS[0].name,
        "sub": MEMBERS[0].id,
        "account": MEMBERS[0].name,
    }
    token_key = f"{key_prefix}tok:{{{key_prefix}session:{sid}}}"
    session_key = f"{key_prefix}session:{sid}"
    assert client.exists(token_key, session_key) == 2
    # The session's own keys share the {sid} hash tag, hence one slot.
    tagged = [token_key, state.tokens.lock_key(sid)]
    assert len({client.keyslot(k) for k in tagged}) == 1

    # Refresh on 1020: one refresh at the provider, the record rewritten by the CAS script.
    assert sandbox.expire_tokens() == 1
    assert dashboard_of(flow)["user"] == MEMBERS[0].name
    assert sandbox.counters()["refreshes"] == 1
    assert int(client.hget(token_key, "v") or 0) == 2
    assert dashboard_of(flow)["user"] == MEMBERS[0].name
    assert sandbox.counters()["refreshes"] == 1

    # `flask spark rotate-keys` walks the records with SCAN across every primary.
    assert token_key in set(state.tokens.scan_keys())
    assert state.tokens.rotate_key(token_key) == "skipped"  # already on the first key

    log_out(flow)
    assert client.exists(token_key, session_key) == 0
    assert not list(client.scan_iter(match=f"{key_prefix}tok:*"))
    assert not list(client.scan_iter(match=f"{key_prefix}user:*"))
    assert flow.get("/dashboard").status_code == 302
    assert sandbox.counters()["revocations"] == 1
    client.close()


def test_cluster_every_command_stays_in_one_slot(
    generic_sandbox: SandboxServer, cluster: RedisClusterServer, key_prefix: str
) -> None:
    """Whole life of two sessions through a recording client: no command spans two slots.

    Against the generic provider, whose ``sid`` brings the provider-session index into play too.
    """
    sandbox = generic_sandbox
    recorder = RecordingCluster(startup_nodes=cluster.client().get_nodes(), socket_timeout=5.0)
    config = cluster_config(sandbox, cluster, key_prefix)
    del config["SPARK_REDIS_URL"]
    config["SESSION_REDIS"] = recorder
    app = make_app(config)
    assert app.extensions["spark.state"].redis is recorder

    flows = [sign_in(app, sandbox, index) for index in (0, 1)]
    for flow in flows:
        dashboard_of(flow)
    sandbox.expire_tokens()
    for flow in flows:
        dashboard_of(flow)
    assert sandbox.counters()["refreshes"] == 2
    for flow in flows:
        log_out(flow)

    names = {name for name, _ in recorder.sent}
    # The steps that matter were all exercised: transaction LREM, lock SET NX, CAS script.
    assert {"LREM", "SET", "GETEX", "EVALSHA", "DEL", "HSET", "HDEL", "HGETALL"} <= names, names
    # The session and its token record, read in one pipeline (both keys: one slot below).
    assert any(name == "PIPELINE" and len(keys) == 2 for name, keys in recorder.sent)
    for name, keys in recorder.sent:
        assert len({recorder.keyslot(k) for k in keys}) <= 1, (name, keys)
    recorder.close()


# -- Sentinel --------------------------------------------------------------------------------


@pytest.fixture
def sentinel_set() -> Iterator[SentinelSet]:
    """1 primary, 1 replica, 1 sentinel (quorum 1), quick to notice a dead primary."""
    with SentinelSet(replicas=1, down_after_ms=500, failover_timeout_ms=2000) as servers:
        yield servers


def test_sentinel_failover_keeps_users_signed_in(
    sandbox: SandboxServer, sentinel_set: SentinelSet, key_prefix: str
) -> None:
    config = app_config(sandbox, sentinel_set.servers[0], key_prefix)
    config["SPARK_REDIS_URL"] = sentinel_set.url
    app = make_app(config)
    assert app.extensions["spark.state"].redis.connection_pool.service_name == "mymaster"

    flows = [sign_in(app, sandbox, index) for index in range(3)]
    for index, flow in enumerate(flows):
        assert dashboard_of(flow)["user"] == MEMBERS[index].name

    old_address = sentinel_set.primary_address()
    primary = sentinel_set.server_at(old_address)
    replica = sentinel_set.replicas[0]
    # WAIT counts acknowledgements of this connection's own writes; one write of ours after
    # the app's, acknowledged, means the replica has everything written before it.
    writer = primary.client()
    writer.set(f"{key_prefix}fence", b"1")
    assert writer.execute_command("WAIT", 1, 5000) == 1
    writer.close()
    on_replica = replica.client()
    for flow in flows:
        sid = session_id(flow)
        assert (
            on_replica.exists(
                f"{key_prefix}tok:{{{key_prefix}session:{sid}}}", f"{key_prefix}session:{sid}"
            )
            == 2
        )
    on_replica.close()

    killed = sentinel_set.kill_primary()
    assert killed is primary
    promoted = sentinel_set.wait_for_failover(old_address, timeout=20.0)
    assert promoted is replica

    # Everyone is still signed in, and the API works, on the promoted replica.
    for index, flow in enumerate(flows):
        assert flow.get("/called").status_code == 200
        assert dashboard_of(flow)["user"] == MEMBERS[index].name
    # Writes work there too: a refresh per session (lock + versioned write on the new primary).
    sandbox.expire_tokens()
    for index, flow in enumerate(flows):
        assert dashboard_of(flow)["user"] == MEMBERS[index].name
    assert sandbox.counters()["refreshes"] == 3
    new_primary = promoted.client()
    for flow in flows:
        assert (
            int(
                new_primary.hget(f"{key_prefix}tok:{{{key_prefix}session:{session_id(flow)}}}", "v")
                or 0
            )
            == 2
        )
    # A new sign-in and a sign-out after the failover.
    late = sign_in(app, sandbox, 3)
    assert dashboard_of(late)["user"] == MEMBERS[3].name
    gone = session_id(flows[0])
    log_out(flows[0])
    assert flows[0].get("/dashboard").status_code == 302
    assert not new_primary.exists(f"{key_prefix}tok:{{{key_prefix}session:{gone}}}")
    assert new_primary.exists(f"{key_prefix}tok:{{{key_prefix}session:{session_id(flows[1])}}}")
    new_primary.close()


def test_ready_client_object_is_used_as_is(
    sandbox: SandboxServer, redis_server: RedisServer, key_prefix: str
) -> None:
    ready = redis_server.client()
    config = app_config(sandbox, redis_server, key_prefix)
    del config["SPARK_REDIS_URL"]
    config["SESSION_REDIS"] = ready
    app = Flask(__name__)
    app.config.update(config)
    SparkAuth(app)
    assert app.extensions["spark.state"].redis is ready


def test_a_client_that_decodes_responses_is_refused_with_the_fix(
    sandbox: SandboxServer, redis_server: RedisServer, key_prefix: str
) -> None:
    config = app_config(sandbox, redis_server, key_prefix)
    del config["SPARK_REDIS_URL"]
    config["SESSION_REDIS"] = redis_server.client(decode_responses=True)
    app = Flask(__name__)
    app.config.update(config)
    with pytest.raises(SparkConfigError, match="decode_responses=False"):
        SparkAuth(app)

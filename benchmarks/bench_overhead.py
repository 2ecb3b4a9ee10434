"""Benchmark: what flask-spark adds to a request, each figure measured side by side in one run.

Run from the repository root (about a minute on 2 cores)::

    python benchmarks/bench_overhead.py

It prints a table and writes it to ``docs/_static/benchmarks.txt``, which ``docs/scaling.rst``
includes (``--no-write`` only prints). Everything runs on loopback: a real ``redis-server`` (the
embedded binary, over TCP), the sandbox as the Spark Platform served by gunicorn (gthread
workers, HTTP keep-alive, like a production API server) and the apps below.

1. ``@spark_login_required`` view vs the same view on plain Flask-Session (same Redis, same
   session contents, set to read the session only): requests per second (in-process WSGI calls),
   Redis round trips per request (counted by a TCP proxy in front of Redis) and commands.
   Goal: ratio >= 0.97, no extra round trip.
2. A view calling ``spark_api.get("my/account")`` once vs the same view making the same call by
   hand with a pooled ``requests.Session`` and a token known in advance (both in-process WSGI,
   both over HTTP keep-alive to the sandbox). Goal: ratio >= 0.95 (aim 1.0); as many Redis
   round trips as the plain session view; at most one Fernet decryption. Also against a
   hand-written call on flask-spark's own tuned HTTP session (no environment scan per call).
3. A per-request cost breakdown of the ``spark_api`` view, from a profile.
4. A refresh storm: 200 concurrent requests of one session, over 4 gunicorn workers (gthread,
   8 threads each), right after the sandbox expired the access token, next to the same 200
   requests with a valid token. Refreshes counted at the provider (goal: 1); client-side p50/p99
   (goal: the expired storm's p99 within 1.5x the valid one's).
5. Bytes stored in Redis per signed-in session: ``MEMORY USAGE`` of each of its keys
   (goal <= 2 KiB).
6. Scale: 10,000 signed-in sessions in one Redis (memory, session-load p50/p99 against 100
   sessions), and a 3-node Redis Cluster: round trips per request, counted by the servers
   (``INFO stats`` ``total_reads_processed``), against one Redis.

Throughput figures come from paired rounds (each round times both sides back to back, in
alternating order, so that a busy machine slows both sides of a pair alike); the table shows the
median pair by ratio.

The module is also the storm's WSGI app: ``gunicorn 'bench_overhead:storm_app()'`` (configured
by ``SPARK_*`` environment variables).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
import requests
from cryptography.fernet import Fernet
from flask import Flask, current_app, session
from werkzeug.test import EnvironBuilder

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from flask_session.redis import RedisSessionInterface  # noqa: E402

from flask_spark import SparkAuth, spark_api, spark_login_required  # noqa: E402
from flask_spark.core.http import pooled_session  # noqa: E402
from flask_spark.sandbox import MEMBERS  # noqa: E402
from flask_spark.testing.redis_server import RedisServer  # noqa: E402
from tests.gunicorn_server import GunicornServer, mark_worker_ready  # noqa: E402
from tests.redis_proxy import CountingProxy  # noqa: E402
from tests.redis_topologies import RedisClusterServer  # noqa: E402

OUTPUT = ROOT / "docs" / "_static" / "benchmarks.txt"
MEMBER = MEMBERS[0]
USER_AGENT = "flask-spark-bench"
STORM_WORKERS = 4
STORM_THREADS = 8

# -- the apps ----------------------------------------------------------------------------------


def bench_app(config: dict[str, Any]) -> Flask:
    """flask-spark on its own Redis session, with the views the benchmark compares."""
    app = Flask("bench")
    app.config.update(config)
    SparkAuth(app)
    naive = requests.Session()  # a hand-written pooled call: requests' defaults
    tuned = pooled_session(hosts=[config["SPARK_API_BASE_URL"]])  # flask-spark's HTTP session

    @app.get("/protected")
    @spark_login_required
    def protected() -> str:
        return "ok"

    @app.get("/api")
    @spark_login_required
    def api() -> str:
        return str(spark_api.get("my/account").first()["Id"])

    def by_hand(http: requests.Session) -> str:
        # The same call by hand: a pooled requests.Session, a token known in advance.
        response = http.get(
            current_app.config["SPARK_API_BASE_URL"] + "my/account",
            headers={
                "Authorization": f"Bearer {current_app.extensions['bench.token']}",
                "Accept": "application/json",
                "X-SparkApi-User-Agent": USER_AGENT,
            },
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["D"]["Results"][0]["Id"])

    @app.get("/raw")
    @spark_login_required
    def raw() -> str:
        return by_hand(naive)

    @app.get("/raw-tuned")
    @spark_login_required
    def raw_tuned() -> str:
        return by_hand(tuned)

    return app


def plain_app(client: redis.Redis, key_prefix: str, *, read_only: bool = False) -> Flask:
    """The same protected view on plain Flask-Session.

    By default Flask-Session writes the session back on every request, to renew its TTL (a
    sliding expiry, as flask-spark's idle timeout, which renews it with the read). With
    ``read_only`` it only reads: no renewal, one ``GET``.
    """
    app = Flask("plain")
    app.config["SECRET_KEY"] = "bench"
    app.config["SESSION_REFRESH_EACH_REQUEST"] = not read_only
    app.session_interface = RedisSessionInterface(
        app,
        client=client,
        key_prefix=key_prefix,
        use_signer=False,
        permanent=False,
        sid_length=32,
        serialization_format="msgpack",
    )

    @app.get("/protected")
    def protected() -> Any:
        if not session.get("_spark"):
            return "sign in", 401
        return "ok"

    return app


def config_from_env() -> dict[str, Any]:
    config: dict[str, Any] = {k: v for k, v in os.environ.items() if k.startswith("SPARK_")}
    config["SECRET_KEY"] = os.environ.get("FLASK_SECRET_KEY", "bench")
    return config


def storm_app() -> Flask:
    """The app gunicorn serves for the refresh storm (configuration from the environment)."""
    app = bench_app(config_from_env())
    mark_worker_ready()
    return app


# -- processes -----------------------------------------------------------------------------------


def gthread(threads: int) -> list[str]:
    """gunicorn arguments for threaded workers with keep-alive (as a production setup)."""
    return ["--worker-class", "gthread", "--threads", str(threads), "--keep-alive", "30"]


def sandbox_app(url: str) -> Flask:
    """The sandbox for ``url`` (gunicorn: ``bench_overhead:sandbox_app('http://...')``)."""
    from flask_spark.sandbox.app import create_sandbox_app

    app = create_sandbox_app(url)
    mark_worker_ready()
    return app


class Sandbox:
    """The sandbox over HTTP: its admin API gives the provider's counters and faults."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.issuer = url

    def counters(self) -> dict[str, int]:
        counters: dict[str, int] = requests.get(self.url + "/_sandbox/counters", timeout=5).json()
        return counters

    def expire_tokens(self) -> int:
        answer = requests.post(self.url + "/_sandbox/expire-tokens", json={}, timeout=5)
        return int(answer.json()["expired"])


# -- measuring -----------------------------------------------------------------------------------


class WSGICall:
    """One in-process GET through the whole WSGI app (session open and save included)."""

    def __init__(self, app: Flask, path: str, sid: str) -> None:
        self.app = app
        self.environ = EnvironBuilder(path=path, headers={"Cookie": f"session={sid}"}).get_environ()

    def __call__(self) -> bytes:
        environ = dict(self.environ)
        environ["wsgi.input"] = io.BytesIO(b"")
        status: list[str] = []

        def start_response(code: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(code)
            return lambda data: None

        result = self.app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            getattr(result, "close", lambda: None)()
        if not status[0].startswith("200"):
            raise SystemExit(f"{self.environ['PATH_INFO']} answered {status[0]}: {body[:300]!r}")
        return body


def paired_rates(
    spark: Callable[[], Any], baseline: Callable[[], Any], calls: int, rounds: int
) -> tuple[float, float, float]:
    """Requests per second of each side and their ratio, robust to a noisy machine.

    Each round times ``calls`` requests of one side then of the other (the order alternating),
    so both sides of a pair see the same load. Returns the median pair by ratio: its two rates
    and its ratio.
    """
    for call in (spark, baseline):
        for _ in range(max(20, calls // 10)):
            call()

    def rate(call: Callable[[], Any]) -> float:
        began = time.perf_counter()
        for _ in range(calls):
            call()
        return calls / (time.perf_counter() - began)

    pairs: list[tuple[float, float, float]] = []
    for index in range(rounds):
        if index % 2:
            other = rate(baseline)
            ours = rate(spark)
        else:
            ours = rate(spark)
            other = rate(baseline)
        pairs.append((ours, other, ours / other))
    pairs.sort(key=lambda pair: pair[2])
    return pairs[len(pairs) // 2]


def command_counts(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if name != "cmdstat_info"
    }


def commands_per_request(
    client: redis.Redis, call: Callable[[], Any], calls: int
) -> dict[str, float]:
    """Redis commands per request, by command, from ``INFO commandstats`` deltas."""
    before = command_counts(client)
    for _ in range(calls):
        call()
    after = command_counts(client)
    return {
        name: (count - before.get(name, 0)) / calls
        for name, count in sorted(after.items())
        if count != before.get(name, 0)
    }


def describe(per_request: dict[str, float]) -> str:
    total = sum(per_request.values())
    parts = " ".join(f"{name.upper()} {count:g}" for name, count in per_request.items())
    return f"{total:g} ({parts})"


@contextmanager
def counting_decryptions(app: Flask) -> Iterator[list[int]]:
    """Count Fernet decryptions of token records (``TokenVault.open``) while inside."""
    vault = app.extensions["spark.state"].vault
    count = [0]
    original = vault.open

    def counted(blob: bytes, sid: str) -> Any:
        count[0] += 1
        return original(blob, sid)

    vault.open = counted
    try:
        yield count
    finally:
        del vault.open


def percentile(values: list[float], pct: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def storm(url: str, sid: str, concurrency: int) -> tuple[list[float], list[int]]:
    """``concurrency`` GET /api of one session, released together; latencies (ms), statuses."""
    barrier = threading.Barrier(concurrency)

    def one(_: int) -> tuple[float, int]:
        barrier.wait(timeout=30)
        began = time.perf_counter()
        answer = requests.get(
            url + "/api", cookies={"session": sid}, headers={"Connection": "close"}, timeout=60
        )
        return (time.perf_counter() - began) * 1000, answer.status_code

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, range(concurrency)))
    return [ms for ms, _ in results], [status for _, status in results]


# -- sign-in -----------------------------------------------------------------------------------


def sign_in_in_process(app: Flask) -> str:
    """The real sign-in (our /login, the sandbox's form, our /callback); the session id."""
    browser = app.test_client()
    start = browser.get("/spark/login")
    form = requests.post(
        start.headers["Location"],
        data={"member": MEMBER.id, "consent": "allow"},
        allow_redirects=False,
        timeout=10,
    )
    callback = urlsplit(form.headers["Location"])
    done = browser.get(f"{callback.path}?{callback.query}")
    if done.status_code != 302:
        raise SystemExit(f"sign-in failed: {done.get_data(as_text=True)[:300]}")
    cookie = browser.get_cookie("session")
    assert cookie is not None
    return cookie.value


def sign_in_over_http(base: str) -> str:
    browser = requests.Session()
    start = browser.get(base + "/spark/login", allow_redirects=False, timeout=10)
    form = requests.post(
        start.headers["Location"],
        data={"member": MEMBER.id, "consent": "allow"},
        allow_redirects=False,
        timeout=10,
    )
    done = browser.get(form.headers["Location"], allow_redirects=False, timeout=10)
    if done.status_code != 302:
        raise SystemExit(f"sign-in failed: {done.text[:300]}")
    return str(browser.cookies["session"])


# -- round trips, the profile, many sessions ---------------------------------------------------


def round_trips(proxy: CountingProxy, call: Callable[[], Any], calls: int) -> float:
    """Redis round trips per request, counted by the TCP proxy the app's Redis goes through."""
    call()  # the connection pool is warm
    before = proxy.round_trips
    for _ in range(calls):
        call()
    return (proxy.round_trips - before) / calls


def server_reads(nodes: list[redis.Redis], call: Callable[[], Any], calls: int) -> float:
    """Round trips per request as the servers count them (reads from client sockets).

    ``INFO stats`` ``total_reads_processed`` of every node, before and after; each node's second
    ``INFO`` is a read of its own, taken off.
    """

    def reads() -> int:
        return sum(int(node.info("stats")["total_reads_processed"]) for node in nodes)

    call()
    before = reads()
    for _ in range(calls):
        call()
    return (reads() - before - len(nodes)) / calls


def cost_breakdown(call: Callable[[], Any], calls: int) -> tuple[float, dict[str, float]]:
    """ms per request without the profiler, and each part's share of it from a profile.

    The parts, by inclusive time in ``cProfile`` (wall clock): Redis (redis-py entered from
    elsewhere), decryption (``TokenVault.open``), HTTP (``requests``: preparing and sending the
    request, urllib3 and the API's time included), the client (``SparkAPI.get`` without those)
    and Flask (the rest: WSGI, routing, the session interface's own code, the decorator, the
    view).
    """
    for _ in range(20):
        call()
    began = time.perf_counter()
    for _ in range(calls):
        call()
    plain_ms = (time.perf_counter() - began) * 1000 / calls
    profile = cProfile.Profile()
    began = time.perf_counter()
    profile.enable()
    for _ in range(calls):
        call()
    profile.disable()
    total = time.perf_counter() - began
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]

    def inclusive(match: Callable[[str, str], bool]) -> float:
        """Time inside functions matching ``match``, entered from functions that do not."""
        seconds = 0.0
        for (path, _, name), (_, _, _, cumulative, callers) in stats.items():
            if match(path, name) and not any(match(c[0], c[2]) for c in callers):
                seconds += cumulative
        return seconds

    def in_redis(path: str, name: str) -> bool:
        return f"{os.sep}redis{os.sep}" in path and "site-packages" in path

    def named(suffix: str, function: str) -> Callable[[str, str], bool]:
        return lambda path, name: path.endswith(suffix) and name == function

    redis_s = inclusive(in_redis)
    decrypt_s = inclusive(named(os.path.join("core", "tokens.py"), "open"))
    sessions_py, models_py = (
        os.path.join("requests", "sessions.py"),
        os.path.join("requests", "models.py"),
    )
    http_s = inclusive(
        lambda path, name: (
            (path.endswith(sessions_py) and name in ("request", "send"))
            or (path.endswith(models_py) and name == "prepare")
        )
    )
    client_s = inclusive(named(os.path.join("core", "api.py"), "get")) - http_s - decrypt_s
    parts = {
        "Redis (session + token record)": redis_s,
        "Fernet decryption": decrypt_s,
        "HTTP (requests + the API)": http_s,
        "the client (spark_api)": client_s,
        "Flask (WSGI, session, view)": total - redis_s - decrypt_s - http_s - client_s,
    }
    return plain_ms, {name: seconds / total for name, seconds in parts.items()}


def add_sessions(app: Flask, template_sid: str, count: int) -> list[str]:
    """``count`` more signed-in sessions, each a copy of ``template_sid``'s for another user.

    Written with flask-spark's own stores, key by key, as a sign-in writes them: the session,
    the encrypted token record, the user index and the provider-session index.
    """
    state = app.extensions["spark.state"]
    iface = state.session_interface
    data = iface.serializer.decode(state.redis.get(iface.store_key(template_sid)))
    tokens = state.tokens.load(template_sid)
    lifetime = state.config.session_lifetime
    sids = []
    for index in range(count):
        sid = iface._generate_sid(iface.sid_length)
        sub = f"{MEMBER.id[:-6]}{index:06d}"
        psid = uuid.uuid4().hex
        state.tokens.create(replace(tokens, sid=sid, subject=sub), ttl=lifetime)
        state.registry.register(sid, sub, psid, ttl=lifetime, login_at=time.time())
        copy = {**data, "_spark": {**data["_spark"], "sub": sub, "psid": psid}}
        state.redis.set(iface.store_key(sid), iface.serializer.encode(copy), ex=lifetime)
        sids.append(sid)
    return sids


def session_loads(app: Flask, groups: list[list[str]], samples: int) -> list[list[float]]:
    """Latency (ms) of ``open_session`` for random sessions of each group, interleaved."""
    iface = app.session_interface
    requests_of = [
        [
            app.request_class(
                EnvironBuilder(headers={"Cookie": f"session={random.choice(group)}"}).get_environ()
            )
            for _ in range(samples)
        ]
        for group in groups
    ]
    timings: list[list[float]] = [[] for _ in groups]
    for index in range(samples):
        for group, requests_ in enumerate(requests_of):
            began = time.perf_counter()
            loaded = iface.open_session(app, requests_[index])
            timings[group].append((time.perf_counter() - began) * 1000)
            if not loaded:
                raise SystemExit("a benchmark session did not load")
    return timings


# -- the run -------------------------------------------------------------------------------------


def app_config(
    sandbox: Sandbox, redis_url: str, key: str, prefix: str, session_prefix: str = ""
) -> dict[str, Any]:
    return {
        "SECRET_KEY": "bench",
        "SPARK_CLIENT_ID": "sandbox-client",
        "SPARK_CLIENT_SECRET": "sandbox-secret",
        "SPARK_ISSUER": sandbox.issuer,
        "SPARK_API_BASE_URL": sandbox.url + "/v1/",
        "SPARK_RESO_BASE_URL": sandbox.url + "/Reso/OData/",
        "SPARK_TOKEN_KEYS": key,
        "SPARK_REDIS_URL": redis_url,
        "SPARK_USER_AGENT": USER_AGENT,
        "SPARK_KEY_PREFIX": prefix,
        "SESSION_KEY_PREFIX": session_prefix or prefix + "session:",
        "SPARK_REQUIRE_HTTPS": "false",  # loopback, plain HTTP
    }


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def run(args: argparse.Namespace) -> list[str]:
    began = time.monotonic()
    load = os.getloadavg()[0]
    server = RedisServer().start()
    client = server.client()
    proxy = CountingProxy((server.host, server.port)).start()
    sandbox_server = GunicornServer(
        "bench_overhead:sandbox_app('{url}')", workers=1, env={}, args=gthread(16), cwd=HERE
    ).start("/.well-known/openid-configuration")
    storm_server: GunicornServer | None = None
    cluster: RedisClusterServer | None = None
    try:
        sandbox = Sandbox(sandbox_server.url)
        key = Fernet.generate_key().decode()
        # The main app has the default key prefixes (the Redis is this run's own), so that
        # the memory per session is what a deployment stores; the other apps have their own.
        prefix = "spark:"
        config = app_config(sandbox, server.url, key, prefix, "session:")
        app = bench_app(config)
        state = app.extensions["spark.state"]
        sid = sign_in_in_process(app)
        tokens = state.tokens.load(sid)
        app.extensions["bench.token"] = tokens.access_token
        # The same apps with their Redis through the counting proxy (same keys, same sessions).
        counted = bench_app({**config, "SPARK_REDIS_URL": proxy.url})
        counted.extensions["bench.token"] = tokens.access_token

        # 1. the decorator vs plain Flask-Session (same session contents under another prefix)
        plain_prefix = "plain:"
        iface = state.session_interface
        stored = iface.serializer.decode(client.get(iface.store_key(sid)))
        plain = plain_app(client, plain_prefix)
        reader = plain_app(client, plain_prefix, read_only=True)
        client.set(plain_prefix + sid, plain.session_interface.serializer.encode(stored), ex=3600)
        proxied = redis.Redis.from_url(proxy.url)
        guarded = WSGICall(app, "/protected", sid)
        unguarded = WSGICall(plain, "/protected", sid)
        read_only = WSGICall(reader, "/protected", sid)
        assert guarded() == unguarded() == read_only() == b"ok"
        rates1 = paired_rates(guarded, unguarded, args.session_calls, args.rounds)
        rates1r = paired_rates(guarded, read_only, args.session_calls, args.rounds)
        cmds_spark1 = commands_per_request(client, guarded, 200)
        cmds_plain1 = commands_per_request(client, unguarded, 200)
        cmds_reader = commands_per_request(client, read_only, 200)
        trips_default = round_trips(
            proxy, WSGICall(plain_app(proxied, plain_prefix), "/protected", sid), 200
        )
        trips_plain = round_trips(
            proxy,
            WSGICall(plain_app(proxied, plain_prefix, read_only=True), "/protected", sid),
            200,
        )
        trips_spark1 = round_trips(proxy, WSGICall(counted, "/protected", sid), 200)

        # 2. spark_api.get vs a pooled requests.Session with a known token
        via_spark = WSGICall(app, "/api", sid)
        by_hand = WSGICall(app, "/raw", sid)
        by_hand_tuned = WSGICall(app, "/raw-tuned", sid)
        assert via_spark() == by_hand() == by_hand_tuned() == MEMBER.id.encode()
        rates2 = paired_rates(via_spark, by_hand, args.api_calls, args.rounds)
        rates2t = paired_rates(via_spark, by_hand_tuned, args.api_calls, args.rounds)
        with counting_decryptions(app) as decrypted:
            cmds_spark2 = commands_per_request(client, via_spark, 100)
            decrypt_spark = decrypted[0] / 100
        trips_spark2 = round_trips(proxy, WSGICall(counted, "/api", sid), 100)
        reads_single = {
            "plain": server_reads([client], read_only, 100),
            "protected": server_reads([client], guarded, 100),
            "api": server_reads([client], via_spark, 100),
        }

        # 3. where the time of a spark_api view goes
        api_ms, shares = cost_breakdown(via_spark, args.api_calls * 3)

        # 5. bytes per signed-in session (taken now, before the storm adds sessions)
        registry = state.registry
        psid = stored["_spark"].get("psid")
        session_keys = {
            "session:{sid} (the session)": iface.store_key(sid),
            "tok:{sid} (encrypted tokens)": state.tokens.key(sid),
            "user:<sub> (index hash, 1 field)": registry.user_key(MEMBER.id),
        }
        if psid:
            session_keys["psid:<sid> (owner string)"] = registry.provider_key(psid)
        sizes = {
            label: int(client.memory_usage(name, samples=0) or 0)
            for label, name in session_keys.items()
        }
        token_sizes = {
            "access": len(tokens.access_token),
            "refresh": len(tokens.refresh_token or ""),
            "sealed": len(client.hget(state.tokens.key(sid), "d") or b""),
        }

        # 6a. 10,000 signed-in sessions in one Redis
        memory0 = int(client.info("memory")["used_memory"])
        few = add_sessions(app, sid, args.few)
        memory_few = int(client.info("memory")["used_memory"])
        many = few + add_sessions(app, sid, args.many - args.few)
        memory_many = int(client.info("memory")["used_memory"])
        loads_few, loads_many = session_loads(app, [few, many], args.samples)

        # 6b. a Redis Cluster: round trips per request, counted by the nodes
        cluster = RedisClusterServer().start()
        cluster_prefix = "cluster:"
        capp = bench_app(app_config(sandbox, cluster.url, key, cluster_prefix))
        csid = sign_in_in_process(capp)
        capp.extensions["bench.token"] = tokens.access_token
        nodes = [node.client() for node in cluster.nodes]
        cstate = capp.extensions["spark.state"]
        slots = {
            cstate.redis.keyslot(cstate.session_interface.store_key(csid)),
            cstate.redis.keyslot(cstate.tokens.key(csid)),
        }
        reads_cluster = {
            "protected": server_reads(nodes, WSGICall(capp, "/protected", csid), 100),
            "api": server_reads(nodes, WSGICall(capp, "/api", csid), 100),
        }
        for node in nodes:
            node.close()

        # 4. the refresh storm over 4 gunicorn workers
        storm_prefix = "storm:"
        storm_env = {
            k: str(v) for k, v in app_config(sandbox, server.url, key, storm_prefix).items()
        }
        storm_env["FLASK_SECRET_KEY"] = "bench"
        storm_server = GunicornServer(
            "bench_overhead:storm_app()",
            workers=STORM_WORKERS,
            env=storm_env,
            args=gthread(STORM_THREADS),
            cwd=HERE,
            backlog=1024,
        ).start("/protected")
        storm_sid = sign_in_over_http(storm_server.url)
        for _ in range(2):  # warm every worker's connection pools
            storm(storm_server.url, storm_sid, 50)
        calm_ms, calm_status = storm(storm_server.url, storm_sid, args.storm)
        before = sandbox.counters()
        if sandbox.expire_tokens() < 1:
            raise SystemExit("the sandbox had no token to expire")
        storm_ms, storm_status = storm(storm_server.url, storm_sid, args.storm)
        after = sandbox.counters()
        refreshes = after["refreshes"] - before["refreshes"]
        rejected = after["api_calls"] - before["api_calls"] - args.storm
        for statuses in (calm_status, storm_status):
            if set(statuses) != {200}:
                raise SystemExit(f"storm requests failed: {sorted(set(statuses))}")
        redis_version = client.info("server")["redis_version"]
    finally:
        if storm_server is not None:
            storm_server.stop()
        if cluster is not None:
            cluster.stop()
        sandbox_server.stop()
        proxy.stop()
        server.stop()

    ratio1, ratio1r, ratio2, ratio2t = rates1[2], rates1r[2], rates2[2], rates2t[2]
    total_bytes = sum(sizes.values())
    p50_storm, p99_storm = percentile(storm_ms, 50), percentile(storm_ms, 99)
    p99_ratio = p99_storm / percentile(calm_ms, 99)
    w = 28

    def row(label: str, ours: str, theirs: str) -> str:
        return f"   {label:<{w}}{ours:>22}{theirs:>24}"

    when = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        f"flask-spark overhead benchmark, {when}: {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, redis-server {redis_version}, all on loopback",
        f"(python benchmarks/bench_overhead.py; {time.monotonic() - began:.0f} s; "
        f"load average at start {load:.1f})",
        "",
        "1. @spark_login_required vs the same view on plain Flask-Session",
        f"   in-process WSGI; the median of {args.rounds} paired rounds "
        f"of {args.session_calls} requests",
        f"   {'':<{w}}{'flask-spark':>20}{'Flask-Session':>20}{'Flask-Session':>20}",
        f"   {'':<{w}}{'(idle timeout)':>20}{'(default)':>20}{'(read-only)':>20}",
        f"   {'requests/s':<{w}}{rates1[0]:>20,.0f}{rates1[1]:>20,.0f}{rates1r[1]:>20,.0f}",
        f"   {'ms/request':<{w}}{1000 / rates1[0]:>20.3f}{1000 / rates1[1]:>20.3f}"
        f"{1000 / rates1r[1]:>20.3f}",
        f"   {'Redis round trips/request':<{w}}{trips_spark1:>20g}{trips_default:>20g}"
        f"{trips_plain:>20g}",
        f"   {'Redis commands/request':<{w}}{describe(cmds_spark1):>20}"
        f"{describe(cmds_plain1):>20}{describe(cmds_reader):>20}",
        f"   {'ratio':<{w}}{'':>20}{ratio1:>20.2f}{ratio1r:>20.2f}",
        f"   vs Flask-Session as configured by default (it renews the TTL by writing the session "
        f"back): {ratio1:.2f}",
        f"   (goal >= 0.97: {verdict(ratio1 >= 0.97)}); vs Flask-Session reading only "
        f"(no renewal, no token record): {ratio1r:.2f}",
        f"   round trips added: {trips_spark1 - trips_plain:+g} "
        f"(goal +0: {verdict(trips_spark1 <= trips_plain)})",
        "",
        "2. spark_api.get('my/account') vs the same call by hand with a known token",
        "   in-process WSGI, HTTP keep-alive to the sandbox (gunicorn gthread);",
        f"   the median of {args.rounds} paired rounds of {args.api_calls} requests each",
        row("", "spark_api.get", "requests.Session()"),
        row("requests/s", f"{rates2[0]:,.0f}", f"{rates2[1]:,.0f}"),
        row("ms/request", f"{1000 / rates2[0]:.3f}", f"{1000 / rates2[1]:.3f}"),
        row("Redis round trips/request", f"{trips_spark2:g}", f"{trips_plain:g} (plain view)"),
        row("Redis commands/request", describe(cmds_spark2), ""),
        row("Fernet decryptions/request", f"{decrypt_spark:g}", "0"),
        f"   ratio {ratio2:.2f} (goal >= 0.95, aim 1.0: {verdict(ratio2 >= 0.95)}); "
        f"round trips vs a plain session view: {trips_spark2 - trips_plain:+g} "
        f"(goal +0: {verdict(trips_spark2 <= trips_plain)})",
        f"   the same by hand on flask-spark's own HTTP session (environment read once): "
        f"{rates2t[1]:,.0f} req/s, ratio {ratio2t:.2f}",
        "",
        f"3. Where a spark_api view's {api_ms:.3f} ms go (shares from cProfile, "
        f"{args.api_calls * 3} requests)",
    ]
    lines += [
        f"   {name:<34}{share * api_ms:>8.3f} ms{share * 100:>6.0f} %"
        for name, share in shares.items()
    ]
    lines += [
        "",
        f"4. Refresh storm: {args.storm} concurrent requests of one session calling spark_api.get,",
        f"   gunicorn {STORM_WORKERS} workers x {STORM_THREADS} threads (gthread), "
        "a new connection per request",
        row("", "token valid", "token just expired"),
        row("refreshes at the provider", "0", f"{refreshes}"),
        row("calls answered 1020", "0", f"{rejected}"),
        row("latency p50 (ms)", f"{percentile(calm_ms, 50):.0f}", f"{p50_storm:.0f}"),
        row("latency p99 (ms)", f"{percentile(calm_ms, 99):.0f}", f"{p99_storm:.0f}"),
        f"   all {2 * args.storm} answered 200; refreshes {refreshes} "
        f"(goal 1: {verdict(refreshes == 1)}); p99 ratio {p99_ratio:.2f} "
        f"(goal <= 1.5: {verdict(p99_ratio <= 1.5)})",
        "",
        "5. Redis memory per signed-in session (MEMORY USAGE ... SAMPLES 0)",
    ]
    lines += [f"   {label:<40}{size:>8,} B" for label, size in sizes.items()]
    lines += [
        f"   {'total':<40}{total_bytes:>8,} B (goal <= 2,048 B: {verdict(total_bytes <= 2048)})",
        f"   token set: access {token_sizes['access']} B, refresh {token_sizes['refresh']} B; "
        f"sealed record {token_sizes['sealed']} B (the id_token is validated, not stored)",
        "",
        f"6. Scale: {args.many:,} signed-in sessions in one Redis, and a Redis Cluster",
        row("", f"{args.few:,} sessions", f"{args.many:,} sessions"),
        row(
            "Redis used_memory added",
            f"{(memory_few - memory0) / 1024:,.0f} KiB",
            f"{(memory_many - memory0) / 1024 / 1024:,.1f} MiB",
        ),
        row(
            "  per session",
            f"{(memory_few - memory0) / args.few:,.0f} B",
            f"{(memory_many - memory0) / args.many:,.0f} B",
        ),
        row(
            "session load p50 (ms)",
            f"{percentile(loads_few, 50):.3f}",
            f"{percentile(loads_many, 50):.3f}",
        ),
        row(
            "session load p99 (ms)",
            f"{percentile(loads_few, 99):.3f}",
            f"{percentile(loads_many, 99):.3f}",
        ),
        f"   (open_session of a random session of each set, {args.samples} each, interleaved; "
        f"p50 ratio {percentile(loads_many, 50) / percentile(loads_few, 50):.2f})",
        "   Redis round trips/request, counted by the servers (INFO total_reads_processed):",
        row("", "one Redis", "Redis Cluster (3 nodes)"),
        row(
            "@spark_login_required view",
            f"{reads_single['protected']:g}",
            f"{reads_cluster['protected']:g}",
        ),
        row("spark_api view", f"{reads_single['api']:g}", f"{reads_cluster['api']:g}"),
        row("plain Flask-Session view", f"{reads_single['plain']:g}", ""),
        f"   a session's keys in {len(slots)} hash slot; the cluster adds "
        f"{reads_cluster['api'] - reads_single['api']:+g} round trips "
        f"(goal +0: {verdict(reads_cluster['api'] <= reads_single['api'])})",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="paired rounds per comparison")
    parser.add_argument("--session-calls", type=int, default=300, help="calls per round in 1")
    parser.add_argument("--api-calls", type=int, default=100, help="calls per round in 2")
    parser.add_argument("--storm", type=int, default=200, help="concurrent requests in 4")
    parser.add_argument("--few", type=int, default=100, help="the small session set in 6")
    parser.add_argument("--many", type=int, default=10_000, help="the large session set in 6")
    parser.add_argument("--samples", type=int, default=2000, help="session loads timed in 6")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {OUTPUT}")
    args = parser.parse_args()
    lines = run(args)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if not args.no_write:
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        OUTPUT.write_text(text)
        print(f"\nwritten to {OUTPUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

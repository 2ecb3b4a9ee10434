"""Benchmark: what flask-spark adds to a request, each figure measured side by side in one run.

Run from the repository root (about 20 s on 2 cores)::

    python benchmarks/bench_overhead.py

It prints a table and writes it to ``docs/_static/benchmarks.txt``, which ``docs/scaling.rst``
includes (``--no-write`` only prints). Everything runs on loopback: a real ``redis-server`` (the
embedded binary, over TCP), the sandbox as the Spark Platform served by gunicorn (one gthread
worker, HTTP keep-alive, like a production API server) and the apps below.

1. ``@spark_login_required`` view vs the same view on plain Flask-Session
   (``RedisSessionInterface``: same Redis, same session contents, same serializer): requests per
   second (in-process WSGI calls) and Redis commands per request (``INFO commandstats`` deltas).
   Goal: ratio >= 0.90; the decorator adds no Redis command.
2. A view calling ``spark_api.get("my/account")`` once vs the same view making the same call with
   a pooled ``requests.Session`` and a known token (both in-process WSGI, both over HTTP
   keep-alive to the sandbox). Goal: ratio >= 0.85; at most one extra Redis round trip and one
   Fernet decryption per request.
3. A refresh storm: 200 concurrent requests of one session, over 4 gunicorn workers (gthread,
   8 threads each), right after the sandbox expired the access token, next to the same 200
   requests with a valid token. Refreshes counted at the provider (goal: 1); client-side p50/p99.
4. Bytes stored in Redis per signed-in session: ``MEMORY USAGE`` of each of its keys
   (goal <= 2 KiB).

Throughput figures come from paired rounds (each round times both sides back to back, in
alternating order, so that a busy machine slows both sides of a pair alike); the table shows the
median pair by ratio.

The module is also the storm's WSGI app: ``gunicorn 'bench_overhead:storm_app()'`` (configured
by ``SPARK_*`` environment variables).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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
    raw_http = pooled_session()

    @app.get("/protected")
    @spark_login_required
    def protected() -> str:
        return "ok"

    @app.get("/api")
    @spark_login_required
    def api() -> str:
        return str(spark_api.get("my/account").first()["Id"])

    @app.get("/raw")
    @spark_login_required
    def raw() -> str:
        # The same call by hand: pooled requests.Session, a token known in advance.
        response = raw_http.get(
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

    return app


def plain_app(client: redis.Redis, key_prefix: str) -> Flask:
    """The same protected view on plain Flask-Session and a hand-written session check."""
    app = Flask("plain")
    app.config["SECRET_KEY"] = "bench"
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


# -- the run -------------------------------------------------------------------------------------


def app_config(sandbox: Sandbox, redis_url: str, key: str, prefix: str) -> dict[str, Any]:
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
        "SPARK_SESSION_KEY_PREFIX": prefix + "session:",
        "SPARK_REQUIRE_HTTPS": "false",  # loopback, plain HTTP
    }


def run(args: argparse.Namespace) -> list[str]:
    began = time.monotonic()
    load = os.getloadavg()[0]
    server = RedisServer().start()
    client = server.client()
    sandbox_server = GunicornServer(
        "bench_overhead:sandbox_app('{url}')", workers=1, env={}, args=gthread(16), cwd=HERE
    ).start("/.well-known/openid-configuration")
    storm_server: GunicornServer | None = None
    try:
        sandbox = Sandbox(sandbox_server.url)
        key = Fernet.generate_key().decode()
        prefix = f"bench{uuid.uuid4().hex[:6]}:"
        config = app_config(sandbox, server.url, key, prefix)
        app = bench_app(config)
        state = app.extensions["spark.state"]
        sid = sign_in_in_process(app)
        tokens = state.tokens.load(sid)
        app.extensions["bench.token"] = tokens.access_token

        # 1. the decorator vs plain Flask-Session (same session contents under another prefix)
        plain_prefix = prefix + "plain:"
        stored = client.get(f"{prefix}session:{sid}")
        client.set(plain_prefix + sid, stored or b"", ex=3600)
        plain = plain_app(client, plain_prefix)
        guarded = WSGICall(app, "/protected", sid)
        unguarded = WSGICall(plain, "/protected", sid)
        assert guarded() == unguarded() == b"ok"
        rates1 = paired_rates(guarded, unguarded, args.session_calls, args.rounds)
        cmds_spark1 = commands_per_request(client, guarded, 200)
        cmds_plain1 = commands_per_request(client, unguarded, 200)

        # 2. spark_api.get vs a pooled requests.Session with a known token
        via_spark = WSGICall(app, "/api", sid)
        by_hand = WSGICall(app, "/raw", sid)
        assert via_spark() == by_hand() == MEMBER.id.encode()
        rates2 = paired_rates(via_spark, by_hand, args.api_calls, args.rounds)
        with counting_decryptions(app) as decrypted:
            cmds_spark2 = commands_per_request(client, via_spark, 100)
            decrypt_spark = decrypted[0] / 100
            decrypted[0] = 0
            cmds_raw2 = commands_per_request(client, by_hand, 100)
            decrypt_raw = decrypted[0] / 100

        # 4. bytes per signed-in session (taken now, before the storm adds sessions)
        registry = state.registry
        stored = state.session_interface.serializer.decode(client.get(f"{prefix}session:{sid}"))
        psid = stored["_spark"].get("psid")
        session_keys = {
            "session (Flask-Session)": f"{prefix}session:{sid}",
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

        # 3. the refresh storm over 4 gunicorn workers
        storm_prefix = prefix + "storm:"
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
        sandbox_server.stop()
        server.stop()

    ratio1 = rates1[2]
    ratio2 = rates2[2]
    extra_cmds1 = sum(cmds_spark1.values()) - sum(cmds_plain1.values())
    extra_cmds2 = sum(cmds_spark2.values()) - sum(cmds_raw2.values())
    total_bytes = sum(sizes.values())

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT MET"

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
        f"   {'':<28}{'flask-spark':>22}{'plain Flask-Session':>24}",
        f"   {'requests/s':<28}{rates1[0]:>22,.0f}{rates1[1]:>24,.0f}",
        f"   {'ms/request':<28}{1000 / rates1[0]:>22.3f}{1000 / rates1[1]:>24.3f}",
        f"   {'Redis commands/request':<28}{describe(cmds_spark1):>22}{describe(cmds_plain1):>24}",
        f"   ratio {ratio1:.2f} (goal >= 0.90: {verdict(ratio1 >= 0.90)}); "
        f"commands added by the decorator: {extra_cmds1:+g} (goal +0: {verdict(extra_cmds1 <= 0)})",
        "",
        "2. spark_api.get('my/account') vs the same call, pooled requests.Session + known token",
        "   in-process WSGI, HTTP keep-alive to the sandbox (gunicorn);",
        f"   the median of {args.rounds} paired rounds of {args.api_calls} requests",
        f"   {'':<28}{'spark_api.get':>22}{'requests by hand':>24}",
        f"   {'requests/s':<28}{rates2[0]:>22,.0f}{rates2[1]:>24,.0f}",
        f"   {'ms/request':<28}{1000 / rates2[0]:>22.3f}{1000 / rates2[1]:>24.3f}",
        f"   {'Redis commands/request':<28}{describe(cmds_spark2):>22}{describe(cmds_raw2):>24}",
        f"   {'Fernet decryptions/request':<28}{decrypt_spark:>22g}{decrypt_raw:>24g}",
        f"   ratio {ratio2:.2f} (goal >= 0.85: {verdict(ratio2 >= 0.85)}); extra: "
        f"{extra_cmds2:+g} Redis round trip, {decrypt_spark - decrypt_raw:+g} decryption "
        f"(goal <= +1 each: {verdict(extra_cmds2 <= 1 and decrypt_spark - decrypt_raw <= 1)})",
        "",
        f"3. Refresh storm: {args.storm} concurrent requests of one session calling spark_api.get,",
        f"   gunicorn {STORM_WORKERS} workers x {STORM_THREADS} threads (gthread), "
        "a new connection per request",
        f"   {'':<28}{'token valid':>22}{'token just expired':>24}",
        f"   {'refreshes at the provider':<28}{0:>22}{refreshes:>24}",
        f"   {'calls answered 1020':<28}{0:>22}{rejected:>24}",
        f"   {'latency p50 (ms)':<28}{percentile(calm_ms, 50):>22.0f}"
        f"{percentile(storm_ms, 50):>24.0f}",
        f"   {'latency p99 (ms)':<28}{percentile(calm_ms, 99):>22.0f}"
        f"{percentile(storm_ms, 99):>24.0f}",
        f"   all {2 * args.storm} answered 200; "
        f"refreshes {refreshes} (goal 1: {verdict(refreshes == 1)})",
        "",
        "4. Redis memory per signed-in session (MEMORY USAGE ... SAMPLES 0)",
    ]
    lines += [f"   {label:<40}{size:>8,} B" for label, size in sizes.items()]
    lines += [
        f"   {'total':<40}{total_bytes:>8,} B (goal <= 2,048 B: {verdict(total_bytes <= 2048)})",
        f"   token set: access {token_sizes['access']} B, refresh {token_sizes['refresh']} B; "
        f"sealed record {token_sizes['sealed']} B (the id_token is validated, not stored)",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="paired rounds per comparison")
    parser.add_argument("--session-calls", type=int, default=300, help="calls per round in 1")
    parser.add_argument("--api-calls", type=int, default=100, help="calls per round in 2")
    parser.add_argument("--storm", type=int, default=200, help="concurrent requests in 3")
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

"""The example app under gunicorn with 4 worker processes, the sandbox and the test Redis.

No sticky sessions: the sign-in is served by one worker and later requests by others, because
everything a request needs is in Redis. A refresh storm (many requests of one session arriving
at several workers after its access token expired) causes exactly one refresh at the provider;
the sandbox detects refresh-token reuse, so a second refresh would end the sign-in and fail the
requests that used it.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from flask_spark.sandbox import SandboxServer
from flask_spark.testing.redis_server import RedisServer

from .conftest import FERNET_KEY
from .gunicorn_server import GunicornServer
from .helpers import MEMBER, sign_in_over_http, storm_with_refresh_held

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 4
STORM = 24


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"w{uuid.uuid4().hex[:10]}:"


@pytest.fixture(scope="module")
def example(
    sandbox_server: SandboxServer,
    redis_server: RedisServer,
    prefix: str,
) -> Iterator[GunicornServer]:
    sandbox = sandbox_server
    env = {
        **os.environ,
        "SPARK_CLIENT_ID": "sandbox-client",
        "SPARK_CLIENT_SECRET": "sandbox-secret",
        "SPARK_ISSUER": sandbox.issuer,
        "SPARK_API_BASE_URL": sandbox.url + "/v1/",
        "SPARK_RESO_BASE_URL": sandbox.url + "/Reso/OData/",
        "SPARK_TOKEN_KEYS": FERNET_KEY,
        "SPARK_REDIS_URL": redis_server.url,
        "SPARK_KEY_PREFIX": prefix,
        "SESSION_KEY_PREFIX": prefix + "session:",
        "SPARK_USER_AGENT": "flask-spark-many-workers-test",
        "SPARK_REQUIRE_HTTPS": "false",  # every URL is on loopback, over plain HTTP
        # The storm test holds the provider's answer while requests pile up: the refresh lock
        # (and its waiters) must outlast that.
        "SPARK_HTTP_TIMEOUT": "30",
        "FLASK_SECRET_KEY": "many-workers-test-secret",
    }
    server = GunicornServer("tests.example_app:create_app()", workers=WORKERS, env=env)
    try:
        yield server.start("/healthz")
    finally:
        server.stop()


def pid_of(response: requests.Response) -> int:
    return int(response.headers["X-Worker-Pid"])


def sign_in(base: str) -> tuple[requests.Session, int]:
    """The real sign-in; returns the browser and the pid of the worker that served the
    callback (where the session was created)."""
    browser, done = sign_in_over_http(base, "/dashboard")
    return browser, pid_of(done)


def test_sign_in_on_one_worker_then_served_by_the_others(
    example: GunicornServer, sandbox: SandboxServer, redis_client: redis.Redis, prefix: str
) -> None:
    workers = example.worker_pids
    assert len(workers) == WORKERS
    browser, signed_in_by = sign_in(example.url)
    assert signed_in_by in workers
    sid = browser.cookies["session"]
    assert redis_client.exists(f"{prefix}tok:{{session:{sid}}}")

    # Every worker knows the user (no sticky sessions); keep asking until another one answers.
    served_by: Counter[int] = Counter()
    for _ in range(200):
        answer = browser.get(example.url + "/healthz", timeout=10)
        assert answer.status_code == 200
        assert answer.json() == {"status": "ok", "user": MEMBER.id}
        served_by[pid_of(answer)] += 1
        if set(served_by) - {signed_in_by}:
            break
    assert set(served_by) <= workers
    assert set(served_by) - {signed_in_by}, served_by

    # A page that calls the Spark API and the RESO Web API, from whichever worker gets it.
    page = browser.get(example.url + "/dashboard", timeout=10)
    assert page.status_code == 200
    assert MEMBER.name in page.text
    assert pid_of(page) in workers


def test_refresh_storm_across_workers_refreshes_once(
    example: GunicornServer, sandbox: SandboxServer, redis_client: redis.Redis, prefix: str
) -> None:
    browser, _ = sign_in(example.url)
    sid = browser.cookies["session"]
    assert browser.get(example.url + "/dashboard", timeout=10).status_code == 200

    assert sandbox.expire_tokens(MEMBER.id) == 1
    start = sandbox.counters()
    barrier = threading.Barrier(STORM)

    def one_request(_: int) -> tuple[int, int, str]:
        barrier.wait(timeout=60)
        response = requests.get(
            example.url + "/dashboard",
            cookies={"session": sid},
            headers={"Connection": "close"},
            timeout=120,
        )
        return response.status_code, pid_of(response), response.text

    # A request in every (sync, one-request-at-a-time) worker meets the expired token first.
    results = storm_with_refresh_held(sandbox, one_request, STORM, expired_calls=WORKERS)
    end = sandbox.counters()

    assert [status for status, _, _ in results] == [200] * STORM, results[0][2][:500]
    assert all(MEMBER.name in text for _, _, text in results)
    pids = Counter(pid for _, pid, _ in results)
    assert set(pids) <= example.worker_pids
    assert len(pids) >= 2, pids  # the storm hit several processes

    delta = {name: end[name] - start[name] for name in end}
    assert delta["refreshes"] == 1, delta
    assert delta["refresh_reuse"] == 0
    assert delta["refresh_failures"] == 0
    # Each page makes two API calls; the extra ones are calls refused with 1020 (then retried):
    # every worker held the expired token at the same time.
    assert delta["api_calls"] - 2 * STORM >= WORKERS, delta

    assert redis_client.hget(f"{prefix}tok:{{session:{sid}}}", "v") == b"2"
    assert redis_client.exists(f"{prefix}lock:{{{sid}}}") == 0
    assert browser.get(example.url + "/dashboard", timeout=10).status_code == 200
    assert sandbox.counters()["refreshes"] == end["refreshes"]

"""Many requests, several processes, one expired token: exactly one refresh at the provider.

A real gunicorn (2 gthread workers) serves ``tests/concurrency_app.py``; a browser signs in
through it and the sandbox; the sandbox then expires the token and 50 requests carrying that
session are released together by a barrier, while the sandbox holds its token endpoint until
every one of them has met the expired token. The sandbox detects refresh-token reuse, so a
second refresh would revoke the whole sign-in and fail the requests that used it.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from flask_spark.sandbox import SandboxServer
from flask_spark.testing.redis_server import RedisServer

from .concurrency_app import environment
from .conftest import FERNET_KEY
from .gunicorn_server import GunicornServer
from .helpers import MEMBER, sign_in_over_http, storm_with_refresh_held

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = 50
WORKERS = 2
THREADS = 32  # per worker: 64 request slots for 50 requests, all in flight at once
#: A worker accepts at most this many connections at a time, so one worker cannot take the
#: whole burst: at least REQUESTS - THREADS of them must go to another process.
WORKER_CONNECTIONS = THREADS


@pytest.fixture
def server(
    sandbox: SandboxServer, redis_server: RedisServer, key_prefix: str
) -> Iterator[GunicornServer]:
    env = environment(sandbox.url, redis_server.url, key_prefix, FERNET_KEY)
    gunicorn = GunicornServer(
        "tests.concurrency_app:create_app()",
        workers=WORKERS,
        env=env,
        args=[
            "--worker-class",
            "gthread",
            "--threads",
            str(THREADS),
            "--worker-connections",
            str(WORKER_CONNECTIONS),
            "--keep-alive",
            "0",
        ],
    )
    try:
        yield gunicorn.start("/health")
    finally:
        gunicorn.stop()


def sign_in(base: str) -> requests.Session:
    """The real sign-in, as a browser, through the gunicorn-served app."""
    return sign_in_over_http(base, "/whoami")[0]


def test_one_refresh_for_many_requests_across_processes(
    server: GunicornServer,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    browser = sign_in(server.url)
    sid = browser.cookies["session"]
    assert browser.get(server.url + "/account", timeout=10).json()["id"] == MEMBER.id

    assert sandbox.expire_tokens(MEMBER.id) == 1
    start = sandbox.counters()
    barrier = threading.Barrier(REQUESTS)

    def one_request(_: int) -> tuple[int, Any]:
        barrier.wait(timeout=60)
        response = requests.get(
            server.url + "/account",
            cookies={"session": sid},
            headers={"Connection": "close", "Accept": "application/json"},
            timeout=120,
        )
        return response.status_code, response.json() if response.ok else response.text

    # Every request reaches the API with the expired token (and gets 1020) before the refresh.
    results = storm_with_refresh_held(sandbox, one_request, REQUESTS, expired_calls=REQUESTS)
    end = sandbox.counters()

    failures = [r for r in results if r[0] != 200]
    assert not failures, failures[:3]
    assert all(body["id"] == MEMBER.id for _, body in results)
    pids = Counter(body["pid"] for _, body in results)
    assert len(pids) >= WORKERS, pids  # served by every worker process

    refreshed = {name: end[name] - start[name] for name in end}
    assert refreshed["refreshes"] == 1, refreshed
    assert refreshed["refresh_reuse"] == 0
    assert refreshed["refresh_failures"] == 0
    assert refreshed["token_errors"] == 0
    rejected = refreshed["api_calls"] - REQUESTS  # calls answered 1020, each retried once
    assert rejected == REQUESTS, refreshed

    # Still signed in, on the refreshed token (record version 2), without another refresh.
    whoami = browser.get(server.url + "/whoami", timeout=10)
    assert whoami.status_code == 200
    assert whoami.json()["sub"] == MEMBER.id
    assert browser.get(server.url + "/account", timeout=10).status_code == 200
    assert sandbox.counters()["refreshes"] == end["refreshes"]
    assert redis_client.hget(f"{key_prefix}tok:{{{key_prefix}session:{sid}}}", "v") == b"2"
    assert redis_client.exists(f"{key_prefix}lock:{{{sid}}}") == 0

"""Redis round trips per request, counted at the protocol level by a proxy in front of Redis.

A protected view that calls the Spark API costs as many round trips as a plain Flask-Session
view: the token record is read in the session's round trip. Counts, not times.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from flask import Flask, session
from werkzeug.test import TestResponse

from flask_spark.sandbox import SandboxServer
from flask_spark.testing.redis_server import RedisServer

from .conftest import make_app
from .helpers import FlowClient
from .redis_proxy import CountingProxy


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[CountingProxy]:
    address = urlsplit(redis_server.url)
    with CountingProxy((address.hostname or "127.0.0.1", address.port or 6379)) as counting:
        yield counting


def round_trips(proxy: CountingProxy, request: Callable[[], TestResponse]) -> int:
    """Round trips of one request, after a first one that warms the connection pool."""
    assert request().status_code == 200
    before = proxy.round_trips
    response = request()
    assert response.status_code == 200, response.get_data(as_text=True)
    return proxy.round_trips - before


@pytest.fixture
def plain_session_view(proxy: CountingProxy, config: dict[str, Any], key_prefix: str) -> Any:
    """A view that reads a plain Flask-Session session (Redis through the proxy).

    Set to read the session only (by default Flask-Session also writes it back on every
    request to renew its TTL: two round trips; ours renews it with the read).
    """
    from flask_session import Session

    app = Flask("plain")
    app.config.update(
        SECRET_KEY="test",
        SESSION_TYPE="redis",
        SESSION_REDIS=redis.Redis.from_url(proxy.url),
        SESSION_KEY_PREFIX=key_prefix + "plain:",
        SESSION_PERMANENT=False,
        SESSION_REFRESH_EACH_REQUEST=False,
    )
    Session(app)

    @app.get("/in")
    def sign_in() -> str:
        session["user"] = "someone"
        return "ok"

    @app.get("/read")
    def read() -> str:
        return str(session.get("user"))

    browser = app.test_client()
    assert browser.get("/in").status_code == 200
    return lambda: browser.get("/read")


def test_an_api_view_costs_the_round_trips_of_a_plain_session_view(
    config: dict[str, Any], sandbox: SandboxServer, proxy: CountingProxy, plain_session_view: Any
) -> None:
    config["SPARK_REDIS_URL"] = proxy.url
    app: Flask = make_app(config)
    flow = FlowClient(app, sandbox)
    flow.login()

    plain = round_trips(proxy, plain_session_view)
    protected = round_trips(proxy, lambda: flow.get("/called"))
    api_view = round_trips(proxy, lambda: flow.get("/dashboard"))
    api_calls = sandbox.counters()["api_calls"]

    assert plain == 1
    assert protected == plain
    assert api_view == plain, "the token record must come in the session's round trip"
    assert api_calls >= 2  # the API view did call the API


def test_a_visitor_without_a_cookie_costs_no_round_trip(
    config: dict[str, Any], proxy: CountingProxy
) -> None:
    config["SPARK_REDIS_URL"] = proxy.url
    app: Flask = make_app(config)
    browser = app.test_client()
    assert round_trips(proxy, lambda: browser.get("/")) == 0


def test_the_record_read_with_the_session_never_enters_the_session_data(
    config: dict[str, Any], sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    app: Flask = make_app(config)
    seen: list[dict[str, Any]] = []

    @app.get("/peek")
    def peek() -> str:
        seen.append(dict(session))
        session["touched"] = True  # written back: what is written is the session data only
        return "ok"

    flow = FlowClient(app, sandbox)
    flow.login()
    sid = flow.cookie()
    assert flow.get("/peek").status_code == 200
    blob = redis_client.hget(f"{key_prefix}tok:{{{key_prefix}session:{sid}}}", "d")
    stored = redis_client.get(f"{key_prefix}session:{sid}")
    assert blob
    assert stored
    data = app.session_interface.serializer.decode(stored)
    assert data is not None
    assert data["touched"] is True
    assert set(data) == set(seen[0]) | {"touched"}
    assert all(not isinstance(value, bytes) for value in data.values())
    assert blob not in stored

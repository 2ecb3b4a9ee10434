"""A small flask-spark app for a real multi-process server (``tests/test_concurrency.py``).

Configured from the environment, so that gunicorn can serve it with
``gunicorn 'tests.concurrency_app:create_app()'``. Not debug, not testing: the production checks
apply (keys, Redis URL and user agent required); plain HTTP is allowed because every URL is on
loopback and ``SPARK_REQUIRE_HTTPS`` is off for the test.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from flask_spark import SparkAuth, spark_api, spark_login_required, spark_user
from tests.gunicorn_server import mark_worker_ready


def environment(
    sandbox_url: str, redis_url: str, key_prefix: str, token_keys: str
) -> dict[str, str]:
    """The environment gunicorn needs to serve this app (the test process's, plus its own)."""
    return {
        **os.environ,
        "CONCURRENCY_SANDBOX_URL": sandbox_url,
        "CONCURRENCY_REDIS_URL": redis_url,
        "CONCURRENCY_TOKEN_KEYS": token_keys,
        "CONCURRENCY_KEY_PREFIX": key_prefix,
    }


def create_app() -> Flask:
    """The app gunicorn serves; marks this worker ready once its app is built."""
    env = os.environ
    sandbox = env["CONCURRENCY_SANDBOX_URL"]
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY="concurrency-test-secret",
        SPARK_CLIENT_ID="sandbox-client",
        SPARK_CLIENT_SECRET="sandbox-secret",
        SPARK_ISSUER=sandbox,
        SPARK_API_BASE_URL=sandbox + "/v1/",
        SPARK_RESO_BASE_URL=sandbox + "/Reso/OData/",
        SPARK_TOKEN_KEYS=env["CONCURRENCY_TOKEN_KEYS"],
        SPARK_REDIS_URL=env["CONCURRENCY_REDIS_URL"],
        SPARK_KEY_PREFIX=env["CONCURRENCY_KEY_PREFIX"],
        SESSION_KEY_PREFIX=env["CONCURRENCY_KEY_PREFIX"] + "session:",
        SPARK_USER_AGENT="flask-spark-concurrency-test",
        SPARK_REQUIRE_HTTPS=False,
        SPARK_HTTP_TIMEOUT=30.0,
        # A test may hold the provider's answer while many requests pile up: the refresh lock
        # must outlast that, and the waiters with it.
        SPARK_LOCK_TIMEOUT=120.0,
        SPARK_LOCK_WAIT=120.0,
    )
    SparkAuth(app)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "pid": os.getpid()}

    @app.get("/account")
    @spark_login_required
    def account() -> dict[str, Any]:
        return {"pid": os.getpid(), "id": spark_api.get("my/account").first()["Id"]}

    @app.get("/whoami")
    @spark_login_required
    def whoami() -> dict[str, Any]:
        return {"pid": os.getpid(), "sub": spark_user.id}

    mark_worker_ready()
    return app

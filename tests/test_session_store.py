"""The server-side session store: an in-flight request cannot undo a logout done elsewhere."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
from flask import Flask, session

from flask_spark.sandbox import SandboxServer

from .conftest import make_app
from .helpers import MEMBER, FlowClient, job_handle


def test_in_flight_request_does_not_resurrect_a_destroyed_session(
    config: dict[str, Any], sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    app: Flask = make_app(config)
    entered, release = threading.Event(), threading.Event()

    @app.get("/slow")
    def slow() -> str:
        session["touched"] = True  # a modified session is written back at the end
        entered.set()
        assert release.wait(120)
        return "done"

    flow = FlowClient(app, sandbox)
    flow.login("/dashboard")
    sid = flow.cookie()
    key = f"{key_prefix}session:{sid}"
    assert redis_client.exists(key)

    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(flow.get("/slow").status_code))
    worker.start()
    assert entered.wait(120)
    # Meanwhile the provider signs the user out everywhere (back-channel logout).
    state = app.extensions["spark.state"]
    try:
        assert state.registry.destroy_all(sub=MEMBER.id)
        assert not redis_client.exists(key)
    finally:
        release.set()
        worker.join(120)
    assert results == [200]
    assert not redis_client.exists(key), "the in-flight request wrote the session back"
    assert flow.get("/dashboard").status_code == 302


def flask_session_app(config: dict[str, Any], client: redis.Redis, prefix: str) -> Flask:
    """An app on Flask-Session's Redis sessions (set up by the app itself), with a cart."""
    from flask_session import Session

    app = Flask(__name__)
    app.config.update(config)
    app.config.update(SESSION_TYPE="redis", SESSION_REDIS=client, SESSION_KEY_PREFIX=prefix)
    Session(app)

    @app.post("/cart/<item>")
    def add(item: str) -> str:
        session["cart"] = [*session.get("cart", []), item]
        return "added"

    @app.get("/cart")
    def cart() -> dict[str, Any]:
        return {"cart": session.get("cart", [])}

    return app


def test_a_flask_session_app_keeps_its_visitors_sessions_when_it_adds_flask_spark(
    config: dict[str, Any], sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    from flask_spark import SparkAuth
    from flask_spark.ext.session_interface import SparkSessionInterface

    prefix = key_prefix + "fs:"
    before = flask_session_app(config, redis_client, prefix).test_client()
    before.post("/cart/book")
    cookie = before.get_cookie("session")
    assert cookie is not None
    assert redis_client.exists(prefix + cookie.value)  # Flask-Session's own key format

    app = flask_session_app(config, redis_client, prefix)
    SparkAuth(app)  # the upgrade: the same app, now with flask-spark
    iface = app.session_interface
    assert isinstance(iface, SparkSessionInterface)
    assert (iface.key_prefix, iface.client) == (prefix, redis_client)
    flow = FlowClient(app, sandbox)
    flow.client.set_cookie("session", cookie.value)
    assert flow.get("/cart").json == {"cart": ["book"]}
    flow.post("/cart/pen")
    assert flow.get("/cart").json == {"cart": ["book", "pen"]}
    flow.login("/dashboard")
    assert flow.cookie() != cookie.value  # a new id at sign-in
    assert redis_client.exists(f"{key_prefix}tok:{{{prefix}{flow.cookie()}}}")  # same slot


def test_a_session_interface_other_than_flask_sessions_redis_one_is_refused(
    config: dict[str, Any],
) -> None:
    from cachelib import SimpleCache
    from flask_session import Session

    from flask_spark import SparkAuth
    from flask_spark.core.errors import SparkConfigError

    app = Flask(__name__)
    app.config.update(config, SESSION_TYPE="cachelib", SESSION_CACHELIB=SimpleCache())
    Session(app)
    with pytest.raises(SparkConfigError, match="SESSION_TYPE = 'redis'"):
        SparkAuth(app)


def test_an_unfinished_sign_in_holds_redis_only_for_the_transaction_ttl(
    config: dict[str, Any], sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    app = make_app(config, transaction_ttl=120)
    flow = FlowClient(app, sandbox)
    flow.start_login("/dashboard")  # a visitor (or a bot) who never comes back
    assert flow.cookie() is None  # no server-side session for a visitor signing in
    assert list(redis_client.scan_iter(match=key_prefix + "session:*")) == []
    (key,) = redis_client.scan_iter(match=key_prefix + "*")
    assert key.decode() == f"{key_prefix}txn:{{{flow.binding()}}}"
    assert 0 < redis_client.ttl(key) <= 120
    flow.login("/dashboard")
    signed_in = f"{key_prefix}session:{flow.cookie()}"
    assert redis_client.ttl(signed_in) > 120  # a signed-in session gets the idle timeout


def test_signing_in_again_drops_the_previous_token_record(
    flow: FlowClient, redis_client: redis.Redis, key_prefix: str
) -> None:
    flow.login("/dashboard")
    first = flow.cookie()
    assert redis_client.exists(f"{key_prefix}tok:{{{key_prefix}session:{first}}}")
    flow.login("/dashboard")
    assert flow.cookie() != first
    assert not redis_client.exists(f"{key_prefix}tok:{{{key_prefix}session:{first}}}")
    assert flow.get("/dashboard").status_code == 200


def test_flask_session_set_up_after_sparkauth_is_refused_loudly(
    config: dict[str, Any], redis_client: redis.Redis, key_prefix: str
) -> None:
    from flask_session import Session

    from flask_spark import SparkAuth

    app = Flask(__name__)
    app.config.update(config, SESSION_TYPE="redis", SESSION_REDIS=redis_client)
    SparkAuth(app)
    Session(app)  # replaces flask-spark's interface behind its back

    @app.get("/")
    def home() -> str:
        return "home"

    client = app.test_client()
    assert client.get("/").data == b"home"  # the app's own pages are the app's business
    response = client.get("/spark/login")
    assert response.status_code == 500
    assert b"before SparkAuth(app)" in response.data


def test_a_background_client_stops_when_the_user_signs_out_elsewhere(
    app: Flask, flow: FlowClient
) -> None:
    from flask_spark.core.errors import SessionExpired

    flow.login("/dashboard")
    sid = flow.cookie() or ""
    job = app.extensions["spark"].api_for_job(job_handle(app, sid), app)
    assert job.get("my/account").first()["Id"] == MEMBER.id
    app.extensions["spark.state"].registry.destroy_all(sub=MEMBER.id)  # back-channel logout
    with pytest.raises(SessionExpired):
        job.get("my/account")


def test_a_session_ended_by_a_refused_refresh_leaves_no_index_behind(
    app: Flask, flow: FlowClient, sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    flow.login("/dashboard")
    tokens = app.extensions["spark.state"].tokens.load(flow.cookie() or "")
    assert sandbox.state.revoke_refresh_token(tokens.refresh_token)  # the grant is gone
    sandbox.expire_tokens(MEMBER.id)
    assert flow.get("/dashboard").status_code == 302  # the refresh is refused: signed out
    assert list(redis_client.scan_iter(match=key_prefix + "*")) == [], "index keys left behind"


def test_a_slow_request_of_an_old_session_leaves_the_newer_sign_ins_cookie_alone(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    from flask_spark import spark_api

    app: Flask = make_app(config)
    entered, release = threading.Event(), threading.Event()

    @app.get("/slow-api")
    def slow_api() -> str:
        entered.set()
        assert release.wait(120)
        spark_api.get("my/account")  # its sign-in ended meanwhile: the session is cleared
        return "unreachable"

    flow = FlowClient(app, sandbox)
    flow.login("/dashboard")
    old = flow.cookie()
    answers: list[Any] = []
    worker = threading.Thread(target=lambda: answers.append(flow.get("/slow-api")))
    worker.start()
    assert entered.wait(120)
    try:
        sandbox.expire_tokens(MEMBER.id)  # the old request will need a refresh: none is left
        flow.login("/dashboard")  # the same browser signs in again: the old session ends
        new = flow.cookie()
        assert new != old
    finally:
        release.set()
        worker.join(120)
    (answer,) = answers
    assert answer.status_code == 302  # answered as signed out...
    assert "session=" not in " ".join(answer.headers.getlist("Set-Cookie"))  # ...cookie untouched
    assert flow.cookie() == new
    assert flow.get("/dashboard").status_code == 200

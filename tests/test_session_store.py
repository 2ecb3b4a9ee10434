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
        assert release.wait(10)
        return "done"

    flow = FlowClient(app, sandbox)
    flow.login("/dashboard")
    sid = flow.cookie()
    key = f"{key_prefix}session:{{{sid}}}"
    assert redis_client.exists(key)

    results: list[int] = []
    worker = threading.Thread(target=lambda: results.append(flow.get("/slow").status_code))
    worker.start()
    assert entered.wait(10)
    # Meanwhile the provider signs the user out everywhere (back-channel logout).
    state = app.extensions["spark.state"]
    try:
        assert state.registry.destroy_all(sub=MEMBER.id)
        assert not redis_client.exists(key)
    finally:
        release.set()
        worker.join(10)
    assert results == [200]
    assert not redis_client.exists(key), "the in-flight request wrote the session back"
    assert flow.get("/dashboard").status_code == 302


def flask_session_app(config: dict[str, Any], client: redis.Redis, prefix: str) -> Flask:
    """An app configured for Flask-Session's Redis sessions (not yet initialised)."""
    app = Flask(__name__)
    app.config.update(config)
    app.config.update(SESSION_TYPE="redis", SESSION_REDIS=client, SESSION_KEY_PREFIX=prefix)
    return app


def test_an_app_with_flask_session_gets_the_safe_subclass(
    config: dict[str, Any], redis_client: redis.Redis, key_prefix: str
) -> None:
    from flask_session import Session

    from flask_spark import SparkAuth
    from flask_spark.ext.session_interface import SparkSessionInterface

    app = flask_session_app(config, redis_client, key_prefix + "fs:")
    Session(app)
    SparkAuth(app)
    iface = app.session_interface
    assert isinstance(iface, SparkSessionInterface)
    assert iface.key_prefix == key_prefix + "fs:"  # the app's own settings are kept
    assert iface.client is redis_client


def test_a_foreign_session_interface_is_refused_unless_accepted(config: dict[str, Any]) -> None:
    from flask.sessions import SessionInterface

    from flask_spark import SparkAuth
    from flask_spark.core.errors import SparkConfigError

    class Custom(SessionInterface):
        def regenerate(self, session: Any) -> None:
            """A stand-in for some other server-side session."""

        def store_key(self, sid: str) -> str:
            return f"custom:{sid}"

    app = Flask(__name__)
    app.config.update(config)
    app.session_interface = Custom()
    with pytest.raises(SparkConfigError, match="its own session interface"):
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
    signed_in = f"{key_prefix}session:{{{flow.cookie()}}}"
    assert redis_client.ttl(signed_in) > 120  # a signed-in session gets the idle timeout


def test_signing_in_again_drops_the_previous_token_record(
    flow: FlowClient, redis_client: redis.Redis, key_prefix: str
) -> None:
    flow.login("/dashboard")
    first = flow.cookie()
    assert redis_client.exists(f"{key_prefix}tok:{{{first}}}")
    flow.login("/dashboard")
    assert flow.cookie() != first
    assert not redis_client.exists(f"{key_prefix}tok:{{{first}}}")
    assert flow.get("/dashboard").status_code == 200


def test_flask_session_set_up_after_sparkauth_is_refused_loudly(
    config: dict[str, Any], redis_client: redis.Redis, key_prefix: str
) -> None:
    from flask_session import Session

    from flask_spark import SparkAuth

    app = flask_session_app(config, redis_client, "x:")
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


def test_a_large_session_is_stored_compressed_and_a_small_one_as_json(
    config: dict[str, Any], sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    app = make_app(config)
    flow = FlowClient(app, sandbox)
    flow.login()  # a signed-in session holds the user's claims: large
    iface = app.session_interface
    stored = redis_client.get(f"{key_prefix}session:{{{flow.cookie()}}}")
    assert stored is not None
    assert not stored.startswith(b"{")
    data = iface.decode(stored)
    assert data is not None
    plain = iface.serializer.dumps(data).encode()
    assert len(stored) < len(plain) * 0.75
    assert flow.get("/dashboard").status_code == 200  # and it reads back

    assert iface.encode({"n": 1}) == b'{"n":1}'  # small: plain JSON
    assert iface.decode(iface.encode(data)) == data
    assert iface.decode(b"\x78not zlib") is None  # unreadable: a fresh session, no error


def test_a_client_that_decodes_responses_gets_plain_json(redis_server: Any) -> None:
    from flask_spark.ext.session_interface import SparkSessionInterface

    iface = SparkSessionInterface(redis_server.client(decode_responses=True))
    big = {"claims": {f"claim{i}": "value" * 5 for i in range(40)}}
    assert iface.encode(big).startswith(b"{")
    assert iface.decode(iface.encode(big).decode()) == big

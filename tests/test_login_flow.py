"""Sign-in end to end: the app, a real Redis and the sandbox over real HTTP."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import requests
from flask import Flask

from flask_spark import logged_in, login_failed
from flask_spark.sandbox import SandboxServer
from flask_spark.testing.redis_server import RedisServer

from .conftest import app_config, make_app
from .helpers import MEMBER, FlowClient, live_grants, query


def all_values(client: redis.Redis, prefix: str) -> dict[str, bytes]:
    """Every value under ``prefix`` (strings, hashes and sets flattened to bytes)."""
    out: dict[str, bytes] = {}
    for key in client.scan_iter(match=prefix + "*"):
        kind = client.type(key)
        if kind == b"string":
            out[key.decode()] = client.get(key) or b""
        elif kind == b"hash":
            out[key.decode()] = b"|".join(v for v in client.hgetall(key).values())
        elif kind == b"set":
            out[key.decode()] = b"|".join(client.smembers(key))
    return out


def test_protected_view_redirects_to_login_with_next(flow: FlowClient) -> None:
    response = flow.get("/dashboard?tab=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/spark/login?next=/dashboard?tab%3D1"


def test_authorize_request_has_every_required_parameter(
    flow: FlowClient, sandbox: SandboxServer
) -> None:
    params = query(flow.start_login("/dashboard"))
    assert params["response_type"] == "code"
    assert params["client_id"] == "sandbox-client"
    assert params["redirect_uri"] == "http://localhost/spark/callback"
    assert params["scope"] == "openid"
    assert params["code_challenge_method"] == "S256"
    assert 43 <= len(params["code_challenge"]) <= 128
    assert len(params["state"]) >= 32
    assert len(params["nonce"]) >= 32
    assert params["state"] != params["nonce"]


def test_full_login_then_spark_api_in_protected_view(
    flow: FlowClient, sandbox: SandboxServer
) -> None:
    signed_in: list[Any] = []

    def receiver(sender: Flask, user: Any) -> None:
        signed_in.append(user)

    with logged_in.connected_to(receiver):
        response = flow.login("/dashboard")
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert [u.id for u in signed_in] == [MEMBER.id]

    page = flow.get("/dashboard")
    assert page.status_code == 200
    assert page.json == {"user": MEMBER.name, "sub": MEMBER.id, "account": MEMBER.name}
    assert sandbox.counters()["authorization_code_grants"] == 1


def test_two_tabs_can_sign_in_at_once(flow: FlowClient) -> None:
    first = flow.start_login("/one")
    second = flow.start_login("/two")
    assert flow.callback(flow.authorize(second)).headers["Location"] == "/two"
    # The first tab's transaction is still valid (one record per state).
    assert flow.callback(flow.authorize(first)).headers["Location"] == "/one"


def test_cookie_holds_only_an_opaque_session_id(
    flow: FlowClient, sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    response = flow.login("/dashboard")
    set_cookies = response.headers.getlist("Set-Cookie")
    assert len(set_cookies) == 1
    assert flow.get("/dashboard").status_code == 200
    value = flow.cookie()
    assert value is not None
    # 32 random bytes, URL-safe base64: no payload, no signature dots, nothing to decode.
    assert len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))) == 32
    assert "." not in value
    assert len(set_cookies[0]) < 200
    # It is nothing but the key of the server-side record.
    assert redis_client.exists(f"{key_prefix}session:{value}")
    for token in sandbox_tokens(sandbox):
        assert token not in set_cookies[0]


def sandbox_tokens(sandbox: SandboxServer) -> list[str]:
    """Every access and refresh token the sandbox has issued (to search for leaks)."""
    state = sandbox.state
    found: list[str] = []
    with state.lock:
        found += list(state.access_tokens)
        found += list(state.refresh_tokens)
    return found


def test_no_redis_value_holds_a_token_in_plaintext(
    flow: FlowClient, sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    flow.login("/dashboard")
    assert flow.get("/dashboard").status_code == 200
    tokens = sandbox_tokens(sandbox)
    assert tokens
    values = all_values(redis_client, key_prefix)
    assert any(k.startswith(key_prefix + "tok:") for k in values)
    for key, value in values.items():
        for token in tokens:
            assert token.encode() not in value, key


def test_session_id_changes_at_login_and_old_session_is_gone(
    flow: FlowClient, redis_client: redis.Redis, key_prefix: str
) -> None:
    flow.csrf()  # the visitor has a session before signing in (the app stored something)
    before = flow.cookie()
    assert before
    authorize_url = flow.start_login("/dashboard")
    assert flow.cookie() == before
    assert redis_client.exists(f"{key_prefix}session:{before}")
    flow.callback(flow.authorize(authorize_url))
    after = flow.cookie()
    assert after
    assert after != before
    assert not redis_client.exists(f"{key_prefix}session:{before}")
    assert redis_client.exists(f"{key_prefix}session:{after}")
    assert redis_client.exists(f"{key_prefix}tok:{{{key_prefix}session:{after}}}")


def _no_login_happened(flow: FlowClient, redis_client: redis.Redis, key_prefix: str) -> None:
    assert flow.get("/dashboard").status_code == 302
    assert not list(redis_client.scan_iter(match=key_prefix + "tok:*"))


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda q: {k: v for k, v in q.items() if k != "state"}, id="missing"),
        pytest.param(lambda q: {**q, "state": "x" * 43}, id="wrong"),
    ],
)
def test_bad_state_is_rejected(
    flow: FlowClient, redis_client: redis.Redis, key_prefix: str, mangle: Any
) -> None:
    failures: list[str] = []
    callback = flow.authorize(flow.start_login("/dashboard"))
    params = mangle(query(callback))
    with login_failed.connected_to(lambda s, reason, message: failures.append(reason)):
        response = flow.client.get("/spark/callback", query_string=params)
    assert response.status_code == 400
    assert b"sign in again" in response.data.lower() or b"state" in response.data.lower()
    assert failures
    assert failures[0].startswith("state")
    _no_login_happened(flow, redis_client, key_prefix)


@pytest.fixture
def generic_flow(
    generic_sandbox: SandboxServer, redis_server: RedisServer, key_prefix: str
) -> FlowClient:
    """A browser against the sandbox as a generic provider (it promises RFC 9207's ``iss``)."""
    return FlowClient(
        make_app(app_config(generic_sandbox, redis_server, key_prefix)), generic_sandbox
    )


def test_no_iss_from_spark_is_fine(flow: FlowClient) -> None:
    callback = flow.authorize(flow.start_login("/dashboard"))
    assert "iss" not in query(callback)  # production advertises no iss parameter
    assert flow.callback(callback).status_code == 302
    assert flow.get("/dashboard").status_code == 200


def test_iss_from_a_generic_provider_is_checked(generic_flow: FlowClient) -> None:
    callback = generic_flow.authorize(generic_flow.start_login("/dashboard"))
    assert query(callback)["iss"] == generic_flow.sandbox.issuer
    assert generic_flow.callback(callback).status_code == 302


def test_missing_iss_is_rejected_when_the_provider_promises_it(
    generic_flow: FlowClient, redis_client: redis.Redis, key_prefix: str
) -> None:
    flow = generic_flow
    params = dict(query(flow.authorize(flow.start_login("/dashboard"))))
    del params["iss"]
    response = flow.client.get("/spark/callback", query_string=params)
    assert response.status_code == 400
    assert b"RFC 9207" in response.data
    _no_login_happened(flow, redis_client, key_prefix)


def test_wrong_iss_is_rejected(
    flow: FlowClient, redis_client: redis.Redis, key_prefix: str
) -> None:
    params = query(flow.authorize(flow.start_login("/dashboard")))
    params["iss"] = "https://evil.example"
    response = flow.client.get("/spark/callback", query_string=params)
    assert response.status_code == 400
    assert b"unexpected issuer" in response.data
    _no_login_happened(flow, redis_client, key_prefix)


def test_reused_state_is_rejected(flow: FlowClient, app: Flask, sandbox: SandboxServer) -> None:
    callback = flow.authorize(flow.start_login("/dashboard"))
    assert flow.callback(callback).status_code == 302
    # Another browser (not signed in) presenting the used response: refused.
    other = FlowClient(app, sandbox)
    replay = other.callback(callback)
    assert replay.status_code == 400
    assert b"already used" in replay.data
    assert other.get("/dashboard").status_code == 302  # still signed out


def test_reloading_a_used_callback_while_signed_in_goes_to_the_landing_page(
    flow: FlowClient, sandbox: SandboxServer
) -> None:
    """Reload or Back onto the callback: no "Sign-in failed" under a signed-in header, and the
    session is neither replaced nor re-created (no second code exchange either)."""
    callback = flow.authorize(flow.start_login("/dashboard"))
    assert flow.callback(callback).status_code == 302
    sid, me = flow.cookie(), flow.get("/dashboard").json
    grants = sandbox.counters()["authorization_code_grants"]
    for url in (callback, callback.replace("state=", "state=unknown")):
        replay = flow.callback(url)
        assert replay.status_code == 302
        assert replay.headers["Location"] == "/"  # SPARK_LOGIN_DEFAULT_NEXT
        assert replay.headers["Cache-Control"] == "no-store"
        assert "Set-Cookie" not in replay.headers
    assert flow.cookie() == sid
    assert flow.get("/dashboard").json == me
    assert sandbox.counters()["authorization_code_grants"] == grants


def test_state_from_another_browser_session_is_rejected(
    app: Flask, sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    victim = FlowClient(app, sandbox)
    attacker = FlowClient(app, sandbox)
    callback = attacker.authorize(attacker.start_login("/dashboard"))
    response = victim.callback(callback)  # login CSRF: the attacker's code in the victim's browser
    assert response.status_code == 400
    _no_login_happened(victim, redis_client, key_prefix)


@pytest.mark.parametrize("error", ["access_denied", "login_required", "server_error"])
def test_provider_error_gives_friendly_page_and_no_session(
    flow: FlowClient, redis_client: redis.Redis, key_prefix: str, error: str
) -> None:
    callback = flow.authorize(flow.start_login("/dashboard"))
    params = {"state": query(callback)["state"], "error": error}
    response = flow.client.get("/spark/callback", query_string=params)
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Sign in with Flexmls" in text
    assert "Traceback" not in text
    _no_login_happened(flow, redis_client, key_prefix)


def test_consent_denied_at_the_sandbox(
    flow: FlowClient, redis_client: redis.Redis, key_prefix: str
) -> None:
    callback = flow.authorize(flow.start_login("/dashboard"), consent="deny")
    assert query(callback)["error"] == "access_denied"
    response = flow.callback(callback)
    assert response.status_code == 400
    assert b"cancelled" in response.data
    _no_login_happened(flow, redis_client, key_prefix)


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/x",
        "javascript:alert(1)",
        "/\r\nLocation: https://evil.example",
        "/\tevil",
        "\\\\evil.example",
        "http:/evil.example",
    ],
)
def test_open_redirects_are_never_followed(flow: FlowClient, target: str) -> None:
    response = flow.client.get("/spark/login", query_string={"next": target})
    authorize_url = response.headers["Location"]
    landing = flow.callback(flow.authorize(authorize_url))
    assert landing.status_code == 302
    assert landing.headers["Location"] == "/"


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"code": "abc"}, id="no-state"),
        pytest.param({"state": "s" * 5000, "code": "c"}, id="very-long"),
        pytest.param({"state": "é☃", "code": "c"}, id="non-ascii"),
        pytest.param({"state": "a\x00b", "code": "c"}, id="control"),
    ],
)
def test_malformed_callback_gives_clear_400(flow: FlowClient, params: dict[str, str]) -> None:
    flow.start_login("/dashboard")
    response = flow.client.get("/spark/callback", query_string=params)
    assert response.status_code == 400
    assert b"Traceback" not in response.data


def test_missing_code_gives_clear_400(flow: FlowClient) -> None:
    callback = flow.authorize(flow.start_login("/dashboard"))
    params = {k: v for k, v in query(callback).items() if k != "code"}
    response = flow.client.get("/spark/callback", query_string=params)
    assert response.status_code == 400
    assert b"authorization code" in response.data


def test_json_client_gets_401_with_login_url(flow: FlowClient) -> None:
    response = flow.get("/dashboard", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.json is not None
    assert response.json["error"] == "login_required"
    assert response.json["login_url"].startswith("/spark/login?next=")


def test_decorator_works_called(flow: FlowClient) -> None:
    assert flow.get("/called").status_code == 302
    flow.login("/called")
    assert flow.get("/called").data == b"called form works"


# -- settings for what Spark does not publish ---------------------------------------------------


def test_pkce_is_sent_by_default(flow: FlowClient) -> None:
    params = query(flow.start_login("/dashboard"))
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43


def test_pkce_off_signs_in_without_it(
    config: dict[str, Any], sandbox: SandboxServer, redis_client: redis.Redis
) -> None:
    """``use_pkce=False``, for a provider that would refuse PKCE's parameters."""
    flow = FlowClient(make_app(config, use_pkce=False), sandbox)
    authorize = flow.start_login("/dashboard")
    assert "code_challenge" not in query(authorize)
    assert flow.callback(flow.authorize(authorize)).status_code == 302
    assert flow.get("/dashboard").status_code == 200


def test_pkce_off_against_a_provider_that_requires_it_fails_cleanly(
    generic_sandbox: SandboxServer, redis_server: RedisServer, key_prefix: str
) -> None:
    config = app_config(generic_sandbox, redis_server, key_prefix)
    flow = FlowClient(make_app(config, use_pkce=False), generic_sandbox)
    callback = flow.authorize(flow.start_login("/dashboard"))
    assert query(callback)["error"] == "invalid_request"
    response = flow.callback(callback)
    assert response.status_code == 400
    assert "Sign in with Flexmls" in response.get_data(as_text=True)


def test_required_spark_claims_present(config: dict[str, Any], sandbox: SandboxServer) -> None:
    required = ["sub", "MemberMlsId", "OfficeKey", "UserType"]
    flow = FlowClient(make_app(config, required_claims=required), sandbox)
    assert flow.login("/dashboard").status_code == 302
    assert flow.get("/dashboard").status_code == 200


def test_a_missing_required_claim_refuses_the_sign_in_clearly(
    config: dict[str, Any],
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    app = make_app(config, required_claims=["sub", "MemberNickname"])
    flow = FlowClient(app, sandbox)
    failures: list[str] = []
    with login_failed.connected_to(lambda s, reason, message: failures.append(reason)):
        response = flow.login("/dashboard")
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "MemberNickname" in text
    assert "SPARK_REQUIRED_CLAIMS" in text
    assert failures == ["claims_missing"]
    _no_login_happened(flow, redis_client, key_prefix)


def test_an_app_mounted_under_a_prefix_lands_on_its_own_next_path(
    app: Flask, sandbox: SandboxServer
) -> None:
    """``SCRIPT_NAME=/app``: ``next`` is a path within the app, and the browser lands under
    the mount point (``/app/dashboard``), not at the host's ``/dashboard``."""
    client = app.test_client()
    mounted = {"SCRIPT_NAME": "/app"}
    start = client.get("/dashboard?tab=1", environ_overrides=mounted)
    assert start.headers["Location"] == "/app/spark/login?next=/dashboard?tab%3D1"
    login = client.get("/spark/login?next=/dashboard?tab%3D1", environ_overrides=mounted)
    authorized = requests.post(
        login.headers["Location"],
        data={"member": MEMBER.id, "consent": "allow"},
        allow_redirects=False,
        timeout=10,
    ).headers["Location"]
    parts = urlsplit(authorized)
    assert parts.path == "/app/spark/callback"
    done = client.get("/spark/callback?" + parts.query, environ_overrides=mounted)
    assert done.status_code == 302, done.get_data(as_text=True)
    assert done.headers["Location"] == "/app/dashboard?tab=1"


def test_an_interrupt_during_sign_in_revokes_nothing(
    flow: FlowClient, sandbox: SandboxServer
) -> None:
    """Ctrl-C (KeyboardInterrupt) in the middle of a sign-in ends the process's work; it is
    not a refused sign-in, so it sends no revocation to the provider."""

    def interrupted(sender: Flask, user: Any) -> None:
        raise KeyboardInterrupt

    with logged_in.connected_to(interrupted), pytest.raises(KeyboardInterrupt):
        flow.login("/dashboard")
    assert sandbox.counters()["revocations"] == 0


def test_signing_in_again_revokes_the_grant_it_replaces(
    app: Flask, flow: FlowClient, sandbox: SandboxServer
) -> None:
    """One live grant per signed-in browser: a second sign-in over the first gives the first
    grant back to the provider instead of only forgetting its tokens."""
    assert flow.login("/called").status_code == 302
    first = app.extensions["spark.state"].tokens.load(flow.cookie())
    assert flow.login("/called").status_code == 302
    assert flow.get("/called").status_code == 200
    assert live_grants(sandbox) == 1
    assert sandbox.state.check_access_token(first.access_token)[0] == "invalid"

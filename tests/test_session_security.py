"""Session security: idle timeout, absolute lifetime, cookie flags, token records bound to their
session, and a new session id at every change of privilege (docs/security.rst, "The session").

Real Redis and the sandbox over real HTTP. Time is never waited for: expiry is simulated on
the Redis side (``PEXPIRE``) or by moving the stored absolute expiry into the past.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from flask import Flask
from werkzeug.http import parse_cookie

from flask_spark import token_refreshed
from flask_spark.sandbox import MEMBERS, SandboxServer

from .conftest import make_app
from .helpers import FlowClient, job_handle

JANE, BOB = MEMBERS[0], MEMBERS[1]


# -- helpers ---------------------------------------------------------------------------------


def session_key(prefix: str, sid: str) -> str:
    return f"{prefix}session:{sid}"


def token_key(prefix: str, sid: str) -> str:
    return f"{prefix}tok:{{{prefix}session:{sid}}}"


def sign_in(app: Flask, sandbox: SandboxServer, member_id: str = JANE.id) -> tuple[FlowClient, str]:
    flow = FlowClient(app, sandbox)
    response = flow.login("/dashboard", member_id=member_id)
    assert response.status_code == 302, response.get_data(as_text=True)
    sid = flow.cookie()
    assert sid
    return flow, sid


def assert_signed_out(flow: FlowClient) -> None:
    """HTML → redirect to sign in; JSON → 401 login_required; never a 500, never a page."""
    page = flow.get("/dashboard")
    assert page.status_code == 302, page.get_data(as_text=True)
    assert page.headers["Location"].startswith("/spark/login")
    api = flow.get("/dashboard", headers={"Accept": "application/json"})
    assert api.status_code == 401
    assert api.json is not None
    assert api.json["error"] in ("login_required", "session_expired")


def wait_until_gone(client: redis.Redis, key: str, deadline: float = 60.0) -> None:
    """Poll Redis (not the clock) until ``key`` has expired."""
    end = time.monotonic() + deadline
    while client.exists(key):
        assert time.monotonic() < end, f"{key} did not expire"
        time.sleep(0.005)


def set_cookie_headers(response: Any) -> list[str]:
    return [v for k, v in response.headers.items() if k.lower() == "set-cookie"]


def cookie_attributes(header: str) -> tuple[str, set[str], dict[str, str]]:
    """(name, flag attributes lower-cased, valued attributes lower-cased) of a Set-Cookie."""
    first, *rest = (part.strip() for part in header.split(";"))
    name = first.split("=", 1)[0]
    flags = {p.lower() for p in rest if "=" not in p}
    values = {p.split("=", 1)[0].lower(): p.split("=", 1)[1] for p in rest if "=" in p}
    return name, flags, values


@pytest.fixture
def jane(app: Flask, sandbox: SandboxServer) -> tuple[FlowClient, str]:
    return sign_in(app, sandbox)


# -- idle timeout ------------------------------------------------------------------------------


def test_idle_timeout_is_the_redis_ttl_of_the_session(
    config: dict[str, Any], sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    app = make_app({**config, "PERMANENT_SESSION_LIFETIME": 321})
    flow, sid = sign_in(app, sandbox)
    key = session_key(key_prefix, sid)
    assert 315 <= redis_client.ttl(key) <= 321
    # Activity restarts the idle clock (it is an idle timeout, not an absolute one).
    redis_client.expire(key, 10)
    assert flow.get("/dashboard").status_code == 200
    assert 315 <= redis_client.ttl(key) <= 321


def test_the_idle_timeout_is_two_hours_where_the_app_kept_flasks_31_days(
    config: dict[str, Any], sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    app = make_app(config)
    assert app.permanent_session_lifetime.total_seconds() == 7200
    assert app.extensions["spark.state"].cookie_defaults["PERMANENT_SESSION_LIFETIME"]  # doctor
    _, sid = sign_in(app, sandbox)
    assert 7190 <= redis_client.ttl(session_key(key_prefix, sid)) <= 7200


def test_idle_session_expired_in_redis_is_signed_out(
    jane: tuple[FlowClient, str], redis_client: redis.Redis, key_prefix: str
) -> None:
    flow, sid = jane
    assert flow.get("/dashboard").status_code == 200
    key = session_key(key_prefix, sid)
    redis_client.pexpire(key, 1)  # the idle timeout elapses
    wait_until_gone(redis_client, key)
    assert_signed_out(flow)


def test_background_refresh_does_not_extend_idle_time(
    app: Flask,
    jane: tuple[FlowClient, str],
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    flow, sid = jane
    handle = job_handle(app, sid)  # issued in a request of the user's, earlier
    key, tok = session_key(key_prefix, sid), token_key(key_prefix, sid)
    redis_client.pexpire(key, 50_000)  # 50 s of idle time left
    token_ttl = redis_client.pttl(tok)
    sandbox.expire_tokens()
    refreshed: list[str] = []

    def receiver(sender: Flask, sid: str) -> None:
        refreshed.append(sid)

    with token_refreshed.connected_to(receiver):
        account = app.extensions["spark"].api_for_job(handle, app).get("my/account").first()
    assert account["Name"] == JANE.name
    assert refreshed == [sid]
    assert sandbox.counters()["refreshes"] == 1
    # Neither the session's idle time nor the token record's absolute lifetime grew.
    assert 0 < redis_client.pttl(key) <= 50_000
    assert 0 < redis_client.pttl(tok) <= token_ttl
    assert flow.get("/dashboard").status_code == 200  # still signed in, on the new token


# -- absolute lifetime ----------------------------------------------------------------------


def test_absolute_lifetime_is_configured_and_not_extended_by_activity(
    config: dict[str, Any], sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    app = make_app({**config, "SPARK_SESSION_LIFETIME": 900})
    flow, sid = sign_in(app, sandbox)
    with flow.client.session_transaction() as sess:
        first = dict(sess["_spark"])
    assert first["expires"] - first["login_at"] == 900
    assert 890 <= redis_client.ttl(token_key(key_prefix, sid)) <= 900
    for _ in range(3):
        assert flow.get("/dashboard").status_code == 200
    with flow.client.session_transaction() as sess:
        assert sess["_spark"]["expires"] == first["expires"]
    assert redis_client.ttl(token_key(key_prefix, sid)) <= 900


def test_absolute_lifetime_ends_an_active_session(
    jane: tuple[FlowClient, str], sandbox: SandboxServer
) -> None:
    flow, _sid = jane
    assert flow.get("/dashboard").status_code == 200
    with flow.client.session_transaction() as sess:
        data = dict(sess["_spark"])
        data["expires"] = int(time.time()) - 1  # the lifetime has elapsed
        sess["_spark"] = data
    calls = sandbox.counters()["api_calls"]
    assert_signed_out(flow)
    assert flow.get("/").get_data(as_text=True) == "home anonymous"
    assert sandbox.counters()["api_calls"] == calls  # no API call for an expired sign-in


# -- cookie flags ----------------------------------------------------------------------------


def https_app(config: dict[str, Any], **extra: Any) -> Flask:
    """A production-like app: not testing, HTTPS required (loopback provider allowed)."""
    return make_app({**config, "TESTING": False, "SPARK_REQUIRE_HTTPS": True, **extra})


def login_cookie(app: Flask, sandbox: SandboxServer, base_url: str) -> str:
    """Sign in through ``base_url``; return the session Set-Cookie of the callback."""
    flow = FlowClient(app, sandbox)
    start = flow.client.get("/spark/login?next=/dashboard", base_url=base_url)
    assert start.status_code == 302, start.get_data(as_text=True)
    callback = flow.authorize(start.headers["Location"])
    assert callback.startswith(base_url + "/spark/callback")
    path = callback[len(base_url) :]
    answer = flow.client.get(path, base_url=base_url)
    assert answer.status_code == 302, answer.get_data(as_text=True)
    name = app.config["SESSION_COOKIE_NAME"]
    cookies = [h for h in set_cookie_headers(answer) if h.startswith(name + "=")]
    assert len(cookies) == 1, set_cookie_headers(answer)
    assert parse_cookie(cookies[0])[name] == flow.cookie(name)
    page = flow.client.get("/dashboard", base_url=base_url)
    assert page.status_code == 200
    return cookies[0]


def test_session_cookie_flags_in_production(config: dict[str, Any], sandbox: SandboxServer) -> None:
    app = https_app(config)
    assert not app.testing
    assert not app.debug
    sandbox.configure(redirect_uris=["https://localhost/spark/callback"])
    name, flags, values = cookie_attributes(login_cookie(app, sandbox, "https://localhost"))
    # __Host-: Secure, Path=/ and no Domain, so a sibling subdomain cannot plant a session id
    assert name == "__Host-session"
    assert values["path"] == "/"
    assert "domain" not in values
    assert "httponly" in flags
    assert "secure" in flags
    assert values["samesite"] == "Lax"  # Strict would drop the cookie on the provider's redirect


def test_a_planted_plain_session_cookie_is_not_read_over_https(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    app = https_app(config)
    sandbox.configure(redirect_uris=["https://localhost/spark/callback"])
    planted = parse_cookie(login_cookie(app, sandbox, "https://localhost"))["__Host-session"]
    victim = app.test_client()
    victim.set_cookie("session", planted)  # as a sibling subdomain can (attacker signed in)
    page = victim.get("/", base_url="https://localhost")
    assert page.get_data(as_text=True) == "home anonymous"


def test_an_app_chosen_cookie_name_is_kept(config: dict[str, Any], sandbox: SandboxServer) -> None:
    app = https_app(config, SESSION_COOKIE_NAME="myapp")
    assert app.config["SESSION_COOKIE_NAME"] == "myapp"
    mounted = https_app(config, SESSION_COOKIE_DOMAIN="example.com")  # a Domain: no __Host-
    assert mounted.config["SESSION_COOKIE_NAME"] == "session"


def test_session_cookie_has_no_secure_flag_in_debug(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    app = make_app({**config, "TESTING": False, "DEBUG": True})
    assert app.debug
    _, flags, values = cookie_attributes(login_cookie(app, sandbox, "http://localhost"))
    assert "secure" not in flags  # plain-HTTP local development still works
    assert "httponly" in flags
    assert values["samesite"] == "Lax"


def test_production_app_refuses_a_plain_http_redirect_uri(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    """Outside debug the callback must be HTTPS (loopback excepted): no cookie over plain HTTP."""
    app = https_app(config)
    client = app.test_client()
    answer = client.get("/spark/login", base_url="http://app.example.com")
    assert answer.status_code >= 400
    assert not (answer.headers.get("Location") or "").startswith(sandbox.url)
    assert "Traceback" not in answer.get_data(as_text=True)


# -- token records bound to their session ----------------------------------------------------


def flip_one_byte(blob: bytes) -> bytes:
    middle = len(blob) // 2
    swapped = b"A" if blob[middle : middle + 1] != b"A" else b"B"
    return blob[:middle] + swapped + blob[middle + 1 :]


def test_tampered_token_record_reads_as_signed_out(
    jane: tuple[FlowClient, str], sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    flow, sid = jane
    assert flow.get("/dashboard").status_code == 200
    key = token_key(key_prefix, sid)
    blob = redis_client.hget(key, "d")
    assert isinstance(blob, bytes)
    redis_client.hset(key, "d", flip_one_byte(blob))
    calls = sandbox.counters()["api_calls"]

    page = flow.get("/dashboard")
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/spark/login")
    assert sandbox.counters()["api_calls"] == calls  # nothing was sent with a forged record
    assert sandbox.counters()["refreshes"] == 0
    assert_signed_out(flow)


def test_token_record_copied_into_another_session_never_signs_in_as_its_owner(
    app: Flask, sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    alice, sid_a = sign_in(app, sandbox, JANE.id)
    bob, sid_b = sign_in(app, sandbox, BOB.id)
    assert sid_a != sid_b
    assert bob.get("/dashboard").json == {"user": BOB.name, "sub": BOB.id, "account": BOB.name}

    # An attacker with write access to Redis copies Jane's record over Bob's.
    stolen: dict[Any, Any] = redis_client.hgetall(token_key(key_prefix, sid_a))
    redis_client.delete(token_key(key_prefix, sid_b))
    redis_client.hset(token_key(key_prefix, sid_b), mapping=stolen)
    calls = sandbox.counters()["api_calls"]

    page = bob.get("/dashboard")
    assert page.status_code == 302  # Bob's session reads as signed out…
    assert JANE.name not in page.get_data(as_text=True)  # …and never as Jane
    assert sandbox.counters()["api_calls"] == calls  # Jane's token was not used
    assert_signed_out(bob)
    # Jane is untouched.
    assert alice.get("/dashboard").json == {
        "user": JANE.name,
        "sub": JANE.id,
        "account": JANE.name,
    }


# -- session ids -------------------------------------------------------------------------------


def test_new_session_id_at_login_and_at_logout(
    app: Flask, sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    flow = FlowClient(app, sandbox)
    flow.csrf()  # a session before signing in (e.g. planted by an attacker)
    authorize_url = flow.start_login("/dashboard")
    before = flow.cookie()
    assert before
    assert redis_client.exists(session_key(key_prefix, before))
    assert flow.callback(flow.authorize(authorize_url)).status_code == 302
    signed_in = flow.cookie()
    assert signed_in
    assert signed_in != before
    assert not redis_client.exists(session_key(key_prefix, before))

    # Session fixation: the pre-login id (e.g. planted by an attacker) is not signed in.
    fixed = app.test_client()
    fixed.set_cookie("session", before)
    assert fixed.get("/dashboard").status_code == 302

    answer = flow.post("/spark/logout", data={"spark_csrf_token": flow.csrf()})
    assert answer.status_code == 302
    assert flow.cookie() != signed_in
    assert not redis_client.exists(session_key(key_prefix, signed_in))
    assert not redis_client.exists(token_key(key_prefix, signed_in))
    replay = app.test_client()
    replay.set_cookie("session", signed_in)  # the old id no longer works
    assert replay.get("/dashboard").status_code == 302
    assert_signed_out(flow)

"""Sign-out started by the user: logout, revoke, CSRF, provider outages and single logout.

Real Redis, the sandbox over real HTTP; the CSRF token is read from a rendered page, as a
browser's form would carry it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import requests
from flask import Flask, render_template_string
from werkzeug.test import TestResponse

from flask_spark import logged_out, login_failed, tokens_revoked
from flask_spark.core.tokens import TokenSet
from flask_spark.sandbox import SandboxServer

from .conftest import app_config, make_app
from .helpers import MEMBER, FlowClient, closed_port, query, refresh_at_sandbox

FORMS = (
    '{% from "spark/macros.html" import logout_form, revoke_form %}'
    "{{ logout_form() }}{{ revoke_form() }}"
)
_CSRF_INPUT = re.compile(r'name="spark_csrf_token" value="([^"]+)"')
#: Where single logout returns by default: the redirect URI, as Spark requires.
RETURN_URI = "http://localhost/spark/callback"
#: The dedicated return view, for providers that register post-logout URIs of their own.
LOGGED_OUT_URI = "http://localhost/spark/logged-out"


# -- helpers ---------------------------------------------------------------------------------


def forms_app(config: dict[str, Any], **options: Any) -> Flask:
    """The test app plus a page that renders the sign-out and revoke forms."""
    app = make_app(config, **options)

    @app.get("/account")
    def account() -> str:
        return render_template_string(FORMS)

    return app


def page_csrf(flow: FlowClient) -> str:
    """The CSRF token of the rendered sign-out form (both forms carry the same one)."""
    page = flow.get("/account").get_data(as_text=True)
    tokens = set(_CSRF_INPUT.findall(page))
    assert len(tokens) == 1, page
    assert 'action="/spark/logout"' in page
    assert 'action="/spark/revoke"' in page
    return tokens.pop()


def keys(client: redis.Redis, prefix: str) -> set[str]:
    """Every Redis key this test's app wrote."""
    return {k.decode() for k in client.scan_iter(match=prefix + "*")}


def session_id(flow: FlowClient) -> str:
    cookie = flow.cookie()
    assert cookie
    return cookie


def stored_tokens(app: Flask, flow: FlowClient) -> TokenSet:
    tokens = app.extensions["spark.state"].tokens.load(session_id(flow))
    assert tokens is not None
    assert tokens.refresh_token
    return tokens


def authenticates(app: Flask, cookie: str) -> bool:
    """Does a fresh browser carrying only ``cookie`` reach a protected view?"""
    client = app.test_client()
    client.set_cookie("session", cookie)
    answer = client.get("/called")
    if answer.status_code == 200:
        return True
    assert answer.status_code == 302
    assert "/spark/login" in answer.headers["Location"]
    return False


def api_status(sandbox: SandboxServer, access_token: str) -> int:
    answer = requests.get(
        sandbox.url + "/v1/my/account",
        headers={
            "Authorization": f"Bearer {access_token}",
            "X-SparkApi-User-Agent": "flask-spark-tests",
        },
        timeout=10,
    )
    return answer.status_code


@contextmanager
def recorded(*signals: Any) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Record (signal name, kwargs) of every send of ``signals``."""
    seen: list[tuple[str, dict[str, Any]]] = []
    receivers = []
    for signal in signals:

        def receiver(sender: Flask, _name: str = signal.name, **kwargs: Any) -> None:
            seen.append((_name, kwargs))

        receivers.append(receiver)
        signal.connect(receiver)
    try:
        yield seen
    finally:
        for signal, receiver in zip(signals, receivers, strict=True):
            signal.disconnect(receiver)


def follow(response: TestResponse) -> str:
    """The path + query of a redirect."""
    location = response.headers["Location"]
    parts = urlsplit(location)
    return parts.path + ("?" + parts.query if parts.query else "")


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def app(config: dict[str, Any]) -> Flask:
    return forms_app(config)


# -- logout ----------------------------------------------------------------------------------


def test_logout_destroys_everything_and_revokes(
    app: Flask,
    signed_in: FlowClient,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    flow = signed_in
    old_cookie = session_id(flow)
    tokens = stored_tokens(app, flow)
    before = keys(redis_client, key_prefix)
    assert f"{key_prefix}session:{old_cookie}" in before
    assert f"{key_prefix}tok:{{{key_prefix}session:{old_cookie}}}" in before
    assert any(k.startswith(f"{key_prefix}user:") for k in before)
    assert not any(k.startswith(f"{key_prefix}psid:") for k in before)  # Spark sends no sid
    csrf = page_csrf(flow)

    with recorded(logged_out, tokens_revoked) as seen:
        answer = flow.post("/spark/logout", data={"spark_csrf_token": csrf})

    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"
    assert answer.headers["Cache-Control"] == "no-store"
    # Every key of that session is gone: session, token record, index entries (and the
    # sign-out left no new session behind).
    assert keys(redis_client, key_prefix) == set()
    assert flow.cookie() is None
    assert not authenticates(app, old_cookie)
    assert flow.get("/called").status_code == 302
    counters = sandbox.counters()
    assert counters["revocations"] == 1
    assert counters["token_deletions"] == 1
    # The refresh token is dead at the provider, and so is the access token.
    refused = refresh_at_sandbox(sandbox, tokens.refresh_token or "")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert api_status(sandbox, tokens.access_token) == 401

    assert [name for name, _ in seen] == ["spark-tokens-revoked", "spark-logged-out"]
    for _, kwargs in seen:
        assert kwargs["user"].id == MEMBER.id
        dump = repr(kwargs) + repr(kwargs["user"].claims)
        for secret in (tokens.access_token, tokens.refresh_token):
            assert secret
            assert secret not in dump
    assert seen[0][1]["revoked"] is True
    assert seen[1][1]["reason"] == "logout"


def test_logout_accepts_the_csrf_header(
    app: Flask, signed_in: FlowClient, sandbox: SandboxServer
) -> None:
    old_cookie = session_id(signed_in)
    csrf = page_csrf(signed_in)
    answer = signed_in.post("/spark/logout", headers={"X-CSRFToken": csrf})
    assert answer.status_code == 302
    assert not authenticates(app, old_cookie)
    assert sandbox.counters()["revocations"] == 1


def test_logout_gives_a_new_session_id(
    app: Flask, signed_in: FlowClient, redis_client: redis.Redis, key_prefix: str
) -> None:
    old_cookie = session_id(signed_in)
    csrf = page_csrf(signed_in)
    signed_in.post("/spark/logout", data={"spark_csrf_token": csrf})
    # The next page that stores something in the session gets a fresh id.
    page_csrf(signed_in)
    new_cookie = session_id(signed_in)
    assert new_cookie != old_cookie
    assert not authenticates(app, new_cookie)
    assert keys(redis_client, key_prefix) == {f"{key_prefix}session:{new_cookie}"}


@pytest.mark.parametrize(
    ("method", "send", "status"),
    [
        ("post", {}, 400),
        ("post", {"data": {"spark_csrf_token": "not-the-token"}}, 400),
        ("post", {"headers": {"X-CSRFToken": "not-the-token"}}, 400),
        ("post", {"data": {"spark_csrf_token": ""}}, 400),
        ("get", {}, 405),
        ("get", {"query_string": {"spark_csrf_token": "<page>"}}, 405),
    ],
    ids=["no-token", "wrong-token", "wrong-header", "empty-token", "get", "get-with-token"],
)
@pytest.mark.parametrize("path", ["/spark/logout", "/spark/revoke"])
def test_logout_and_revoke_refuse_without_csrf_or_by_get(
    app: Flask,
    signed_in: FlowClient,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
    path: str,
    method: str,
    send: dict[str, Any],
    status: int,
) -> None:
    csrf = page_csrf(signed_in)
    if send.get("query_string"):
        send = {"query_string": {"spark_csrf_token": csrf}}
    cookie = session_id(signed_in)
    before = keys(redis_client, key_prefix)

    with recorded(logged_out, tokens_revoked) as seen:
        answer = getattr(signed_in, method)(path, **send)

    assert answer.status_code == status
    if status == 400:
        assert "csrf" in answer.get_data(as_text=True).lower()
    assert seen == []
    assert keys(redis_client, key_prefix) == before
    counters = sandbox.counters()
    assert counters["revocations"] == 0
    assert counters["token_deletions"] == 0
    assert authenticates(app, cookie)
    assert signed_in.get("/called").status_code == 200


def test_csrf_token_of_another_session_is_refused(
    app: Flask, signed_in: FlowClient, sandbox: SandboxServer
) -> None:
    other = FlowClient(app, sandbox)
    foreign = page_csrf(other)
    page_csrf(signed_in)
    answer = signed_in.post("/spark/logout", data={"spark_csrf_token": foreign})
    assert answer.status_code == 400
    assert signed_in.get("/called").status_code == 200


@pytest.mark.parametrize(
    "send", [{"data": {"spark_csrf_token": "é"}}, {"headers": {"X-CSRFToken": "Ã©"}}]
)
def test_non_ascii_csrf_token_is_a_400_not_a_500(
    signed_in: FlowClient, send: dict[str, Any]
) -> None:
    page_csrf(signed_in)
    answer = signed_in.post("/spark/logout", **send)
    assert answer.status_code == 400
    assert "csrf" in answer.get_data(as_text=True).lower()
    assert signed_in.get("/called").status_code == 200


# -- provider or API down ----------------------------------------------------------------------


@pytest.fixture
def provider_down_app(config: dict[str, Any]) -> Flask:
    port = closed_port()
    return forms_app(config, revocation_endpoint=f"http://127.0.0.1:{port}/revoke")


def test_logout_with_provider_down_still_signs_out(
    provider_down_app: Flask,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = provider_down_app
    flow = FlowClient(app, sandbox)
    flow.login()
    old_cookie = session_id(flow)
    tokens = stored_tokens(app, flow)
    sandbox.faults(force_error_next=1, force_error={"status": 503, "code": 1510})
    with recorded(tokens_revoked) as seen:
        answer = flow.post("/spark/logout", data={"spark_csrf_token": page_csrf(flow)})

    assert answer.status_code == 200
    text = answer.get_data(as_text=True)
    assert "signed out" in text.lower()
    assert "could not reach" in text.lower()
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["X-Frame-Options"] == "DENY"  # a sign-out page: never framed
    assert not authenticates(app, old_cookie)
    assert flow.get("/called").status_code == 302
    assert keys(redis_client, key_prefix) <= {f"{key_prefix}revoke:pending"}
    counters = sandbox.counters()
    assert counters["revocations"] == 0
    assert counters["token_deletions"] == 0
    assert seen[0][1]["revoked"] is False
    assert "revocation" in caplog.text.lower()
    for secret in (tokens.access_token, tokens.refresh_token):
        assert secret
        assert secret not in caplog.text
        assert secret not in text


def test_logout_with_api_down_still_revokes_and_signs_out(
    app: Flask,
    signed_in: FlowClient,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    old_cookie = session_id(signed_in)
    tokens = stored_tokens(app, signed_in)
    sandbox.faults(force_error_next=1, force_error={"status": 503, "code": 1510})
    answer = signed_in.post("/spark/logout", data={"spark_csrf_token": page_csrf(signed_in)})
    assert answer.status_code == 200
    assert not authenticates(app, old_cookie)
    assert keys(redis_client, key_prefix) == set()
    assert sandbox.counters()["revocations"] == 1
    assert refresh_at_sandbox(sandbox, tokens.refresh_token or "").status_code == 400


def test_logout_when_api_base_unreachable(
    config: dict[str, Any], sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    port = closed_port()
    app = forms_app({**config, "SPARK_API_BASE_URL": f"http://127.0.0.1:{port}/v1/"})
    flow = FlowClient(app, sandbox)
    flow.login()
    old_cookie = session_id(flow)
    answer = flow.post("/spark/logout", data={"spark_csrf_token": page_csrf(flow)})
    assert answer.status_code == 200
    assert not authenticates(app, old_cookie)
    assert keys(redis_client, key_prefix) == set()
    assert sandbox.counters()["revocations"] == 1


# -- durable retry of failed revocations -------------------------------------------------------


def test_failed_revocation_is_retried_by_the_cli(
    provider_down_app: Flask,
    config: dict[str, Any],
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    flow = FlowClient(provider_down_app, sandbox)
    flow.login()
    tokens = stored_tokens(provider_down_app, flow)
    flow.post("/spark/logout", data={"spark_csrf_token": page_csrf(flow)})
    pending = f"{key_prefix}revoke:pending"
    assert redis_client.zcard(pending) == 1
    stored = b"".join(redis_client.zrange(pending, 0, -1))
    assert (tokens.refresh_token or "").encode() not in stored  # sealed, not plain

    # Still down: the entry stays.
    runner = provider_down_app.test_cli_runner()
    result = runner.invoke(args=["spark", "retry-revocations"])
    assert result.exit_code == 0, result.output
    assert "revoked 0" in result.output
    assert "pending 1" in result.output
    assert redis_client.zcard(pending) == 1
    assert refresh_at_sandbox(sandbox, tokens.refresh_token or "").status_code == 200

    # Back up: the retry revokes it and empties the queue.
    flow2 = FlowClient(provider_down_app, sandbox)
    flow2.login()  # a second token family that must not be touched
    healthy = forms_app(config)
    result = healthy.test_cli_runner().invoke(args=["spark", "retry-revocations"])
    assert result.exit_code == 0, result.output
    assert "revoked 1" in result.output
    assert "pending 0" in result.output
    assert not redis_client.exists(pending)
    assert sandbox.counters()["revocations"] == 1
    assert flow2.get("/called").status_code == 200


def test_retry_drops_entries_older_than_the_limit(
    provider_down_app: Flask,
    config: dict[str, Any],
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    flow = FlowClient(provider_down_app, sandbox)
    flow.login()
    flow.post("/spark/logout", data={"spark_csrf_token": page_csrf(flow)})
    pending = f"{key_prefix}revoke:pending"
    member = redis_client.zrange(pending, 0, -1)[0]
    redis_client.zadd(pending, {member: 1.0})  # enqueued in 1970
    result = forms_app(config).test_cli_runner().invoke(args=["spark", "retry-revocations"])
    assert result.exit_code == 0, result.output
    assert "dropped 1" in result.output
    assert sandbox.counters()["revocations"] == 0
    assert not redis_client.exists(pending)


# -- revoke ----------------------------------------------------------------------------------


def test_revoke_revokes_both_tokens_and_ends_the_session(
    app: Flask,
    signed_in: FlowClient,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    old_cookie = session_id(signed_in)
    tokens = stored_tokens(app, signed_in)
    with recorded(logged_out, tokens_revoked) as seen:
        answer = signed_in.post("/spark/revoke", data={"spark_csrf_token": page_csrf(signed_in)})
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"
    counters = sandbox.counters()
    assert counters["revocations"] == 2  # the refresh token and the access token
    assert counters["token_deletions"] == 1
    assert keys(redis_client, key_prefix) == set()
    assert not authenticates(app, old_cookie)
    assert refresh_at_sandbox(sandbox, tokens.refresh_token or "").status_code == 400
    assert api_status(sandbox, tokens.access_token) == 401
    assert [kw["user"].id for _, kw in seen] == [MEMBER.id, MEMBER.id]
    assert seen[0][1]["revoked"] is True


def test_revoke_at_provider_page(
    config: dict[str, Any], sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    page = sandbox.url + "/account/apps"
    app = forms_app(config, revoke_at_provider_page=page)
    flow = FlowClient(app, sandbox)
    flow.login()
    old_cookie = session_id(flow)
    answer = flow.post("/spark/revoke", data={"spark_csrf_token": page_csrf(flow)})
    assert answer.status_code == 302
    assert answer.headers["Location"] == page
    # The user revokes the grant there; the tokens we held are still revoked as at sign-out.
    assert sandbox.counters()["revocations"] == 1
    assert sandbox.counters()["token_deletions"] == 1
    assert keys(redis_client, key_prefix) == set()
    assert not authenticates(app, old_cookie)


# -- single logout (RP-initiated) ----------------------------------------------------------


@pytest.fixture
def slo_app(config: dict[str, Any]) -> Flask:
    """Single logout with the defaults: the provider returns to the callback."""
    return forms_app({**config, "SPARK_SINGLE_LOGOUT": True, "SPARK_LOGOUT_REDIRECT": "/goodbye"})


def start_single_logout(app: Flask, sandbox: SandboxServer) -> tuple[FlowClient, str, str]:
    """Sign in, sign out; returns the browser, its old cookie and the provider logout URL."""
    flow = FlowClient(app, sandbox)
    flow.login()
    old_cookie = session_id(flow)
    answer = flow.post("/spark/logout", data={"spark_csrf_token": page_csrf(flow)})
    assert answer.status_code == 302
    assert answer.headers["Cache-Control"] == "no-store"
    return flow, old_cookie, answer.headers["Location"]


def test_single_logout_round_trip(
    slo_app: Flask, sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    flow, old_cookie, location = start_single_logout(slo_app, sandbox)
    assert location.startswith(sandbox.url + "/openid/logout?")
    params = query(location)
    assert params["client_id"] == "sandbox-client"
    assert params["post_logout_redirect_uri"] == RETURN_URI
    assert len(params["state"]) >= 32
    assert "id_token_hint" not in params  # tokens never travel in a URL
    # Already signed out locally before the provider is even visited, and the state waits
    # in a new session (a new id; the old one is not reused).
    assert not authenticates(slo_app, old_cookie)
    new_cookie = session_id(flow)
    assert new_cookie != old_cookie
    assert keys(redis_client, key_prefix) == {f"{key_prefix}session:{new_cookie}"}
    assert sandbox.counters()["revocations"] == 1

    back = requests.get(location, allow_redirects=False, timeout=10)
    assert back.status_code == 302
    assert back.headers["Location"].startswith(RETURN_URI + "?")
    assert query(back.headers["Location"])["state"] == params["state"]
    assert sandbox.counters()["logouts"] == 1

    done = flow.get(follow(back))
    assert done.status_code == 302
    assert done.headers["Location"] == "/goodbye"
    assert done.headers["Cache-Control"] == "no-store"
    assert keys(redis_client, key_prefix) == set()
    assert flow.get("/called").status_code == 302
    # The state was single use: a replay is an unknown sign-in response, and revives nothing.
    assert flow.get(follow(back)).status_code == 400
    assert flow.get("/called").status_code == 302


def test_single_logout_return_without_state_is_the_sign_outs_return(
    slo_app: Flask, sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    """A provider that drops ``state`` still lands on the signed-out page, not a sign-in error."""
    failures: list[str] = []
    flow, _old_cookie, _location = start_single_logout(slo_app, sandbox)
    with login_failed.connected_to(lambda s, reason, message: failures.append(reason)):
        done = flow.get("/spark/callback")
    assert done.status_code == 302
    assert done.headers["Location"] == "/goodbye"
    assert failures == []
    assert keys(redis_client, key_prefix) == set()
    # Without a sign-out in progress, the same bare callback is a sign-in error as before.
    assert flow.get("/spark/callback").status_code == 400


def test_logged_out_return_with_a_non_ascii_state_is_a_400_not_a_500(
    slo_app: Flask, sandbox: SandboxServer
) -> None:
    flow, _old_cookie, _location = start_single_logout(slo_app, sandbox)
    answer = flow.get("/spark/logged-out?state=%C3%A9")
    assert answer.status_code == 400
    assert "Unexpected sign-out response" in answer.get_data(as_text=True)


def test_sign_in_after_an_unfinished_single_logout_works(
    slo_app: Flask, sandbox: SandboxServer
) -> None:
    """The provider never came back; the next sign-in's response is not taken for it."""
    flow, _old_cookie, _location = start_single_logout(slo_app, sandbox)
    assert flow.login("/called").status_code == 302
    assert flow.get("/called").status_code == 200


def test_dedicated_logged_out_view_with_a_generic_provider(
    config: dict[str, Any], generic_sandbox: SandboxServer, redis_server: Any, key_prefix: str
) -> None:
    """A provider with registered post-logout URIs may return to ``/spark/logged-out``."""
    generic_sandbox.configure(post_logout_redirect_uris=[LOGGED_OUT_URI])
    app = forms_app(
        {
            **app_config(generic_sandbox, redis_server, key_prefix),
            "SPARK_SINGLE_LOGOUT": True,
            "SPARK_LOGOUT_REDIRECT": "/goodbye",
        },
        post_logout_redirect_uri=LOGGED_OUT_URI,
    )
    flow, _old_cookie, location = start_single_logout(app, generic_sandbox)
    assert query(location)["post_logout_redirect_uri"] == LOGGED_OUT_URI
    back = requests.get(location, allow_redirects=False, timeout=10)
    assert back.headers["Location"].startswith(LOGGED_OUT_URI + "?")
    done = flow.get(follow(back))
    assert done.headers["Location"] == "/goodbye"


def test_single_logout_state_is_fresh(slo_app: Flask, sandbox: SandboxServer) -> None:
    first = query(start_single_logout(slo_app, sandbox)[2])["state"]
    second = query(start_single_logout(slo_app, sandbox)[2])["state"]
    assert first != second


@pytest.mark.parametrize("given", ["wrong", "missing", "empty", "other-browser"])
def test_single_logout_return_with_bad_state(
    slo_app: Flask,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
    given: str,
) -> None:
    flow, old_cookie, location = start_single_logout(slo_app, sandbox)
    state = query(location)["state"]
    if given == "wrong":
        path = f"/spark/logged-out?state={state[:-2]}xx"
    elif given == "missing":
        path = "/spark/logged-out"
    elif given == "empty":
        path = "/spark/logged-out?state="
    else:
        path = f"/spark/logged-out?state={state}"
        flow = FlowClient(slo_app, sandbox)  # a browser that did not start this sign-out
    answer = flow.get(path)
    assert answer.status_code == 400
    assert answer.headers["Cache-Control"] == "no-store"
    assert "sign-out" in answer.get_data(as_text=True).lower()
    # Nothing revived: neither the old cookie nor this browser is signed in.
    assert not authenticates(slo_app, old_cookie)
    assert flow.get("/called").status_code == 302
    assert not any(
        k.startswith((f"{key_prefix}tok:", f"{key_prefix}user:", f"{key_prefix}psid:"))
        for k in keys(redis_client, key_prefix)
    )


def test_post_logout_uri_other_than_the_redirect_uri_is_refused_by_the_provider(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    app = forms_app(
        {**config, "SPARK_SINGLE_LOGOUT": True},
        post_logout_redirect_uri="http://localhost/not-registered",
    )
    _flow, old_cookie, location = start_single_logout(app, sandbox)
    assert query(location)["post_logout_redirect_uri"] == "http://localhost/not-registered"
    refused = requests.get(location, allow_redirects=False, timeout=10)
    assert refused.status_code == 400
    assert "must match the redirect_uri" in refused.text
    assert not authenticates(app, old_cookie)


def test_single_logout_with_provider_down_still_signs_out(
    config: dict[str, Any], sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    port = closed_port()
    app = forms_app(
        {**config, "SPARK_SINGLE_LOGOUT": True},
        revocation_endpoint=f"http://127.0.0.1:{port}/revoke",
    )
    flow = FlowClient(app, sandbox)
    flow.login()
    old_cookie = session_id(flow)
    answer = flow.post("/spark/logout", data={"spark_csrf_token": page_csrf(flow)})
    # Still sent to the provider's logout page (its session is the other half of signing out).
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith(sandbox.url + "/openid/logout?")
    assert not authenticates(app, old_cookie)


def test_token_already_gone_at_the_api_is_a_clean_logout(
    app: Flask, signed_in: FlowClient, sandbox: SandboxServer
) -> None:
    sandbox.faults(force_error_next=1, force_error={"status": 404, "code": 404})
    answer = signed_in.post("/spark/logout", data={"spark_csrf_token": page_csrf(signed_in)})
    assert answer.status_code == 302  # no "could not reach Flexmls" page for a 404
    assert sandbox.counters()["revocations"] == 1


def test_provider_without_revocation_endpoint_is_a_clean_logout(
    app: Flask, signed_in: FlowClient, sandbox: SandboxServer, redis_client: redis.Redis
) -> None:
    state = app.extensions["spark.state"]
    del state.oidc.metadata()["revocation_endpoint"]  # as a provider that offers none
    old_cookie = session_id(signed_in)
    answer = signed_in.post("/spark/logout", data={"spark_csrf_token": page_csrf(signed_in)})
    assert answer.status_code == 302
    assert not authenticates(app, old_cookie)
    assert sandbox.counters()["revocations"] == 0
    assert not redis_client.exists(f"{state.config.key_prefix}revoke:pending")


def test_token_deletion_at_the_api_can_be_turned_off(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    app = forms_app(config, delete_token_at_api=False)
    flow = FlowClient(app, sandbox)
    flow.login()
    answer = flow.post("/spark/logout", data={"spark_csrf_token": page_csrf(flow)})
    assert answer.status_code == 302
    assert sandbox.counters()["token_deletions"] == 0
    assert sandbox.counters()["revocations"] == 1


def test_an_expired_access_token_at_sign_out_is_already_gone(
    app: Flask, signed_in: FlowClient, sandbox: SandboxServer, redis_client: redis.Redis
) -> None:
    """The API answers the deletion of an expired access token with 1020: nothing left to
    delete, so sign-out is confirmed (no "could not reach Flexmls" page, nothing queued)."""
    sandbox.expire_tokens()
    answer = signed_in.post("/spark/logout", data={"spark_csrf_token": page_csrf(signed_in)})
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"
    assert sandbox.counters()["revocations"] == 1
    prefix = app.extensions["spark.state"].config.key_prefix
    assert not redis_client.exists(f"{prefix}revoke:pending")

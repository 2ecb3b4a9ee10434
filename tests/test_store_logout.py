"""The Spark Store "Single Logout URI" receiver, ``GET /spark/store-logout``.

How Spark calls it is unpublished, so every plausible form is exercised: a top-level navigation
with the app's cookie, an iframe without it, with and without parameters; and every forgeable
form must leave the user signed in. Real Redis, the sandbox over real HTTP.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis
from flask import Flask

from flask_spark import logged_out
from flask_spark.sandbox import SandboxServer

from .conftest import make_app
from .helpers import MEMBER, FlowClient
from .test_logout import authenticates, keys, recorded, session_id

PATH = "/spark/store-logout"
_FORM = re.compile(r'<form method="post" action="([^"]+)">\s*<input type="hidden" name="([^"]+)"')


def _still_signed_in(app: Flask, flow: FlowClient) -> bool:
    return authenticates(app, session_id(flow))


def _signed_in_with(
    config: dict[str, Any], sandbox: SandboxServer, **settings: Any
) -> tuple[Flask, FlowClient]:
    """An app with these ``SparkAuth`` options and a browser signed in to it."""
    app = make_app(config, **settings)
    flow = FlowClient(app, sandbox)
    flow.login()
    return app, flow


@pytest.mark.parametrize(
    "params",
    [{}, {"sub": MEMBER.id}, {"iss": "x", "sid": "y"}],
    ids=["bare", "sub", "iss-sid"],
)
def test_iframe_without_cookie_signs_nobody_out(
    app: Flask, signed_in: FlowClient, sandbox: SandboxServer, params: dict[str, str]
) -> None:
    """An iframe on Spark's page carries no SameSite=Lax cookie; parameters prove nothing."""
    iframe = app.test_client()  # no cookie
    answer = iframe.get(PATH, query_string=params, headers={"Referer": sandbox.url + "/"})
    assert answer.status_code == 200
    assert "Nothing to sign out" in answer.get_data(as_text=True)
    assert answer.headers["Cache-Control"] == "no-store"
    assert _still_signed_in(app, signed_in)


@pytest.mark.parametrize(
    "headers",
    [{"Referer": "{issuer}/openid/logout"}, {"Origin": "{issuer}"}],
    ids=["referer", "origin"],
)
def test_navigation_from_spark_with_the_cookie_signs_out(
    app: Flask,
    signed_in: FlowClient,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
    headers: dict[str, str],
) -> None:
    old = session_id(signed_in)
    sent = {name: value.format(issuer=sandbox.url) for name, value in headers.items()}
    with recorded(logged_out) as seen:
        answer = signed_in.get(PATH, headers=sent)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"
    assert answer.headers["Cache-Control"] == "no-store"
    assert not authenticates(app, old)
    assert not any(k.startswith(f"{key_prefix}tok:") for k in keys(redis_client, key_prefix))
    assert [kw["reason"] for _, kw in seen] == ["logout"]
    assert sandbox.counters()["revocations"] >= 1  # the app's grant goes too


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Referer": "https://evil.example/page"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://sparkplatform.com.evil.example/"},
        {"Referer": "{issuer}.evil.example/"},
    ],
    ids=["no-origin", "evil-referer", "evil-origin", "null-origin", "lookalike", "suffix"],
)
def test_forged_navigation_with_the_cookie_does_not_sign_out(
    app: Flask, signed_in: FlowClient, sandbox: SandboxServer, headers: dict[str, str]
) -> None:
    """Any site can make the browser GET this URL with its cookie: it must only ask."""
    sent = {name: value.format(issuer=sandbox.url) for name, value in headers.items()}
    answer = signed_in.get(PATH, query_string={"sub": MEMBER.id}, headers=sent)
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert "Sign out of this app too?" in page
    assert answer.headers["X-Frame-Options"] == "DENY"  # the button cannot be clickjacked
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert _still_signed_in(app, signed_in)
    assert sandbox.counters()["revocations"] == 0

    action, field = _FORM.findall(page)[0]
    token = re.findall(rf'name="{field}" value="([^"]+)"', page)[0]
    assert action == "/spark/logout"
    assert signed_in.post(action, data={field: token}).status_code == 302  # the user's choice
    assert signed_in.get("/called").status_code == 302


def test_store_logout_pages_link_under_the_apps_mount_point(
    signed_in: FlowClient,
) -> None:
    """An app mounted under a prefix (``SCRIPT_NAME``): its form and links keep the prefix."""
    mounted = {"SCRIPT_NAME": "/mounted"}
    answer = signed_in.get(PATH, environ_overrides=mounted)
    page = answer.get_data(as_text=True)
    assert "Sign out of this app too?" in page
    assert _FORM.findall(page)[0][0] == "/mounted/spark/logout"
    assert '<a href="/mounted/">Stay signed in</a>' in page
    signed_in.client.delete_cookie("session")  # not signed in: flask-spark's own error page
    nothing = signed_in.get(PATH, environ_overrides=mounted).get_data(as_text=True)
    assert '<a href="/mounted/">Home</a>' in nothing
    assert 'href="/mounted/spark/login"' in nothing


def test_forged_post_of_the_confirmation_form_is_refused(app: Flask, signed_in: FlowClient) -> None:
    answer = signed_in.post("/spark/logout", data={"spark_csrf_token": "forged"})
    assert answer.status_code == 400
    assert _still_signed_in(app, signed_in)


def test_grant_ended_at_spark_signs_out_without_a_referer(
    app: Flask, signed_in: FlowClient, sandbox: SandboxServer
) -> None:
    """With no Referer (Spark's policy may strip it), Spark's refusal of the token is the proof."""
    tokens = app.extensions["spark.state"].tokens.load(session_id(signed_in))
    assert sandbox.state.revoke_refresh_token(tokens.refresh_token)  # Spark ended the grant
    old = session_id(signed_in)
    answer = signed_in.get(PATH)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"
    assert not authenticates(app, old)


def test_without_confirmation_an_unproven_request_does_nothing(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    app, flow = _signed_in_with(config, sandbox, store_logout_confirm=False)
    answer = flow.get(PATH)
    assert answer.status_code == 200
    assert "Still signed in" in answer.get_data(as_text=True)
    assert authenticates(app, session_id(flow))


def test_no_trusted_origins_when_fbs_says_no_referer_is_sent(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    """store_logout_origins=[]: a Referer proves nothing; only Spark's refusal does."""
    app, flow = _signed_in_with(config, sandbox, store_logout_origins=[])
    answer = flow.get(PATH, headers={"Referer": sandbox.url + "/"})
    assert answer.status_code == 200
    assert authenticates(app, session_id(flow))


def test_without_verification_the_api_is_not_asked(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    app, flow = _signed_in_with(config, sandbox, store_logout_verify=False)
    before = sandbox.counters()["api_calls"]
    assert flow.get(PATH).status_code == 200
    assert sandbox.counters()["api_calls"] == before
    assert authenticates(app, session_id(flow))

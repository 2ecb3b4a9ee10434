"""Logout started by the provider: front-channel (an iframe, no cookie) and back-channel
(a signed ``logout_token``), for a user signed in from two browsers.

Spark advertises neither, so these run against the sandbox as a generic OpenID provider.

Real Redis, the sandbox over real HTTP; the back-channel delivery by the sandbox itself reaches
the app served by a real werkzeug server in a thread.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from flask_spark import logged_out
from flask_spark.sandbox import MEMBERS, SandboxServer
from flask_spark.sandbox.faults import LOGOUT_TOKEN_FAULTS
from flask_spark.testing import sandbox_tokens

from .helpers import MEMBER, FlowClient, query
from .test_logout import authenticates, keys, recorded, session_id

FRONTCHANNEL_URI = "http://localhost/spark/single-logout"
_IFRAME = re.compile(r'<iframe src="([^"]+)"')
#: Keys that belong to a session (a used logout token's ``jti`` marker is not one).
SESSION_KEYS = ("session:", "tok:", "user:", "psid:", "reg:")


@pytest.fixture
def sandbox(generic_sandbox: SandboxServer) -> SandboxServer:
    """OpenID logout channels exist only when the sandbox plays a generic provider."""
    return generic_sandbox


class Browser:
    """A browser signed in to the app, with its own cookie jar at the provider too."""

    def __init__(self, app: Flask, sandbox: SandboxServer) -> None:
        self.flow = FlowClient(app, sandbox)
        self.provider = requests.Session()
        authorize = self.flow.start_login()
        answer = self.provider.post(
            authorize, data={"member": MEMBER.id, "consent": "allow"}, allow_redirects=False
        )
        assert answer.status_code == 302, answer.text
        assert self.flow.callback(answer.headers["Location"]).status_code == 302
        self.cookie = session_id(self.flow)
        with self.flow.client.session_transaction() as data:
            # The sandbox's id_token carries the provider session id; sign-in keeps it.
            self.provider_sid: str = data["_spark"]["psid"]
        assert self.provider_sid

    def logout_at_provider(self, sandbox: SandboxServer) -> str:
        """Sign out at the provider itself; returns the front-channel iframe URL it renders."""
        page = self.provider.get(
            sandbox.url + "/openid/logout", params={"client_id": sandbox.client_id}, timeout=10
        )
        assert page.status_code == 200, page.text
        found = _IFRAME.search(page.text)
        assert found, page.text
        return html.unescape(found.group(1))


def session_keys(client: redis.Redis, prefix: str) -> set[str]:
    return {k for k in keys(client, prefix) if k[len(prefix) :].startswith(SESSION_KEYS)}


def iframe_get(app: Flask, url: str) -> Any:
    """Load the front-channel URL as the provider's iframe does: no cookie of ours."""
    parts = urlsplit(url)
    return app.test_client().get(parts.path + "?" + parts.query)


@pytest.fixture
def browsers(app: Flask, sandbox: SandboxServer) -> tuple[Browser, Browser]:
    first, second = Browser(app, sandbox), Browser(app, sandbox)
    assert first.provider_sid != second.provider_sid
    assert first.cookie != second.cookie
    assert authenticates(app, first.cookie)
    assert authenticates(app, second.cookie)
    return first, second


# -- front-channel ---------------------------------------------------------------------------


def test_frontchannel_logout_of_two_browsers(
    app: Flask,
    sandbox: SandboxServer,
    browsers: tuple[Browser, Browser],
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    sandbox.configure(frontchannel_logout_uri=FRONTCHANNEL_URI)
    first, second = browsers

    iframe = first.logout_at_provider(sandbox)
    assert query(iframe) == {"iss": sandbox.issuer, "sid": first.provider_sid}
    with recorded(logged_out) as seen:
        answer = iframe_get(app, iframe)
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    assert not authenticates(app, first.cookie)
    assert authenticates(app, second.cookie)  # only that provider session ended
    assert [(kw["user"].id, kw["reason"]) for _, kw in seen] == [(MEMBER.id, "frontchannel")]

    assert iframe_get(app, second.logout_at_provider(sandbox)).status_code == 200
    assert not authenticates(app, second.cookie)
    assert first.flow.get("/called").status_code == 302
    assert second.flow.get("/called").status_code == 302
    assert session_keys(redis_client, key_prefix) == set()
    assert sandbox.counters()["frontchannel_logouts"] == 2


def test_frontchannel_logout_of_an_unknown_session_ends_nothing(
    app: Flask, sandbox: SandboxServer, browsers: tuple[Browser, Browser]
) -> None:
    answer = app.test_client().get(
        "/spark/single-logout", query_string={"iss": sandbox.issuer, "sid": "no-such-session"}
    )
    assert answer.status_code == 200
    assert all(authenticates(app, b.cookie) for b in browsers)


@pytest.mark.parametrize(
    "params",
    [
        {"iss": "https://evil.example.com", "sid": "<sid>"},
        {"sid": "<sid>"},
        {"iss": "<iss>"},
        {},
        {"iss": "<iss>", "sid": ""},
    ],
    ids=["wrong-iss", "no-iss", "no-sid", "nothing", "empty-sid"],
)
def test_frontchannel_logout_refuses_bad_requests(
    app: Flask,
    sandbox: SandboxServer,
    browsers: tuple[Browser, Browser],
    redis_client: redis.Redis,
    key_prefix: str,
    params: dict[str, str],
) -> None:
    first, _ = browsers
    values = {"<sid>": first.provider_sid, "<iss>": sandbox.issuer}
    query_string = {k: values.get(v, v) for k, v in params.items()}
    before = keys(redis_client, key_prefix)
    # Sent by the signed-in browser itself (its cookie attached): a GET must still not sign
    # it out without naming the provider and its session.
    answer = first.flow.get("/spark/single-logout", query_string=query_string)
    assert answer.status_code == 400
    assert answer.headers["Cache-Control"] == "no-store"
    assert keys(redis_client, key_prefix) == before
    assert all(authenticates(app, b.cookie) for b in browsers)


# -- back-channel ----------------------------------------------------------------------------


def post_logout_token(app: Flask, token: str) -> Any:
    return app.test_client().post("/spark/backchannel-logout", data={"logout_token": token})


def test_backchannel_logout_by_sub_ends_every_session(
    app: Flask,
    sandbox: SandboxServer,
    browsers: tuple[Browser, Browser],
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    with recorded(logged_out) as seen:
        answer = post_logout_token(app, sandbox.logout_token(sub=MEMBER.id))
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    for browser in browsers:
        assert not authenticates(app, browser.cookie)
        assert browser.flow.get("/called").status_code == 302
    assert session_keys(redis_client, key_prefix) == set()
    assert [(kw["user"].id, kw["reason"], kw["sessions"]) for _, kw in seen] == [
        (MEMBER.id, "backchannel", 2)
    ]


def test_backchannel_logout_by_sid_ends_that_session_only(
    app: Flask, sandbox: SandboxServer, browsers: tuple[Browser, Browser]
) -> None:
    first, second = browsers
    token = sandbox.logout_token(sub=MEMBER.id, sid=first.provider_sid)
    assert post_logout_token(app, token).status_code == 200
    assert not authenticates(app, first.cookie)
    assert authenticates(app, second.cookie)
    token = sandbox.logout_token(sid=second.provider_sid)
    assert post_logout_token(app, token).status_code == 200
    assert not authenticates(app, second.cookie)


def test_backchannel_sid_of_another_user_ends_nothing(
    app: Flask, sandbox: SandboxServer, browsers: tuple[Browser, Browser]
) -> None:
    first, _ = browsers
    token = sandbox.logout_token(sub=MEMBERS[1].id, sid=first.provider_sid)
    assert post_logout_token(app, token).status_code == 200
    assert all(authenticates(app, b.cookie) for b in browsers)


def test_backchannel_logout_token_is_single_use(
    app: Flask, sandbox: SandboxServer, browsers: tuple[Browser, Browser]
) -> None:
    token = sandbox.logout_token(sub=MEMBER.id)
    assert post_logout_token(app, token).status_code == 200
    again = Browser(app, sandbox)  # signs in after the provider's logout
    replay = post_logout_token(app, token)
    assert replay.status_code == 400
    assert authenticates(app, again.cookie)


@pytest.mark.parametrize("fault", sorted(LOGOUT_TOKEN_FAULTS))
def test_invalid_logout_token_is_refused(
    app: Flask,
    sandbox: SandboxServer,
    browsers: tuple[Browser, Browser],
    redis_client: redis.Redis,
    key_prefix: str,
    fault: str,
) -> None:
    first, _ = browsers
    token = sandbox.logout_token(sub=MEMBER.id, sid=first.provider_sid, fault=fault)
    before = keys(redis_client, key_prefix)
    with recorded(logged_out) as seen:
        answer = post_logout_token(app, token)
    assert answer.status_code == 400
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.json == {"error": "invalid_request"}
    assert seen == []
    assert keys(redis_client, key_prefix) == before
    assert all(authenticates(app, b.cookie) for b in browsers)


@pytest.mark.parametrize("body", ["missing", "empty", "garbage", "id_token", "get"])
def test_backchannel_refuses_what_is_not_a_logout_token(
    app: Flask, sandbox: SandboxServer, browsers: tuple[Browser, Browser], body: str
) -> None:
    client = app.test_client()
    if body == "get":
        answer = client.get("/spark/backchannel-logout")
        assert answer.status_code == 405
    else:
        data = {
            "missing": {},
            "empty": {"logout_token": ""},
            "garbage": {"logout_token": "not.a.jwt"},
            # A valid, signed id_token of this very user is not a logout token (no events).
            "id_token": {"logout_token": sandbox_tokens(sandbox, MEMBER)["id_token"]},
        }[body]
        answer = client.post("/spark/backchannel-logout", data=data)
        assert answer.status_code == 400
        assert answer.headers["Cache-Control"] == "no-store"
    assert all(authenticates(app, b.cookie) for b in browsers)


@pytest.fixture
def served_app(app: Flask) -> Iterator[str]:
    """The app behind a real threaded werkzeug server, so the sandbox can POST to it."""
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def test_backchannel_logout_delivered_by_the_sandbox(
    app: Flask,
    sandbox: SandboxServer,
    served_app: str,
    browsers: tuple[Browser, Browser],
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    sandbox.configure(backchannel_logout_uri=served_app + "/spark/backchannel-logout")
    statuses = sandbox.backchannel_logout(MEMBER.id)
    # One logout token per provider session (each with sub and sid), each accepted.
    assert statuses == [200, 200]
    assert sandbox.counters()["backchannel_logouts"] == 2
    for browser in browsers:
        assert not authenticates(app, browser.cookie)
    assert session_keys(redis_client, key_prefix) == set()


def test_single_logout_at_provider_notifies_the_back_channel(
    config: dict[str, Any],
    sandbox: SandboxServer,
    served_app: str,
    browsers: tuple[Browser, Browser],
) -> None:
    """The user signs out at Flexmls in one browser: the provider tells the app server-side."""
    first, second = browsers
    sandbox.configure(backchannel_logout_uri=served_app + "/spark/backchannel-logout")
    answer = first.provider.get(
        sandbox.url + "/openid/logout", params={"client_id": sandbox.client_id}, timeout=10
    )
    assert answer.status_code == 200
    assert sandbox.counters()["backchannel_logouts"] == 1
    app = first.flow.app
    assert not authenticates(app, first.cookie)
    assert authenticates(app, second.cookie)

"""Attack round 3 (issue 19 item 8): what an independent attack on the code and the running demo
found. A test marked ``xfail(strict=True)`` shows an open finding: once it is fixed the test
passes, the strict mark fails the suite, and the fixer removes the mark."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import redis
from flask import Flask, render_template_string, session
from flask_login import LoginManager, UserMixin, login_user, logout_user

from flask_spark.core.errors import SessionExpired
from flask_spark.core.refresh import TokenManager
from flask_spark.core.tokens import TokenSet
from flask_spark.sandbox import SandboxServer

from .conftest import make_app
from .helpers import FlowClient, live_grants


class _User(UserMixin):
    def __init__(self, name: str) -> None:
        self.id = name


def _clear_then_flash() -> None:
    session.clear()  # the Flask tutorial's log-out, then a message for the next page
    session["flash"] = "You are logged out."


def _flask_login_logout() -> None:
    logout_user()


def _app_with_slow_logout(
    config: dict[str, Any], log_out: Callable[[], None]
) -> tuple[Flask, threading.Event, threading.Event]:
    """A test app with Flask-Login and an app log-out that waits, once entered, for a signal."""
    app = make_app(config)
    manager = LoginManager(app)
    manager.user_loader(_User)
    entered, go_on = threading.Event(), threading.Event()

    @app.post("/app-login")
    def app_login() -> str:
        login_user(_User("ann"))
        session["cart"] = ["book"]
        return "in"

    @app.post("/app-logout")
    def app_logout() -> str:
        entered.set()
        assert go_on.wait(60)
        log_out()
        return "out"

    return app, entered, go_on


@pytest.mark.parametrize("log_out", [_clear_then_flash, _flask_login_logout])
def test_an_old_requests_app_log_out_leaves_a_newer_sign_ins_cookie_alone(
    config: dict[str, Any], sandbox: SandboxServer, log_out: Callable[[], None]
) -> None:
    """Security checklist, Session: a request whose session ended elsewhere never deletes or
    replaces the browser's (possibly newer) cookie. Here a slow app log-out of the old session
    is still running when the same browser signs in with Flexmls again."""
    app, entered, go_on = _app_with_slow_logout(config, log_out)
    old = FlowClient(app, sandbox)
    assert old.post("/app-login").status_code == 200
    assert old.login("/called").status_code == 302
    browser = FlowClient(app, sandbox)  # the same browser's later requests: same cookie
    browser.client.set_cookie("session", str(old.cookie()))
    answers: list[Any] = []
    slow = threading.Thread(target=lambda: answers.append(old.post("/app-logout")))
    slow.start()
    try:
        assert entered.wait(60)
        assert browser.login("/called").status_code == 302  # while the log-out is in flight
        assert browser.get("/called").status_code == 200
    finally:
        go_on.set()
        slow.join(60)
    cookies = [c for c in answers[0].headers.getlist("Set-Cookie") if c.startswith("session=")]
    # In a browser, either answer (a new id, or Max-Age=0) drops the newer Flexmls sign-in,
    # whose session and grant are then orphaned.
    assert cookies == []


def test_a_sign_in_after_the_idle_timeout_leaves_one_live_grant(
    app: Flask, flow: FlowClient, sandbox: SandboxServer, redis_client: redis.Redis
) -> None:
    """Security checklist: one live grant per signed-in browser. The idle timeout is the Redis
    TTL of the session key; its expiry is what the ``delete`` below stands for."""
    state = app.extensions["spark.state"]
    assert flow.login("/called").status_code == 302
    idle = str(flow.cookie())
    redis_client.delete(state.session_interface.store_key(idle))  # the idle TTL ran out
    for user_key in redis_client.scan_iter(state.registry.prefix + "user:*"):  # hours ago
        redis_client.hset(user_key, idle, f"{int(time.time()) - 7200}:")
    assert flow.get("/called").status_code == 302  # signed out, as the idle timeout says
    assert flow.login("/called").status_code == 302
    assert flow.get("/called").status_code == 200
    assert live_grants(sandbox) == 1  # the idled-out session's grant was given back
    assert state.tokens.load(idle) is None  # and its tokens are not kept beside the new ones


def test_a_page_with_the_sign_out_form_is_not_stored_by_shared_caches(
    app: Flask, flow: FlowClient
) -> None:
    """A page that shows only ``spark_logged_in`` and the sign-out form (no name) carries a
    per-session secret: a shared cache must not keep it for the next visitor."""

    @app.get("/nav")
    def nav() -> str:
        return render_template_string(
            '{% from "spark/macros.html" import login_button, logout_form %}'
            "{% if spark_logged_in %}{{ logout_form() }}{% else %}{{ login_button() }}{% endif %}"
        )

    assert flow.login("/called").status_code == 302
    page = flow.get("/nav")
    assert flow.csrf() in page.get_data(as_text=True)
    assert "no-store" in page.headers.get("Cache-Control", "")


@pytest.mark.parametrize(
    "next_path", ["/.//evil.example", "/x/..//evil.example", "/%2e//evil.example"]
)
def test_next_never_resolves_to_a_path_that_names_another_host(
    flow: FlowClient, next_path: str
) -> None:
    answer = flow.login(next_path)
    assert answer.status_code == 302
    # Browsers (WHATWG URL) read a %2e path segment as "." when they remove dot segments.
    location = re.sub("%2e", ".", answer.headers["Location"], flags=re.IGNORECASE)
    landed = urlsplit(urljoin("http://app.example/spark/callback", location))
    assert landed.netloc == "app.example"
    assert not landed.path.startswith("//")


@pytest.mark.xfail(
    strict=True,
    reason="finding 2: two sign-ins that one browser completes at once (two tabs) each keep a "
    "grant; the browser holds the cookie of one, the other's grant stays live, orphaned",
)
def test_two_tabs_signing_in_at_once_leave_one_live_grant(
    app: Flask, sandbox: SandboxServer
) -> None:
    """The checklist allows several tabs to sign in at once; the second callback left the
    browser before the first one's cookie came back, so it carries no session cookie."""
    first_tab = FlowClient(app, sandbox)
    urls = [first_tab.authorize(first_tab.start_login("/called")) for _ in range(2)]
    second_tab = FlowClient(app, sandbox)  # the same browser: its sign-in binding cookie
    second_tab.client.set_cookie("spark_signin", str(first_tab.binding()), path="/spark")
    assert first_tab.callback(urls[0]).status_code == 302
    assert second_tab.callback(urls[1]).status_code == 302
    assert second_tab.get("/called").status_code == 200  # the cookie the browser kept
    assert live_grants(sandbox) == 1


def test_a_signed_in_cookie_lasts_as_long_as_the_sign_in(app: Flask, flow: FlowClient) -> None:
    """Reads renew the idle timeout in Redis, not the cookie, whose expiry is set when the
    session is written (the sign-in): so it must last as long as the sign-in, or an active
    reader is signed out when the idle timeout, counted from the sign-in, has passed."""
    assert flow.login("/called").status_code == 302
    assert flow.get("/called").status_code == 200
    cookie = flow.client.get_cookie("session")
    assert cookie is not None
    assert cookie.expires is not None
    lifetime = app.extensions["spark.state"].config.session_lifetime
    assert lifetime > app.permanent_session_lifetime.total_seconds()
    assert (cookie.expires - datetime.now(UTC)).total_seconds() >= lifetime - 60


class _Provider:
    """The provider at the TokenManager's edge: answers one refresh, records revocations."""

    def __init__(self, before_answer: Callable[[], object]) -> None:
        self.before_answer = before_answer
        self.revoked: list[tuple[str, str]] = []

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        self.before_answer()
        return {"access_token": "a-late", "refresh_token": "r-late", "expires_in": 86400}

    def endpoint(self, name: str) -> str:
        return "https://provider.invalid/revoke"

    def revoke(self, token: str, token_type_hint: str) -> bool:
        self.revoked.append((token, token_type_hint))
        return True


def test_a_refresh_that_cannot_store_its_tokens_gives_back_the_access_token_too(
    app: Flask,
) -> None:
    state = app.extensions["spark.state"]
    stale = TokenSet(
        access_token="a1", refresh_token="r1", subject=None, expires_at=time.time() - 1, sid="s1"
    )
    state.tokens.create(stale, ttl=60)
    provider = _Provider(before_answer=lambda: state.tokens.delete("s1"))  # signed out meanwhile
    manager = TokenManager(state.tokens, provider, skew=0, lock_timeout=5, lock_wait=5)  # type: ignore[arg-type]
    with pytest.raises(SessionExpired):
        manager.refresh("s1", stale=stale)
    assert ("r-late", "refresh_token") in provider.revoked
    assert ("a-late", "access_token") in provider.revoked


@pytest.mark.xfail(
    strict=True,
    reason="finding 7: a request that left the browser before a newer sign-in's cookie came "
    "back, and reached the app after it, gets a new empty session when it writes (a flash, "
    "the CSRF token): its Set-Cookie replaces the newer sign-in's cookie",
)
def test_a_request_sent_before_a_new_sign_in_does_not_replace_its_cookie(
    app: Flask, sandbox: SandboxServer
) -> None:
    @app.get("/remember-visit")
    def remember_visit() -> str:
        session["visited"] = True  # any write: a flash, a cart, the sign-out form's token
        return "ok"

    tab = FlowClient(app, sandbox)
    assert tab.login("/called").status_code == 302
    old_sid = str(tab.cookie())
    other_tab = FlowClient(app, sandbox)  # the same browser signs in again in another tab
    other_tab.client.set_cookie("session", old_sid)
    assert other_tab.login("/called").status_code == 302
    late = tab.get("/remember-visit")  # sent with the old cookie, before the new one came back
    assert late.status_code == 200
    assert [c for c in late.headers.getlist("Set-Cookie") if c.startswith("session=")] == []

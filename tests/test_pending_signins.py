"""Pending sign-ins are bounded (issue 12, point 4).

A visitor who only starts signing in gets no server-side session: a short-lived cookie binds
the browser to its pending sign-ins, kept in one Redis list per browser, capped at
:data:`~flask_spark.core.transactions.MAX_PENDING` (the oldest dropped first). And the recipe
in ``docs/security.rst`` rate-limits ``/spark/login`` with Flask-Limiter.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from flask_spark.core.transactions import MAX_PENDING
from flask_spark.sandbox import SandboxServer

from .conftest import make_app
from .helpers import FlowClient


def prefixed(store: redis.Redis, prefix: str) -> list[str]:
    return [k.decode() for k in store.scan_iter(match=prefix + "*", count=1000)]


def test_cookie_less_requests_leave_one_short_lived_key_each_and_no_session(
    app: Flask, redis_client: redis.Redis, key_prefix: str
) -> None:
    requests = 300
    for _ in range(requests):
        answer = app.test_client().get("/spark/login?next=/dashboard")
        assert answer.status_code == 302
        cookies = answer.headers.getlist("Set-Cookie")
        assert len(cookies) == 1  # the binding cookie; no session cookie
        assert cookies[0].startswith("spark_signin=")
        assert "HttpOnly" in cookies[0]
        assert "Path=/spark" in cookies[0]
        assert "SameSite=Lax" in cookies[0]
    keys = prefixed(redis_client, key_prefix)
    assert len(keys) == requests
    assert all(k.startswith(key_prefix + "txn:") for k in keys)
    ttl = app.extensions["spark.state"].config.transaction_ttl
    assert all(0 < redis_client.ttl(k) <= ttl for k in keys[:20])


def test_the_binding_cookie_follows_an_app_mounted_under_a_prefix(app: Flask) -> None:
    answer = app.test_client().get("/spark/login", base_url="http://localhost/shop")
    assert answer.status_code == 302
    assert "Path=/shop/spark" in answer.headers["Set-Cookie"]


def test_one_browser_keeps_at_most_the_newest_pending_sign_ins(
    app: Flask, sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    flow = FlowClient(app, sandbox)
    callbacks = [flow.authorize(flow.start_login("/called")) for _ in range(MAX_PENDING + 45)]
    assert flow.cookie() is None
    assert prefixed(redis_client, key_prefix) == [f"{key_prefix}txn:{{{flow.binding()}}}"]
    assert app.extensions["spark.state"].transactions.pending(flow.binding()) == MAX_PENDING
    # The oldest were dropped: their callbacks are refused, and sign nobody in.
    assert flow.callback(callbacks[0]).status_code == 400
    assert flow.callback(callbacks[-MAX_PENDING - 1]).status_code == 400
    assert flow.get("/called").status_code == 302
    # The newest still work, once each (several tabs signing in at once).
    transactions = app.extensions["spark.state"].transactions
    assert flow.callback(callbacks[-1]).status_code == 302
    assert flow.callback(callbacks[-2]).status_code == 302
    assert transactions.pending(flow.binding()) == MAX_PENDING - 2
    grants = sandbox.counters()["authorization_code_grants"]
    flow.callback(callbacks[-1])  # a reload: signed in, so to the landing page; no exchange
    assert sandbox.counters()["authorization_code_grants"] == grants
    assert flow.get("/called").status_code == 200


def test_a_callback_from_another_browser_is_refused(app: Flask, sandbox: SandboxServer) -> None:
    victim, attacker = FlowClient(app, sandbox), FlowClient(app, sandbox)
    attacker.start_login()  # the attacker has a binding of their own
    callback = victim.authorize(victim.start_login("/called"))
    assert attacker.callback(callback).status_code == 400  # login CSRF / stolen callback
    assert attacker.get("/called").status_code == 302
    assert victim.callback(callback).status_code == 302  # not consumed by the attempt


def test_the_flask_limiter_recipe_rate_limits_sign_in_starts(config: dict[str, Any]) -> None:
    app = make_app(config)
    # The recipe of docs/security.rst ("Rate-limiting sign-in starts").
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://")
    login = app.view_functions["spark.login"]
    app.view_functions["spark.login"] = limiter.limit("5 per minute")(login)

    client = app.test_client()
    answers = [client.get("/spark/login").status_code for _ in range(8)]
    assert answers == [302] * 5 + [429] * 3
    # Other routes are not limited by it.
    assert all(client.get("/").status_code == 200 for _ in range(10))


def test_over_https_the_binding_cookie_is_host_prefixed_and_a_planted_one_is_ignored(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    """``__Host-``: Secure, Path=/, no Domain, so a sibling subdomain cannot plant a binding of
    its own (cookie tossing) to tie a victim's browser to the attacker's sign-in."""
    # The sandbox registers loopback http redirect URIs; the browser itself talks HTTPS.
    app = make_app(
        {
            **config,
            "SESSION_COOKIE_SECURE": True,
            "SPARK_REDIRECT_URI": "http://localhost/spark/callback",
        }
    )
    client = app.test_client()
    https = {"base_url": "https://localhost"}
    answer = client.get("/spark/login", **https)
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("__Host-spark_signin=")
    assert "; Secure" in cookie
    assert "; Path=/;" in cookie or cookie.endswith("; Path=/")
    assert "Domain" not in cookie
    ours = client.get_cookie("__Host-spark_signin", domain="localhost")
    assert ours is not None

    # A value planted under the unprefixed name (as a subdomain could) binds nothing.
    victim = app.test_client()
    victim.set_cookie("spark_signin", ours.value, domain="localhost", path="/spark")
    planted = victim.get("/spark/login", **https)
    assert planted.headers["Set-Cookie"].split(";")[0] != f"__Host-spark_signin={ours.value}"

    # And the whole sign-in works with the prefixed cookie.
    flow = FlowClient(app, sandbox)
    authorize = flow.client.get("/spark/login?next=/called", **https).headers["Location"]
    callback = urlsplit(flow.authorize(authorize))
    done = flow.client.get(f"{callback.path}?{callback.query}", **https)
    assert done.status_code == 302, done.get_data(as_text=True)
    assert done.headers["Location"] == "/called"
    assert flow.client.get("/called", **https).status_code == 200

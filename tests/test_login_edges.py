"""Sign-in edges: the transaction's TTL, clock skew, a sign-in behind a TLS proxy."""

from __future__ import annotations

from typing import Any

import redis
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_spark.sandbox import SandboxServer

from .conftest import make_app
from .helpers import FlowClient, query


def test_login_transaction_has_the_configured_ttl_and_dies_with_it(
    config: dict[str, Any], sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    flow = FlowClient(make_app(config, transaction_ttl=90), sandbox)
    callback = flow.authorize(flow.start_login("/dashboard"))
    key = f"{key_prefix}txn:{{{flow.binding()}}}"
    assert query(callback)["state"] in redis_client.lindex(key, 0).decode()
    assert 0 < redis_client.ttl(key) <= 90
    redis_client.expire(key, 0)  # what Redis does when the TTL runs out
    response = flow.callback(callback)
    assert response.status_code == 400
    assert b"expired" in response.data
    assert flow.get("/dashboard").status_code == 302


def test_clock_skew_is_what_decides_an_iat_in_the_future(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    sandbox.faults(id_token_fault="future-iat")  # iat one hour ahead
    strict = FlowClient(make_app(config), sandbox)
    assert strict.login("/dashboard").status_code == 400
    lenient = FlowClient(make_app(config, clock_skew=4000), sandbox)
    assert lenient.login("/dashboard").status_code == 302
    assert lenient.get("/dashboard").status_code == 200


def _behind_proxy(config: dict[str, Any], sandbox: SandboxServer, *, proxy_fix: bool) -> FlowClient:
    app = make_app({**config, "SPARK_REQUIRE_HTTPS": True})
    if proxy_fix:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)  # type: ignore[method-assign]
    flow = FlowClient(app, sandbox)
    flow.client.environ_base.update(
        {
            "HTTP_X_FORWARDED_PROTO": "https",
            "HTTP_X_FORWARDED_HOST": "app.example",
        }
    )
    return flow


def test_sign_in_behind_a_tls_proxy_with_proxyfix(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    sandbox.configure(redirect_uris=["https://app.example/spark/callback"])
    flow = _behind_proxy(config, sandbox, proxy_fix=True)
    authorize_url = flow.start_login("/dashboard")
    assert query(authorize_url)["redirect_uri"] == "https://app.example/spark/callback"
    callback = flow.authorize(authorize_url)
    assert callback.startswith("https://app.example/spark/callback?")
    assert flow.callback(callback).headers["Location"] == "/dashboard"
    assert flow.get("/dashboard").status_code == 200


def test_without_proxyfix_the_downgraded_redirect_uri_is_refused(
    config: dict[str, Any], sandbox: SandboxServer
) -> None:
    flow = _behind_proxy(config, sandbox, proxy_fix=False)
    # The proxy talks plain HTTP to the app, keeping the public host name.
    response = flow.get("/spark/login?next=/dashboard", base_url="http://app.example")
    assert response.status_code == 500
    assert b"ProxyFix" in response.data
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert sandbox.counters()["authorize_requests"] == 0

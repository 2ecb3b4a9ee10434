"""How the provider client uses HTTP (issue 17, issue 19 point 3), on real loopback servers.

- One keep-alive connection serves every call to the provider: token, revocation and JWKS calls
  do not close the shared pool (the server counts the connections it accepted).
- A redirect to another origin, or from HTTPS to HTTP, is never followed: the code, the PKCE
  verifier, the refresh token and the client secret reach no other host (a second server
  records whether it was hit), and the sign-in answers a clean 502 page.
"""

from __future__ import annotations

import io
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from joserfc.jwk import RSAKey

from flask_spark.core.errors import ProviderError
from flask_spark.core.http import RedirectRefused, pooled_session, same_origin_redirects
from flask_spark.core.oidc import OIDCClient

from .conftest import make_app

_KEY = RSAKey.generate_key(2048)


class Provider(ThreadingHTTPServer):
    """A small OpenID provider over HTTP/1.1 keep-alive that counts its connections.

    ``redirect_to``, when set, makes the token and revocation endpoints answer a redirect there.
    """

    daemon_threads = True

    def __init__(self) -> None:
        self.connections = 0
        self.hits: list[str] = []
        self.redirect_to: str | None = None
        self.redirect_status = 307
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self, status: int, body: dict[str, Any], **headers: str) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                server.hits.append(self.path)
                if self.path == "/.well-known/openid-configuration":
                    self.answer(200, server.discovery())
                elif self.path == "/jwks":
                    self.answer(200, {"keys": [_KEY.as_dict(private=False)]})
                else:
                    self.answer(404, {})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server.hits.append(self.path)
                if server.redirect_to:
                    location = server.redirect_to + self.path
                    self.answer(server.redirect_status, {}, Location=location)
                elif self.path == "/token":
                    self.answer(
                        200,
                        {"access_token": "a", "token_type": "Bearer", "refresh_token": "r"},
                    )
                else:
                    self.answer(200, {})

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def get_request(self) -> tuple[socket.socket, Any]:
        self.connections += 1
        return super().get_request()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "revocation_endpoint": self.url + "/revoke",
            "jwks_uri": self.url + "/jwks",
        }

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def provider() -> Iterator[Provider]:
    with Provider() as server:
        yield server


@pytest.fixture
def elsewhere() -> Iterator[Provider]:
    with Provider() as server:
        yield server


@pytest.fixture
def app(config: dict[str, Any], provider: Provider) -> Flask:
    return make_app({**config, "SPARK_ISSUER": provider.url})


def oidc_of(app: Flask) -> OIDCClient:
    client: OIDCClient = app.extensions["spark.state"].oidc
    return client


def test_provider_calls_share_one_connection(app: Flask, provider: Provider) -> None:
    oidc = oidc_of(app)
    for _ in range(3):
        assert oidc.refresh("r")["access_token"] == "a"
        assert oidc.revoke("r", "refresh_token") is True
        oidc.jwks(refresh=True, limited=False)
    assert provider.hits.count("/token") == 3
    assert provider.hits.count("/jwks") == 3
    assert provider.connections == 1


@pytest.mark.parametrize("status", [302, 307, 308])
def test_token_calls_do_not_follow_a_redirect_to_another_host(
    app: Flask, provider: Provider, elsewhere: Provider, status: int
) -> None:
    oidc = oidc_of(app)
    oidc.metadata()
    provider.redirect_to, provider.redirect_status = elsewhere.url, status
    with pytest.raises(ProviderError) as refused:
        oidc.refresh("the-refresh-token")
    assert refused.value.status == 502
    assert oidc.revoke("the-refresh-token", "refresh_token") is False
    assert provider.hits[-2:] == ["/token", "/revoke"]
    assert elsewhere.hits == []
    assert elsewhere.connections == 0


def test_a_sign_in_whose_code_exchange_is_redirected_answers_502(
    app: Flask, provider: Provider, elsewhere: Provider
) -> None:
    client = app.test_client()
    login = client.get("/spark/login", headers={"Accept": "text/html"})
    assert login.status_code == 302
    state = parse_qs(urlsplit(login.headers["Location"]).query)["state"][0]
    provider.redirect_to = elsewhere.url
    answer = client.get(f"/spark/callback?code=the-code&state={state}")
    assert answer.status_code == 502
    assert answer.mimetype == "text/html"
    assert elsewhere.hits == []
    assert elsewhere.connections == 0


def test_a_same_origin_redirect_is_followed(provider: Provider) -> None:
    provider.redirect_to = provider.url + "/moved"
    session = pooled_session()
    with pytest.raises(requests.TooManyRedirects):  # it keeps redirecting to itself
        session.post(provider.url + "/token", data={"a": "b"}, timeout=5)
    assert len(provider.hits) > 1


def test_a_redirect_from_https_to_http_is_refused() -> None:
    response = requests.Response()
    response.status_code = 302
    response.url = "https://127.0.0.1:8443/token"
    response.headers["Location"] = "http://127.0.0.1:8443/token"
    response.raw = io.BytesIO()
    with pytest.raises(RedirectRefused):
        same_origin_redirects(response)
    response.headers["Location"] = "/moved"
    assert same_origin_redirects(response) is response

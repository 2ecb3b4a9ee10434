"""The API's pooled HTTP session reads the proxy environment once, and still honours it.

Two real HTTP servers on loopback: one plays the API, one an HTTP proxy (a proxy receives the
absolute URL in its request line). Nothing leaves the machine.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask

from flask_spark.core.http import pooled_session

from .conftest import make_app
from .helpers import closed_port


class Recorder(ThreadingHTTPServer):
    """An HTTP server that answers 200 and remembers each request line's target."""

    daemon_threads = True

    def __init__(self) -> None:
        self.targets: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.targets.append(self.path)
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = self
        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture
def api() -> Iterator[Recorder]:
    with Recorder() as server:
        yield server


@pytest.fixture
def proxy() -> Iterator[Recorder]:
    with Recorder() as server:
        yield server


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_the_configured_hosts_go_through_the_environment_proxy(
    api: Recorder, proxy: Recorder, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("HTTP_PROXY", proxy.url)
    session = pooled_session(hosts=[api.url + "/v1/"])
    # Resolved once: a later change of the environment is not read per call.
    clean_env.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")
    assert session.get(api.url + "/v1/my/account", timeout=5).json() == {"ok": True}
    assert proxy.targets == [api.url + "/v1/my/account"]  # absolute form: proxied
    assert api.targets == []
    assert session.trust_env is False


def test_no_proxy_sends_the_configured_hosts_directly(
    api: Recorder, proxy: Recorder, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("HTTP_PROXY", proxy.url)
    clean_env.setenv("NO_PROXY", "example.com,127.0.0.1")
    session = pooled_session(hosts=[api.url + "/v1/"])
    assert session.get(api.url + "/v1/my/account", timeout=5).status_code == 200
    assert api.targets == ["/v1/my/account"]
    assert proxy.targets == []


def test_without_hosts_the_session_still_reads_the_environment_per_call(
    api: Recorder, proxy: Recorder, clean_env: pytest.MonkeyPatch
) -> None:
    session = pooled_session()
    clean_env.setenv("HTTP_PROXY", proxy.url)  # set after building: read at the call
    assert session.get(api.url + "/x", timeout=5).status_code == 200
    assert proxy.targets == [api.url + "/x"]


def test_the_ca_bundle_of_the_environment_is_kept(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/etc/company-ca.pem")
    assert pooled_session(hosts=["https://sparkapi.com/v1/"]).verify == "/etc/company-ca.pem"


def test_the_apps_api_session_is_resolved_for_its_api_hosts(
    config: dict[str, Any], proxy: Recorder, clean_env: pytest.MonkeyPatch
) -> None:
    config["SPARK_API_BASE_URL"] = "https://sparkapi.com/v1/"
    config["SPARK_RESO_BASE_URL"] = "https://resoapi.example/Reso/OData/"
    clean_env.setenv("HTTPS_PROXY", proxy.url)
    clean_env.setenv("NO_PROXY", "resoapi.example")
    app: Flask = make_app(config)
    http = app.extensions["spark.state"].api_for("a-session").http
    assert http.trust_env is False
    assert http.proxies == {"https://sparkapi.com": proxy.url}

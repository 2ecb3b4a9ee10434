"""Test helpers: drive the sign-in flow like a browser, without a browser."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import requests
from flask import Flask
from werkzeug.test import TestResponse

from flask_spark.sandbox import MEMBERS, SandboxServer

MEMBER = MEMBERS[0]
T = TypeVar("T")


class FlowClient:
    """A Flask test client (the browser's cookie jar) that can complete a sign-in at the sandbox."""

    def __init__(self, app: Flask, sandbox: SandboxServer) -> None:
        self.app = app
        self.sandbox = sandbox
        self.client = app.test_client()

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.client.get(path, **kw)

    def post(self, path: str, **kw: Any) -> TestResponse:
        return self.client.post(path, **kw)

    def cookie(self, name: str = "session") -> str | None:
        found = self.client.get_cookie(name)
        return found.value if found else None

    def binding(self) -> str | None:
        """The cookie that binds this browser to the sign-ins it started."""
        found = self.client.get_cookie("spark_signin", path="/spark")
        return found.value if found else None

    def start_login(self, next_path: str | None = None) -> str:
        """GET /spark/login; returns the provider's authorize URL."""
        url = "/spark/login" + (f"?next={next_path}" if next_path else "")
        response = self.client.get(url)
        assert response.status_code == 302, response.get_data(as_text=True)
        location = response.headers["Location"]
        assert location.startswith(self.sandbox.url), location
        return location

    def authorize(
        self, authorize_url: str, member_id: str | None = None, consent: str = "allow"
    ) -> str:
        """Sign in at the sandbox's login form; returns the callback URL it redirects to."""
        response = requests.post(
            authorize_url,
            data={"member": member_id or MEMBER.id, "consent": consent},
            allow_redirects=False,
            timeout=10,
        )
        assert response.status_code == 302, response.text
        return response.headers["Location"]

    def callback(self, callback_url: str) -> TestResponse:
        parts = urlsplit(callback_url)
        return self.client.get(parts.path + ("?" + parts.query if parts.query else ""))

    def login(self, next_path: str | None = None, member_id: str | None = None) -> TestResponse:
        """The whole sign-in; returns the callback's response."""
        return self.callback(self.authorize(self.start_login(next_path), member_id))

    def csrf(self) -> str:
        with self.client.session_transaction() as sess:
            token = sess.get("_spark_csrf")
            if token is None:
                token = "csrf-" + "x" * 40
                sess["_spark_csrf"] = token
        return str(token)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def refresh_at_sandbox(sandbox: SandboxServer, refresh_token: str) -> requests.Response:
    """Use a refresh token at the sandbox's token endpoint directly, as a thief holding it would."""
    return requests.post(
        sandbox.url + "/openid/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
        timeout=10,
    )


def closed_port() -> int:
    """A loopback port nobody listens on (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sign_in_over_http(base: str, next_path: str) -> tuple[requests.Session, requests.Response]:
    """The real sign-in against an app served over HTTP (gunicorn): our /login, the sandbox's
    form, our /callback. Returns the browser and the callback's response."""
    browser = requests.Session()
    start = browser.get(f"{base}/spark/login?next={next_path}", allow_redirects=False, timeout=10)
    assert start.status_code == 302, start.text
    form = requests.post(
        start.headers["Location"],
        data={"member": MEMBER.id, "consent": "allow"},
        allow_redirects=False,
        timeout=10,
    )
    assert form.status_code == 302, form.text
    assert form.headers["Location"].startswith(base + "/spark/callback?")
    done = browser.get(form.headers["Location"], allow_redirects=False, timeout=10)
    assert done.status_code == 302, done.text
    assert done.headers["Location"] == next_path
    assert browser.cookies.get("session")
    return browser, done


def job_handle(app: Flask, sid: str) -> str:
    """A background-job handle for session ``sid``, issued in a request as an app's view would
    (``spark.job_handle()``)."""
    with app.test_request_context(headers={"Cookie": f"session={sid}"}):
        handle: str = app.extensions["spark"].job_handle()
    return handle


def storm_with_refresh_held(
    sandbox: SandboxServer, send: Callable[[int], T], count: int, *, expired_calls: int
) -> list[T]:
    """Run ``send(0..count-1)`` at once while the provider holds the one refresh until
    ``expired_calls`` API calls have met the expired token; their results, in order.

    The race window is held open, not guessed: nothing depends on how fast the machine is.
    """
    start = sandbox.counters()["api_calls"]
    with sandbox.hold("token") as gate, ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(send, i) for i in range(count)]
        met = sandbox.wait_for_count("api_calls", start + expired_calls, timeout=120)
        assert met, sandbox.counters()
        assert gate.wait_arrivals(1, timeout=120)  # the one refresh, held at the provider
        gate.release()
        return [future.result() for future in futures]


def live_grants(sandbox: SandboxServer) -> int:
    """Refresh tokens the sandbox would still honour: one per grant left live at the provider."""
    state = sandbox.state
    with state.lock:
        return sum(1 for r in state.refresh_tokens.values() if not (r.revoked or r.rotated))


def node_id(value: Any) -> str:
    """A parametrized test's id made of ``[A-Za-z0-9_.-]`` only: a node id with ``/``, spaces,
    quotes or non-ASCII characters cannot be passed back to pytest on a command line (as
    ``scripts/mutation`` does to run the tests of one mutant)."""
    text = value if isinstance(value, str) else repr(value)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text) or "empty"

"""Secrets stay secret: no token, client secret or key in anything the app shows or writes out.

The security model (``docs/security.rst``), "Tokens at rest and in flight": access, refresh
and id tokens live only server-side, *never in a cookie, a URL, a template, a log line or an
exception message*.

One test drives every flow there is (sign-in, API calls, proactive and 1020 refresh, provider
and API errors, a rejected id_token, timeouts, sign-out and revocation with the provider and
the API up or down, the CLI that retries revocations) while it captures:

- every log record of every logger at DEBUG (urllib3, werkzeug, authlib, flask_spark...) as a
  handler would write it, with its traceback, and its raw ``msg`` / ``args`` too;
- every response of the app: status, every header (``Location``, ``Set-Cookie``...) and body;
- every exception that reached Flask's error handling, and those the test itself caught from
  ``spark_api``: ``str``, ``repr`` and the formatted traceback;
- every flask-spark signal's arguments, the CLI's output, and ``repr`` of the stored records.

Then no access token, refresh token, id_token, PKCE verifier, client secret, Flask secret key
or Fernet key may appear in any of it. The tokens are the real ones: every token the app got
from the provider (the OIDC client is wrapped) and every token the sandbox issued.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from flask import Flask, got_request_exception
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

import flask_spark
from flask_spark import SparkAPIError, SparkAuth
from flask_spark.sandbox import MEMBERS, SandboxServer
from flask_spark.testing.redis_server import RedisServer, free_port

from .conftest import FERNET_KEY, app_config, make_app
from .helpers import FlowClient, job_handle

BOB = MEMBERS[1]
_sandbox_thread = threading.local()
SIGNALS = ("logged_in", "logged_out", "login_failed", "token_refreshed", "tokens_revoked")


class Capture(logging.Handler):
    """Everything the app lets out, as text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.texts: list[tuple[str, str]] = []
        self.log_lines: list[str] = []

    def add(self, source: str, text: str) -> None:
        self.texts.append((source, text))

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(_sandbox_thread, "active", False):
            return  # the provider's own logs (the sandbox runs in this process): not the app's
        line = self.format(record)
        self.log_lines.append(line)
        self.add(f"log {record.name}", line)
        self.add(f"log {record.name} (raw)", f"{record.msg!r} {record.args!r}")

    def response(self, path: str, response: TestResponse) -> None:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        body = response.get_data(as_text=True)
        self.add(f"response {path}", f"{response.status}\n{headers}\n\n{body}")

    def exception(self, where: str, exc: BaseException) -> None:
        text = "".join(traceback.format_exception(exc))
        self.add(f"exception {where}", f"{exc!s}\n{exc!r}\n{text}")


class TaggedSandbox(SandboxServer):
    """The sandbox, marking its request threads so that its own log records can be told apart."""

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        _sandbox_thread.active = True  # a thread per request: the mark dies with it
        return super()._wsgi(environ, start_response)


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[TaggedSandbox]:
    server = TaggedSandbox()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    names = ["", "urllib3", "urllib3.connectionpool", "werkzeug", "flask_spark", "authlib"]
    names += ["requests", "redis", "tests"]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


class Secrets:
    """The secrets to look for: collected from the app's OIDC client and the sandbox."""

    def __init__(self) -> None:
        self.received: set[str] = set()
        self.verifiers: set[str] = set()

    def watch(self, app: Flask) -> None:
        """Record every token response and PKCE verifier of ``app``."""
        state = app.extensions["spark.state"]
        oidc = state.oidc
        for name in ("exchange_code", "refresh"):
            original = getattr(oidc, name)

            def wrapped(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                response = _original(*args, **kwargs)
                for key in ("access_token", "refresh_token", "id_token"):
                    if isinstance(response.get(key), str):
                        self.received.add(response[key])
                return response

            setattr(oidc, name, wrapped)
        save = state.transactions.save

        def save_txn(txn: Any) -> None:
            self.verifiers.add(txn.code_verifier)
            save(txn)

        state.transactions.save = save_txn

    def issued(self, sandbox: SandboxServer) -> set[str]:
        with sandbox.state.lock:
            return set(sandbox.state.access_tokens) | set(sandbox.state.refresh_tokens)


class RecordingClient(FlaskClient):
    """The test client, copying every response into the capture."""

    capture: Capture

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        path = args[0] if args and isinstance(args[0], str) else str(kwargs.get("path", ""))
        self.capture.response(path, response)
        return response


def instrumented(
    config: dict[str, Any], capture: Capture, secrets: Secrets, **options: Any
) -> Flask:
    """The test app with its responses, handled exceptions and signals captured."""
    app = make_app(config, **options)
    app.test_client_class = type("Client", (RecordingClient,), {"capture": capture})
    for handlers in app.error_handler_spec[None].values():
        for cls, handler in list(handlers.items()):

            def recorded(exc: Exception, _handler: Any = handler) -> Any:
                capture.exception("handled by Flask", exc)
                return _handler(exc)

            handlers[cls] = recorded
    got_request_exception.connect(
        lambda sender, exception, **kw: capture.exception("unhandled", exception), app, weak=False
    )
    for name in SIGNALS:
        getattr(flask_spark, name).connect(
            lambda sender, _name=name, **kw: capture.add(f"signal {_name}", repr(kw)),
            app,
            weak=False,
        )
    secrets.watch(app)
    return app


def csrf_of(flow: FlowClient) -> str:
    return flow.csrf()


def test_no_secret_leaks_from_any_flow(
    sandbox: TaggedSandbox,
    redis_server: RedisServer,
    key_prefix: str,
    capture: Capture,
) -> None:
    secrets = Secrets()
    config = {**app_config(sandbox, redis_server, key_prefix), "SPARK_HTTP_TIMEOUT": 10.0}
    app = instrumented(config, capture, secrets)
    ext: SparkAuth = app.extensions["spark"]

    # 1. Sign-in, API calls, the session record.
    alice = FlowClient(app, sandbox)
    assert alice.login("/dashboard").status_code == 302
    assert alice.get("/dashboard").status_code == 200
    assert alice.get("/listings", headers={"Accept": "application/json"}).status_code == 200
    sid = alice.cookie()
    assert sid
    stored = app.extensions["spark.state"].tokens.load(sid)
    capture.add("repr of the stored record", f"{stored!r} {stored!s}")

    # 2. Refresh: reactive (401 + 1020) and proactive (token about to expire).
    sandbox.expire_tokens()
    assert alice.get("/dashboard").status_code == 200
    sandbox.configure(access_token_lifetime=30)  # within the refresh skew (120 s)
    sandbox.expire_tokens()
    assert alice.get("/dashboard").status_code == 200
    assert alice.get("/dashboard").status_code == 200
    assert sandbox.counters()["refreshes"] >= 3
    sandbox.configure(access_token_lifetime=86400)
    sandbox.expire_tokens()
    assert alice.get("/dashboard").status_code == 200

    # 3. API errors, in a request and from a background-style client.
    for fault in (
        {"force_error_next": 1, "force_error": {"status": 400, "code": 1053, "message": "Bad"}},
        {"force_error_next": 1, "force_error": {"status": 403, "code": 1500}},
        {"force_error_next": 9, "force_error": {"status": 503, "code": 1510}},
        {"non_json_next": 9},
    ):
        sandbox.faults(**fault)
        assert alice.get("/dashboard").status_code >= 400
        sandbox.faults(force_error_next=0, non_json_next=0)
    with sandbox.hold("api"):  # an API that never answers: the call times out
        assert alice.get("/dashboard").status_code == 504
    with app.app_context():
        client = ext.api_for_job(job_handle(app, sid), app)
        # More than one: the request held above may reach the sandbox late and take one.
        sandbox.faults(force_error_next=9, force_error={"status": 401, "code": 1000})
        with pytest.raises(SparkAPIError) as caught:
            client.get("my/account")
        sandbox.faults(force_error_next=0)
        capture.exception("spark_api", caught.value)
        capture.add("repr of the API client", repr(client) + repr(client.tokens))
        with pytest.raises(SparkAPIError) as caught:
            client.get("https://elsewhere.example/v1/my/account")  # never sends the token off-site
        capture.exception("spark_api", caught.value)

    # 4. Refresh against a failing provider (the refresh token is sent, then refused or lost).
    sandbox.expire_tokens()
    sandbox.faults(token_endpoint_status=503)
    assert alice.get("/dashboard").status_code == 502
    sandbox.faults(token_endpoint_status=None)
    assert alice.get("/dashboard").status_code == 200

    # 5. Sign-in errors: the provider's error, a 5xx at the token endpoint, a forged id_token.
    bob = FlowClient(app, sandbox)
    denied = bob.authorize(bob.start_login("/dashboard"), consent="deny")
    assert bob.callback(denied).status_code == 400
    callback = bob.authorize(bob.start_login("/dashboard"))
    sandbox.faults(token_endpoint_status=500)
    assert bob.callback(callback).status_code == 502
    sandbox.faults(token_endpoint_status=None, id_token_fault="bad-sig")
    assert bob.login("/dashboard").status_code == 400  # the code was exchanged: tokens received
    sandbox.faults(id_token_fault="refresh-sub-changed")
    assert bob.login("/dashboard", member_id=BOB.id).status_code == 302
    sandbox.expire_tokens(BOB.id)
    assert bob.get("/dashboard").status_code == 302  # the refreshed id_token names another user
    sandbox.faults(id_token_fault=None)

    # 6. Sign-out (the access token is deleted at DELETE /v1/oauth2/token/<token>) and revoke.
    assert alice.post("/spark/logout", data={"spark_csrf_token": csrf_of(alice)}).status_code in (
        200,
        302,
    )
    carol = FlowClient(app, sandbox)
    assert carol.login("/dashboard").status_code == 302
    assert carol.post("/spark/revoke", data={"spark_csrf_token": csrf_of(carol)}).status_code in (
        200,
        302,
    )
    assert sandbox.counters()["token_deletions"] >= 2

    # 7. Sign-out with the API and the provider's revocation endpoint unreachable; the failed
    # revocation is queued and retried by the CLI.
    dead = f"http://127.0.0.1:{free_port()}"
    broken = instrumented(
        {**config, "SPARK_API_BASE_URL": dead + "/v1/"},
        capture,
        secrets,
        revocation_endpoint=dead + "/openid/revoke",
    )
    dave = FlowClient(broken, sandbox)
    assert dave.login("/called").status_code == 302
    assert dave.get("/dashboard").status_code == 502
    page = dave.post("/spark/logout", data={"spark_csrf_token": csrf_of(dave)})
    assert page.status_code == 200
    assert "could not reach" in page.get_data(as_text=True)
    result = broken.test_cli_runner().invoke(args=["spark", "retry-revocations"])
    capture.add("cli retry-revocations", result.output)
    assert "pending" in result.output

    # What was collected is real and complete enough to mean something.
    issued = secrets.issued(sandbox)
    tokens = secrets.received | issued
    assert len(issued) >= 12
    assert secrets.received - issued, "id_tokens were received"
    assert len(secrets.verifiers) >= 6
    fixed = {
        "client secret": config["SPARK_CLIENT_SECRET"],
        "Flask SECRET_KEY": config["SECRET_KEY"],
        "Fernet key": FERNET_KEY,
    }
    assert len(capture.texts) > 100
    assert any(source.startswith("exception") for source, _ in capture.texts)
    deletions = [line for line in capture.log_lines if "DELETE /v1/oauth2/token/" in line]
    assert deletions, "urllib3 logged the deletion calls"
    assert all("oauth2/token/[redacted]" in line for line in deletions), deletions

    leaks = []
    for source, text in capture.texts:
        for token in tokens:
            if token in text:
                leaks.append(f"a token ({token[:6]}…) in {source}")
        for verifier in secrets.verifiers:
            if verifier in text:
                leaks.append(f"a PKCE verifier in {source}")
        for name, value in fixed.items():
            if value in text:
                leaks.append(f"the {name} in {source}")
    assert not leaks, "\n".join(sorted(set(leaks)))

"""Faults: Redis goes down and comes back; the provider and the API are slow or answer 5xx.

The security model (``docs/security.rst``), "Tokens at rest and in flight": *all calls to the
provider and the API use timeouts; provider or API down → a clear 502/503, the session kept*;
and issue 5, part 4:
Redis down → a clear 503 ("session store unavailable"), no traceback, automatic recovery with
every stored session still valid.

This module has its own redis-server (the outage test really shuts it down and starts a new
process on the same port and directory) and its own sandbox, which can wait until the requests
it is still serving (a held request outlives the client's timeout) have finished.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
import redis
from flask import Flask
from werkzeug.test import TestResponse

from flask_spark import login_failed
from flask_spark.sandbox import MEMBERS, SandboxServer
from flask_spark.testing.redis_server import RedisServer, free_port

from .conftest import make_app
from .helpers import MEMBER, FlowClient

#: SPARK_HTTP_TIMEOUT of these tests: ample for an answer on a loaded machine. A timeout test
#: holds the sandbox's answer (SandboxServer.hold) until the client has given up, so no
#: outcome depends on how fast anything runs.
TIMEOUT = 10.0
JSON = {"Accept": "application/json"}


class TrackedSandbox(SandboxServer):
    """The sandbox, counting the requests it is serving, so a test can wait for them to end."""

    def __init__(self) -> None:
        self._busy = 0
        self._idle = threading.Condition()
        super().__init__()

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self._idle:
            self._busy += 1
        try:
            return list(super()._wsgi(environ, start_response))
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float = 15.0) -> None:
        """Block until no request is being served (a held one, released, has finished)."""
        with self._idle:
            assert self._idle.wait_for(lambda: self._busy == 0, timeout), "sandbox still busy"


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """This module's own redis-server: the outage test shuts it down and restarts it."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[TrackedSandbox]:
    server = TrackedSandbox()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: TrackedSandbox) -> Iterator[TrackedSandbox]:
    """The module's sandbox, reset; after the test, no delayed request is left running."""
    sandbox_server.wait_idle()
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.wait_idle()


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()
    if redis_server.process is not None and redis_server.process.poll() is not None:
        redis_server.restart()  # a failed outage test must not leave the next tests without Redis


@pytest.fixture
def config(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "SPARK_HTTP_TIMEOUT": TIMEOUT}


@pytest.fixture
def options() -> dict[str, Any]:
    return {"retry_max": 2}


def token_keys(store: redis.Redis, prefix: str) -> list[bytes]:
    return list(store.scan_iter(match=prefix + "tok:*"))


def signed_in(flow: FlowClient) -> bool:
    return flow.get("/dashboard", headers=JSON).status_code == 200


def assert_clean_error(response: TestResponse, status: int, *words: str) -> None:
    """A clear page or JSON with ``status``: the message says what happened, no internals."""
    assert response.status_code == status, response.get_data(as_text=True)
    text = response.get_data(as_text=True)
    for word in words:
        assert word.lower() in text.lower(), text
    for leak in ("Traceback", 'File "', "redis.exceptions", "Error 111", "Connection refused"):
        assert leak not in text, text
    assert response.headers["Cache-Control"] == "no-store"


# -- Redis down while traffic flows ----------------------------------------------------------


def test_redis_outage_gives_503_and_recovers_with_every_session(
    app: Flask,
    sandbox: TrackedSandbox,
    redis_server: RedisServer,
    store: redis.Redis,
    key_prefix: str,
) -> None:
    alice, bob = FlowClient(app, sandbox), FlowClient(app, sandbox)
    assert alice.login("/dashboard").status_code == 302
    assert bob.login("/dashboard", member_id=MEMBERS[1].id).status_code == 302
    assert alice.get("/dashboard").json["sub"] == MEMBER.id  # type: ignore[index]
    assert bob.get("/dashboard").json["sub"] == MEMBERS[1].id  # type: ignore[index]
    # A visitor halfway through signing in: the provider already sent them back.
    visitor = FlowClient(app, sandbox)
    pending_callback = visitor.authorize(visitor.start_login("/listings"))
    cookies = {c: c.cookie() for c in (alice, bob, visitor)}
    stored = len(token_keys(store, key_prefix))
    assert stored == 2

    # The outage: Redis writes its data to dump.rdb and exits.
    store.shutdown(save=True)
    assert redis_server.process is not None
    redis_server.process.wait(120)
    with pytest.raises(redis.ConnectionError):
        store.ping()

    for user in (alice, bob):
        page = user.get("/dashboard")
        assert_clean_error(page, 503, "session store unavailable")
        assert "Set-Cookie" not in page.headers  # the browser keeps its session cookie
        answer = user.get("/dashboard", headers=JSON)
        assert answer.status_code == 503
        assert answer.json == {
            "error": "session_store_unavailable",
            "message": answer.json["message"],  # type: ignore[index]
        }
        assert "Set-Cookie" not in answer.headers
        # Signing out cannot be confirmed either: refused, nothing destroyed.
        logout = user.post("/spark/logout", data={"spark_csrf_token": "x"}, headers=JSON)
        assert logout.status_code == 503
    # The visitor's callback (their session cookie names a session Redis cannot read).
    assert_clean_error(visitor.callback(pending_callback), 503, "session store unavailable")
    # The app's own, unprotected page is the app's business: it answers, as an anonymous visit.
    home = visitor.get("/", headers=JSON)
    assert home.status_code == 200
    assert home.get_data(as_text=True) == "home anonymous"
    # A brand-new visitor: the sign-in route cannot store its transaction.
    newcomer = FlowClient(app, sandbox)
    assert_clean_error(newcomer.get("/spark/login?next=/dashboard"), 503, "unavailable")
    login_json = newcomer.get("/spark/login", headers=JSON)
    assert login_json.status_code == 503
    assert login_json.json["error"] == "session_store_unavailable"  # type: ignore[index]
    assert newcomer.cookie() is None
    assert sandbox.counters()["authorization_code_grants"] == 2  # no exchange during the outage

    # Recovery: a new redis-server on the same port and directory loads dump.rdb. The app is
    # not restarted: its Redis client reconnects on the next request.
    redis_server.restart()
    assert len(token_keys(store, key_prefix)) == stored

    assert alice.get("/dashboard").json["sub"] == MEMBER.id  # type: ignore[index]
    assert bob.get("/dashboard", headers=JSON).json["sub"] == MEMBERS[1].id  # type: ignore[index]
    assert alice.get("/listings").status_code == 200
    assert {c: c.cookie() for c in (alice, bob, visitor)} == cookies
    # The visitor's sign-in was not consumed by the outage: the same callback completes it.
    finished = visitor.callback(pending_callback)
    assert finished.status_code == 302
    assert finished.headers["Location"] == "/listings"
    assert signed_in(visitor)
    # And new sign-ins work again.
    assert newcomer.login("/dashboard").status_code == 302
    assert signed_in(newcomer)
    assert sandbox.counters()["api_calls"] >= 6


# -- the provider slow or down during sign-in ------------------------------------------------


def test_provider_unreachable_at_login_gives_502(
    config: dict[str, Any], sandbox: TrackedSandbox, store: redis.Redis, key_prefix: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    app = make_app({**config, "SPARK_ISSUER": dead}, retry_max=2)
    flow = FlowClient(app, sandbox)
    reasons: list[str] = []
    with login_failed.connected_to(lambda s, reason, message: reasons.append(reason)):
        page = flow.get("/spark/login?next=/dashboard")
        answer = flow.get("/spark/login", headers=JSON)
    assert_clean_error(page, 502, "Flexmls is unavailable", "could not be reached")
    assert answer.status_code == 502
    assert answer.json["error"] == "provider_unavailable"  # type: ignore[index]
    assert reasons == ["provider_unavailable", "provider_unavailable"]
    assert not list(store.scan_iter(match=key_prefix + "txn:*"))


def _callback_with(
    flow: FlowClient,
    sandbox: TrackedSandbox,
    store: redis.Redis,
    key_prefix: str,
    *,
    hold: str | None = None,
    **fault: Any,
) -> tuple[TestResponse, list[str]]:
    """Start a sign-in, arm ``fault`` (or hold ``hold``) at the provider, deliver the callback."""
    callback = flow.authorize(flow.start_login("/dashboard"))
    before = flow.cookie()
    sandbox.faults(**fault)
    reasons: list[str] = []
    with ExitStack() as stack:
        if hold:
            stack.enter_context(sandbox.hold(hold))
        with login_failed.connected_to(lambda s, reason, message: reasons.append(reason)):
            response = flow.callback(callback)
    # Nothing changed: same browser session, no token stored, not signed in.
    assert flow.cookie() == before
    assert not token_keys(store, key_prefix)
    assert flow.get("/dashboard").status_code == 302
    return response, reasons


def test_token_endpoint_slower_than_the_timeout_gives_504_and_no_session(
    flow: FlowClient, sandbox: TrackedSandbox, store: redis.Redis, key_prefix: str
) -> None:
    response, reasons = _callback_with(flow, sandbox, store, key_prefix, hold="token")
    assert_clean_error(response, 504, "Flexmls is unavailable", "did not answer in time")
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert reasons == ["provider_unavailable"]
    assert sandbox.counters()["token_calls"] == 1  # one attempt, then the clear error
    # A new sign-in once the provider answers again works.
    sandbox.wait_idle()
    assert flow.login("/dashboard").status_code == 302
    assert signed_in(flow)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_token_endpoint_5xx_at_callback_gives_502_and_no_session(
    flow: FlowClient, sandbox: TrackedSandbox, store: redis.Redis, key_prefix: str, status: int
) -> None:
    response, reasons = _callback_with(
        flow, sandbox, store, key_prefix, token_endpoint_status=status
    )
    assert_clean_error(response, 502, "Flexmls is unavailable", f"HTTP {status}")
    assert reasons == ["provider_unavailable"]
    assert sandbox.counters()["token_errors"] == 1


# -- the provider slow or down when a signed-in session needs a refresh ----------------------


def test_refresh_against_a_provider_answering_5xx_keeps_the_session(
    flow: FlowClient, sandbox: TrackedSandbox, store: redis.Redis, key_prefix: str
) -> None:
    assert flow.login("/dashboard").status_code == 302
    cookie = flow.cookie()
    sandbox.expire_tokens()  # the next API call answers 401 + 1020: refresh needed
    sandbox.faults(token_endpoint_status=503)
    assert_clean_error(flow.get("/dashboard"), 502, "Bad gateway", "HTTP 503")
    assert flow.get("/dashboard", headers=JSON).status_code == 502
    assert sandbox.counters()["refreshes"] == 0
    # The session is kept: same cookie, same token record; once the provider is back the
    # refresh happens and the call goes through.
    assert flow.cookie() == cookie
    assert len(token_keys(store, key_prefix)) == 1
    sandbox.faults(token_endpoint_status=None)
    assert flow.get("/dashboard").json["sub"] == MEMBER.id  # type: ignore[index]
    assert sandbox.counters()["refreshes"] == 1


def test_refresh_slower_than_the_timeout_gives_504_then_ends_cleanly(
    flow: FlowClient, sandbox: TrackedSandbox, store: redis.Redis, key_prefix: str
) -> None:
    """A refresh answer lost to the timeout: the provider rotated the refresh token anyway.

    The app keeps the session (it cannot know), answers 504; the next refresh presents the
    burnt refresh token, the provider refuses it (reuse), and the session ends cleanly.
    """
    assert flow.login("/dashboard").status_code == 302
    sandbox.expire_tokens()
    with sandbox.hold("token"):
        page = flow.get("/dashboard")
    assert_clean_error(page, 504, "Gateway timeout", "did not answer in time")
    assert len(token_keys(store, key_prefix)) == 1  # a timeout does not end the session
    sandbox.wait_idle()  # released: the provider finishes the refresh nobody receives
    assert sandbox.counters()["refreshes"] == 1
    answer = flow.get("/dashboard")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/spark/login")
    assert not token_keys(store, key_prefix)
    assert sandbox.counters()["refresh_reuse"] == 1


# -- the Spark API slow or down ----------------------------------------------------------------


def test_api_slower_than_the_timeout_gives_504_and_keeps_the_session(
    flow: FlowClient, sandbox: TrackedSandbox
) -> None:
    assert flow.login("/dashboard").status_code == 302
    cookie = flow.cookie()
    with sandbox.hold("api"):
        page = flow.get("/dashboard")
        answer = flow.get("/dashboard", headers=JSON)
    assert_clean_error(page, 504, "Gateway timeout", f"did not answer within {TIMEOUT:g}s")
    assert answer.status_code == 504
    assert "did not answer" in answer.json["message"]  # type: ignore[index]
    assert sandbox.counters()["api_calls"] == 2  # a timeout is not retried: one call each
    sandbox.wait_idle()
    assert flow.get("/dashboard").json["sub"] == MEMBER.id  # type: ignore[index]
    assert flow.cookie() == cookie


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        pytest.param(
            {"force_error": {"status": 503, "code": 1510, "message": "Down for maintenance"}},
            503,
            id="503",
        ),
        pytest.param(
            {"force_error": {"status": 500, "code": 9999, "message": "Internal error"}},
            502,
            id="500",
        ),
        pytest.param({"non_json": True}, 502, id="502-html"),
    ],
)
def test_api_5xx_gives_a_clear_error_after_bounded_retries_and_keeps_the_session(
    flow: FlowClient, sandbox: TrackedSandbox, fault: dict[str, Any], status: int
) -> None:
    assert flow.login("/dashboard").status_code == 302
    cookie = flow.cookie()
    base = sandbox.counters()["api_calls"]
    counter = "non_json_next" if fault.pop("non_json", False) else "force_error_next"
    sandbox.faults(**{counter: 50}, **fault)
    page = flow.get("/dashboard")
    assert page.status_code == status, page.get_data(as_text=True)
    assert_clean_error(page, status, ">Try again</a>")  # still signed in: not "Sign in"
    # retry_max = 2: the first call and two retries, then the error.
    assert sandbox.counters()["api_calls"] - base == 3
    sandbox.faults(**{counter: 0})
    assert flow.get("/dashboard").json["sub"] == MEMBER.id  # type: ignore[index]
    assert flow.cookie() == cookie


def test_api_5xx_shorter_than_the_retries_is_invisible(
    flow: FlowClient, sandbox: TrackedSandbox
) -> None:
    assert flow.login("/dashboard").status_code == 302
    base = sandbox.counters()["api_calls"]
    sandbox.faults(force_error_next=2, force_error={"status": 503, "code": 1510})
    assert flow.get("/dashboard").json["sub"] == MEMBER.id  # type: ignore[index]
    assert sandbox.counters()["api_calls"] - base == 3

"""Token refresh (reactive on 1020, proactive before expiry, rotation, invalid_grant) and retries.

Everything runs against the sandbox over real HTTP and a real Redis; the only stand-ins are a
virtual clock for the client's backoff and, in two unit tests of the lock/CAS protocol, a fake
provider at the TokenManager's edge.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
import requests
from flask import Flask
from urllib3.response import HTTPResponse

import flask_spark.core.retry as retry_module
from flask_spark import RateLimited, token_refreshed
from flask_spark.core.errors import ProviderError, SessionExpired, TokenExpired
from flask_spark.core.refresh import TokenManager
from flask_spark.core.tokens import TokenSet
from flask_spark.ext.state import SparkState
from flask_spark.sandbox import SandboxServer

from .conftest import make_app
from .helpers import (
    MEMBER,
    FlowClient,
    closed_port,
    job_handle,
    live_grants,
    refresh_at_sandbox,
)

JSON = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}


@pytest.fixture
def app(config: dict[str, Any]) -> Flask:
    app = make_app(config)

    @app.post("/contacts")
    def create_contact() -> dict[str, Any]:
        from flask_spark import spark_api

        page = spark_api.post("contacts", json={"FirstName": "Retry", "LastName": "Never"})
        return {"id": page.first()["Id"]}

    @app.get("/homes")
    def homes() -> dict[str, Any]:
        from flask_spark import spark_api

        page = spark_api.reso.get("Property", params={"$top": 3, "$select": "ListingKey"})
        return {"keys": [p["ListingKey"] for p in page]}

    @app.get("/contacts")
    def list_contacts() -> dict[str, Any]:
        from flask_spark import spark_api

        page = spark_api.get("contacts", params={"_filter": "LastName Eq 'Never'"})
        return {"ids": [r["Id"] for r in page]}

    return app


@pytest.fixture
def user(flow: FlowClient) -> FlowClient:
    assert flow.login("/").status_code == 302
    return flow


def state_of(app: Flask) -> SparkState:
    state: SparkState = app.extensions["spark.state"]
    return state


def tokens_of(app: Flask, user: FlowClient) -> TokenSet:
    sid = user.cookie()
    assert sid is not None
    tokens = state_of(app).tokens.load(sid)
    assert tokens is not None
    return tokens


class Delta:
    """Sandbox counters relative to when this was made."""

    def __init__(self, sandbox: SandboxServer) -> None:
        self.sandbox = sandbox
        self.start = sandbox.counters()

    def __getitem__(self, name: str) -> int:
        return self.sandbox.counters()[name] - self.start[name]


class Refreshes:
    """Records token_refreshed signals of one app."""

    def __init__(self, app: Flask) -> None:
        self.sids: list[str] = []
        token_refreshed.connect(self.receive, app)

    def receive(self, sender: Flask, sid: str) -> None:
        self.sids.append(sid)


@pytest.fixture
def refreshes(app: Flask) -> Any:
    recorder = Refreshes(app)
    yield recorder
    token_refreshed.disconnect(recorder.receive, app)


# -- reactive refresh (1020) -------------------------------------------------------------------


def test_1020_refreshes_once_and_retries_once(
    user: FlowClient, app: Flask, sandbox: SandboxServer, refreshes: Refreshes
) -> None:
    before = tokens_of(app, user)
    assert sandbox.expire_tokens(MEMBER.id) >= 1
    delta = Delta(sandbox)

    response = user.get("/dashboard")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["account"] == MEMBER.name
    assert delta["refreshes"] == 1
    assert delta["token_calls"] == 1
    assert delta["api_calls"] == 2  # refused with 1020, then the one retry
    assert delta["refresh_failures"] == delta["refresh_reuse"] == 0
    assert refreshes.sids == [user.cookie()]

    after = tokens_of(app, user)
    assert after.version == before.version + 1
    assert after.access_token != before.access_token

    # The refreshed token is used from now on: no more refreshes.
    assert user.get("/dashboard").status_code == 200
    assert delta["refreshes"] == 1
    assert delta["api_calls"] == 3
    assert len(refreshes.sids) == 1


def test_retry_after_refresh_happens_only_once(
    user: FlowClient, app: Flask, sandbox: SandboxServer
) -> None:
    # The provider hands out a token that is already dead: the retry gets 1020 again.
    def expire_again(sender: Flask, sid: str) -> None:
        sandbox.expire_tokens(MEMBER.id)

    sandbox.expire_tokens(MEMBER.id)
    delta = Delta(sandbox)
    with token_refreshed.connected_to(expire_again, app):
        response = user.get("/dashboard", headers=JSON)
    assert response.status_code == 401
    assert response.json["error"] == "1020"
    assert delta["refreshes"] == 1
    assert delta["api_calls"] == 2

    api = app.extensions["spark"].api_for_job(job_handle(app, user.cookie()), app)
    with token_refreshed.connected_to(expire_again, app):
        sandbox.expire_tokens(MEMBER.id)
        with pytest.raises(TokenExpired):
            api.get("my/account")


# -- proactive refresh -------------------------------------------------------------------------


@pytest.fixture
def short_lived(config: dict[str, Any], sandbox: SandboxServer) -> dict[str, Any]:
    """Tokens live 60 s, and the app refreshes when a token expires within 120 s."""
    sandbox.configure(access_token_lifetime=60)
    return config


def test_proactive_refresh_before_expiry(
    short_lived: dict[str, Any],
    user: FlowClient,
    app: Flask,
    sandbox: SandboxServer,
    refreshes: Refreshes,
) -> None:
    before = tokens_of(app, user)
    assert before.expires_at - time.time() <= 60
    sandbox.configure(access_token_lifetime=86400)  # the next token is a long-lived one
    delta = Delta(sandbox)

    assert user.get("/dashboard").status_code == 200
    assert delta["refreshes"] == 1
    assert delta["api_calls"] == 1  # refreshed before the call: the API never saw a stale token
    after = tokens_of(app, user)
    assert after.version == before.version + 1
    assert after.expires_at - time.time() > 86000
    assert len(refreshes.sids) == 1

    assert user.get("/dashboard").status_code == 200
    assert delta["refreshes"] == 1
    assert delta["api_calls"] == 2


def test_no_refresh_while_the_token_is_far_from_expiry(
    user: FlowClient, app: Flask, sandbox: SandboxServer
) -> None:
    delta = Delta(sandbox)
    for _ in range(3):
        assert user.get("/dashboard").status_code == 200
    assert delta["refreshes"] == 0
    assert delta["token_calls"] == 0
    assert tokens_of(app, user).version == 1


# -- rotation ----------------------------------------------------------------------------------


def test_new_refresh_token_replaces_the_old_one(
    user: FlowClient, app: Flask, sandbox: SandboxServer
) -> None:
    old = tokens_of(app, user)
    sandbox.expire_tokens(MEMBER.id)
    assert user.get("/dashboard").status_code == 200
    new = tokens_of(app, user)
    assert new.refresh_token
    assert new.refresh_token != old.refresh_token
    assert new.subject == old.subject == MEMBER.id  # the refreshed id_token named the same user

    # The old refresh token is spent: the sandbox refuses it (and detects the reuse).
    replay = refresh_at_sandbox(sandbox, old.refresh_token or "")
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert sandbox.counters()["refresh_reuse"] == 1


def test_lock_is_released_after_a_refresh(
    user: FlowClient, app: Flask, sandbox: SandboxServer, redis_client: redis.Redis
) -> None:
    sandbox.expire_tokens(MEMBER.id)
    assert user.get("/dashboard").status_code == 200
    store = state_of(app).tokens
    assert redis_client.exists(store.lock_key(user.cookie() or "")) == 0
    # The record is stored encrypted: no token in clear in Redis.
    blob = redis_client.hget(store.key(user.cookie() or ""), "d") or b""
    assert tokens_of(app, user).access_token.encode() not in blob


def test_access_token_revoked_at_flexmls_is_cured_by_one_refresh(
    user: FlowClient, app: Flask, sandbox: SandboxServer, refreshes: Refreshes
) -> None:
    before = tokens_of(app, user)
    assert sandbox.state.revoke_access_token(before.access_token)
    delta = Delta(sandbox)
    assert user.get("/dashboard").status_code == 200
    assert delta["refreshes"] == 1
    assert delta["api_calls"] == 2  # refused with 1000, then retried with the new token
    assert tokens_of(app, user).access_token != before.access_token


@pytest.mark.parametrize("header", [False, True], ids=["no-www-authenticate", "www-authenticate"])
@pytest.mark.parametrize("how", ["expired", "revoked"])
def test_reso_odata_401_refreshes_once_and_retries_once(
    user: FlowClient,
    app: Flask,
    sandbox: SandboxServer,
    refreshes: Refreshes,
    how: str,
    header: bool,
) -> None:
    """Production's RESO API refuses a stale token as ``401 {"error": {...}}`` (OData), with or
    without ``WWW-Authenticate``: exactly one refresh, exactly one retry, as for Spark's 1020."""
    before = tokens_of(app, user)
    sandbox.faults(reso_www_authenticate=header)
    if how == "expired":
        assert sandbox.expire_tokens(MEMBER.id) >= 1
    else:
        assert sandbox.state.revoke_access_token(before.access_token)
    delta = Delta(sandbox)

    response = user.get("/homes")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert len(response.json["keys"]) == 3
    assert delta["refreshes"] == 1
    assert delta["token_calls"] == 1
    assert delta["reso_calls"] == 2  # refused in OData form, then the one retry
    assert refreshes.sids == [user.cookie()]
    assert tokens_of(app, user).access_token != before.access_token

    assert user.get("/homes").status_code == 200
    assert delta["refreshes"] == 1
    assert delta["reso_calls"] == 3


def test_reso_401_after_the_refresh_is_not_retried_again(
    user: FlowClient, app: Flask, sandbox: SandboxServer
) -> None:
    """A token refused again right after its refresh ends in an error, not a loop."""
    sandbox.faults(force_error_next=2, force_error={"status": 401, "code": "1000"})
    delta = Delta(sandbox)
    response = user.get("/homes", headers=JSON)
    assert response.status_code == 401
    assert delta["refreshes"] == 1
    assert delta["reso_calls"] == 2


def test_whole_grant_revoked_at_flexmls_ends_the_session(
    user: FlowClient, app: Flask, sandbox: SandboxServer, redis_client: redis.Redis
) -> None:
    before = tokens_of(app, user)
    assert sandbox.state.revoke_refresh_token(before.refresh_token or "")  # revokes the family
    response = user.get("/dashboard")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/spark/login")
    assert not redis_client.exists(state_of(app).tokens.key(user.cookie() or before.sid))
    assert user.get("/dashboard").status_code == 302


def test_keys_unreachable_during_a_refresh_keep_the_new_tokens(
    user: FlowClient, app: Flask, sandbox: SandboxServer, config: dict[str, Any]
) -> None:
    """A worker that cannot fetch the JWKS must not lose the refresh token it just rotated."""
    fresh_worker = make_app(config, jwks_uri=f"http://127.0.0.1:{closed_port()}/jwks")
    browser = fresh_worker.test_client()
    browser.set_cookie("session", user.cookie() or "")
    sandbox.expire_tokens(MEMBER.id)
    # The refreshed id_token cannot be checked there: a clear 503, the tokens kept unused.
    assert browser.get("/dashboard").status_code == 503
    assert sandbox.counters()["refreshes"] == 1
    # A worker that can reach the keys checks the id_token and uses the new tokens.
    assert user.get("/dashboard").status_code == 200
    assert sandbox.counters()["refreshes"] == 1
    # The rotated refresh token was stored: the next refresh (anywhere) is not a reuse.
    sandbox.expire_tokens(MEMBER.id)
    assert user.get("/dashboard").status_code == 200
    assert sandbox.counters()["refreshes"] == 2
    assert sandbox.counters()["refresh_reuse"] == 0


# -- the end of a sign-in: invalid_grant ------------------------------------------------------


@pytest.mark.parametrize("accept", ["html", "json"])
def test_invalid_grant_ends_the_session(
    user: FlowClient,
    app: Flask,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    refreshes: Refreshes,
    accept: str,
) -> None:
    sid = user.cookie() or ""
    store = state_of(app).tokens
    session_key = state_of(app).session_interface.store_key(sid)
    assert redis_client.exists(store.key(sid))
    assert redis_client.exists(session_key)

    # Someone else rotates the app's refresh token; then the access token expires.
    stolen = refresh_at_sandbox(sandbox, tokens_of(app, user).refresh_token or "")
    assert stolen.status_code == 200
    sandbox.expire_tokens(MEMBER.id)
    delta = Delta(sandbox)

    response = user.get("/dashboard", headers=HTML if accept == "html" else JSON)
    if accept == "html":
        assert response.status_code == 302
        assert response.headers["Location"] == "/spark/login?next=/dashboard"
    else:
        assert response.status_code == 401
        assert response.json["error"] == "login_required"
        assert response.json["login_url"].startswith("/spark/login")
    assert delta["refresh_failures"] == 1
    assert delta["refresh_reuse"] == 1
    assert refreshes.sids == []

    # Ended server-side: no token record, no session record, no lock left behind.
    assert redis_client.exists(store.key(sid)) == 0
    assert redis_client.exists(session_key) == 0
    assert redis_client.exists(store.lock_key(sid)) == 0
    # ... and for the browser: the next visit is sent to sign in, without calling the API.
    again = user.get("/dashboard")
    assert again.status_code == 302
    assert again.headers["Location"].startswith("/spark/login")
    assert delta["api_calls"] == 1


def test_proactive_refresh_refused_ends_the_session(
    short_lived: dict[str, Any],
    user: FlowClient,
    app: Flask,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
) -> None:
    sid = user.cookie() or ""
    revoked = requests.post(
        sandbox.url + "/openid/revoke",
        data={
            "token": tokens_of(app, user).refresh_token,
            "token_type_hint": "refresh_token",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
        timeout=10,
    )
    assert revoked.status_code == 200
    delta = Delta(sandbox)
    response = user.get("/dashboard", headers=JSON)
    assert response.status_code == 401
    assert response.json["error"] == "login_required"
    assert delta["refresh_failures"] == 1
    assert delta["api_calls"] == 0
    assert redis_client.exists(state_of(app).tokens.key(sid)) == 0


def test_provider_down_during_refresh_keeps_the_session(
    user: FlowClient, app: Flask, sandbox: SandboxServer, redis_client: redis.Redis
) -> None:
    sandbox.expire_tokens(MEMBER.id)
    sandbox.faults(token_endpoint_status=503)
    response = user.get("/dashboard", headers=JSON)
    assert response.status_code in (502, 503), response.get_data(as_text=True)
    assert redis_client.exists(state_of(app).tokens.key(user.cookie() or "")) == 1

    sandbox.faults(token_endpoint_status=None)  # the provider is back
    delta = Delta(sandbox)
    assert user.get("/dashboard").status_code == 200
    assert delta["refreshes"] == 1


# -- the lock / re-read / CAS protocol (unit: real Redis, fake provider) -----------------------


class FakeProvider:
    """The provider at the TokenManager's edge; ``before_answer`` simulates another worker."""

    def __init__(self, answer: dict[str, Any] | Exception, before_answer: Any = None) -> None:
        self.answer = answer
        self.before_answer = before_answer
        self.calls = 0
        self.revoked: list[str] = []

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        self.calls += 1
        if self.before_answer is not None:
            self.before_answer()
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def validate_id_token(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    def endpoint(self, name: str) -> str:
        return "https://provider.invalid/revoke"

    def revoke(self, token: str, token_type_hint: str) -> bool:
        self.revoked.append(token)
        return True


def manager_with(app: Flask, provider: FakeProvider, events: list[str]) -> TokenManager:
    return TokenManager(
        state_of(app).tokens,
        provider,  # type: ignore[arg-type]
        skew=0,
        lock_timeout=5,
        lock_wait=5,
        on_refresh=lambda sid, tokens: events.append("refreshed"),
        on_session_end=lambda sid, subject: events.append("ended"),
    )


def seeded(app: Flask, sid: str) -> TokenSet:
    tokens = TokenSet(
        access_token="a1", refresh_token="r1", subject=None, expires_at=time.time() - 1, sid=sid
    )
    state_of(app).tokens.create(tokens, ttl=60)
    return tokens


def refreshed_record(sid: str, access: str, refresh: str) -> TokenSet:
    """The record another worker wrote after refreshing ``seeded``'s (version 2)."""
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        subject=None,
        expires_at=time.time() + 600,
        sid=sid,
        version=2,
    )


def test_invalid_grant_rereads_once_before_ending(app: Flask) -> None:
    store = state_of(app).tokens
    stale = seeded(app, "sid-reread")
    newer = refreshed_record("sid-reread", "a2", "r2")
    events: list[str] = []
    provider = FakeProvider(
        ProviderError("refused", status=400, error="invalid_grant"),
        before_answer=lambda: store.replace(newer, 1),  # another worker won meanwhile
    )
    got = manager_with(app, provider, events).refresh("sid-reread", stale=stale)
    assert got.access_token == "a2"
    assert events == []
    assert store.load("sid-reread") == newer


def test_stale_write_is_refused_and_the_newer_record_wins(app: Flask) -> None:
    store = state_of(app).tokens
    stale = seeded(app, "sid-cas")
    newer = refreshed_record("sid-cas", "a9", "r9")
    events: list[str] = []
    provider = FakeProvider(
        {"access_token": "a-late", "refresh_token": "r-late", "expires_in": 600},
        before_answer=lambda: store.replace(newer, 1),
    )
    got = manager_with(app, provider, events).refresh("sid-cas", stale=stale)
    assert got.access_token == "a9"
    assert events == []
    assert store.load("sid-cas") == newer
    # the grant it could not store is given back: its refresh token and its access token
    assert provider.revoked == ["r-late", "a-late"]


def test_refresh_skipped_when_someone_else_already_refreshed(app: Flask) -> None:
    store = state_of(app).tokens
    stale = seeded(app, "sid-skip")
    fresh = refreshed_record("sid-skip", "a3", "r3")
    assert store.replace(fresh, 1)
    events: list[str] = []
    provider = FakeProvider({"access_token": "never"})
    assert manager_with(app, provider, events).refresh("sid-skip", stale=stale) == fresh
    assert provider.calls == 0
    assert events == []


def test_invalid_grant_without_newer_record_ends_the_session(app: Flask) -> None:
    store = state_of(app).tokens
    stale = seeded(app, "sid-end")
    events: list[str] = []
    provider = FakeProvider(ProviderError("refused", status=400, error="invalid_grant"))
    with pytest.raises(SessionExpired):
        manager_with(app, provider, events).refresh("sid-end", stale=stale)
    assert events == ["ended"]
    assert store.load("sid-end") is None


def test_provider_trouble_on_refresh_is_a_502_and_keeps_the_session(app: Flask) -> None:
    store = state_of(app).tokens
    stale = seeded(app, "sid-trouble")
    events: list[str] = []
    provider = FakeProvider(ProviderError("busy", status=400, error="temporarily_unavailable"))
    with pytest.raises(ProviderError) as caught:
        manager_with(app, provider, events).refresh("sid-trouble", stale=stale)
    assert caught.value.status == 502
    assert events == []
    assert store.load("sid-trouble") == stale


def test_threads_of_one_process_refresh_once(
    user: FlowClient, app: Flask, sandbox: SandboxServer, refreshes: Refreshes
) -> None:
    sid = user.cookie() or ""
    spark = app.extensions["spark"]
    sandbox.expire_tokens(MEMBER.id)
    delta = Delta(sandbox)
    barrier = threading.Barrier(12)
    results: list[Any] = []

    def job() -> None:
        api = spark.api_for_job(job_handle(app, sid), app)
        barrier.wait(timeout=120)
        try:
            results.append(api.get("my/account").first()["Id"])
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=job) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [MEMBER.id] * 12
    assert delta["refreshes"] == 1
    assert delta["refresh_reuse"] == 0
    assert refreshes.sids == [sid]


# -- rate limiting and retries ------------------------------------------------------------------


class VirtualClock:
    """Replaces the retry policy's ``time`` module: sleeps are recorded and advance a clock."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    clock = VirtualClock()
    monkeypatch.setattr(retry_module, "time", clock)
    return clock


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limited_get_is_retried_until_success(
    user: FlowClient, sandbox: SandboxServer, clock: VirtualClock, status: int
) -> None:
    sandbox.faults(rate_limit_next=2, rate_limit_status=status, retry_after="0")
    delta = Delta(sandbox)
    response = user.get("/listings")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert delta["rate_limited"] == 2
    assert delta["api_calls"] == 3
    assert clock.sleeps == [0.0, 0.0]  # Retry-After: 0 honoured


def test_retry_after_is_honoured(
    user: FlowClient, sandbox: SandboxServer, clock: VirtualClock
) -> None:
    sandbox.faults(rate_limit_next=2, retry_after="7")
    assert user.get("/listings").status_code == 200
    assert clock.sleeps == [7.0, 7.0]


def test_rate_limited_past_the_count_bound_is_a_typed_error(
    user: FlowClient, app: Flask, sandbox: SandboxServer, clock: VirtualClock
) -> None:
    sandbox.faults(rate_limit_next=50, retry_after="0")
    delta = Delta(sandbox)
    response = user.get("/listings", headers=JSON)
    assert response.status_code == 429
    assert response.json["error"] == "1550"
    assert delta["api_calls"] == 1 + state_of(app).config.retry_max == 4
    assert len(clock.sleeps) == 3

    api = app.extensions["spark"].api_for_job(job_handle(app, user.cookie()), app)
    with pytest.raises(RateLimited) as caught:
        api.get("listings")
    assert caught.value.code == 1550
    assert caught.value.retry_after == 0.0


def test_rate_limited_past_the_time_bound(
    config: dict[str, Any],
    user: FlowClient,
    app: Flask,
    sandbox: SandboxServer,
    clock: VirtualClock,
) -> None:
    assert state_of(app).config.retry_max_time == 30.0
    sandbox.faults(rate_limit_next=50, retry_after="20")
    delta = Delta(sandbox)
    response = user.get("/listings", headers=JSON)
    assert response.status_code == 429
    assert clock.sleeps == [20.0]  # a second 20 s wait would pass the 30 s budget
    assert delta["api_calls"] == 2


def test_5xx_get_retried_with_exponential_backoff_and_jitter(
    config: dict[str, Any], sandbox: SandboxServer, clock: VirtualClock
) -> None:
    flow = FlowClient(make_app(config, retry_backoff=1.0, retry_max_time=1000.0), sandbox)
    assert flow.login("/").status_code == 302
    sandbox.faults(force_error_next=3, force_error={"status": 503, "code": 1510, "envelope": "D"})
    delta = Delta(sandbox)
    assert flow.get("/listings").status_code == 200
    assert delta["api_calls"] == 4
    assert len(clock.sleeps) == 3
    for attempt, slept in enumerate(clock.sleeps):
        assert 0 <= slept <= 1.0 * 2**attempt


def _waits(retry_after: str | None = None, retries: int = 4) -> list[float]:
    """The waits urllib3's pool would take before each retry of a GET answered 503."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    policy = retry_module.api_retry(max_retries=5, backoff=0.5, max_time=60)
    waits = []
    for _ in range(retries):
        answer = HTTPResponse(body=b"", status=503, headers=headers)
        policy = policy.increment("GET", "/v1/listings", response=answer)
        waits.append(policy.next_wait)
    return waits


def test_backoff_doubles_with_jitter() -> None:
    chains = [_waits() for _ in range(500)]
    assert all(chain[0] == 0.0 for chain in chains)  # urllib3 retries the first time at once
    for n in range(1, 4):
        samples = [chain[n] for chain in chains]
        base = 0.5 * 2 ** (n - 1)
        assert all(base <= s <= base + 0.5 <= 0.5 * 2**n for s in samples)
        assert max(samples) - min(samples) > 0.25  # jittered, not constant
    assert _waits("3.5") == [3.5] * 4  # Retry-After wins, fractional seconds too
    assert _waits("-1", retries=1) == [0.0]
    assert _waits("Wed, 21 Oct 2015 07:28:00 GMT", retries=1) == [0.0]  # a date in the past
    first, second = _waits("soon", retries=2)  # unreadable: the backoff, not an error
    assert first == 0.0
    assert 0.5 <= second <= 1.0


def test_writes_are_never_retried(
    user: FlowClient, sandbox: SandboxServer, clock: VirtualClock
) -> None:
    existing = user.get("/contacts").json["ids"]
    sandbox.faults(rate_limit_next=1, retry_after="0")
    delta = Delta(sandbox)
    response = user.post("/contacts", headers=JSON)
    assert response.status_code == 429
    assert delta["api_calls"] == 1
    assert clock.sleeps == []
    assert user.get("/contacts").json["ids"] == existing  # nothing was created

    sandbox.faults(force_error_next=1, force_error={"status": 503, "code": 1510, "envelope": "D"})
    response = user.post("/contacts", headers=JSON)
    assert response.status_code == 503
    assert delta["api_calls"] == 3
    assert clock.sleeps == []


def test_tokens_a_refresh_could_not_store_are_revoked(
    app: Flask, user: FlowClient, sandbox: SandboxServer
) -> None:
    """The session ends (signed out elsewhere) while its refresh is at the provider: the new
    tokens cannot be stored, so they are revoked, not left live at the provider."""
    state = state_of(app)
    sid = user.cookie()
    assert sid is not None
    stale = tokens_of(app, user)
    real_refresh = state.oidc.refresh

    def refresh_then_sign_out_elsewhere(refresh_token: str) -> dict[str, Any]:
        answer = real_refresh(refresh_token)
        state.registry.destroy(sid, MEMBER.id)  # the sign-out's write wins the race
        return answer

    state.oidc.refresh = refresh_then_sign_out_elsewhere  # type: ignore[method-assign]
    try:
        with pytest.raises(SessionExpired):
            state.manager.refresh(sid, stale=stale)
    finally:
        del state.oidc.refresh
    assert live_grants(sandbox) == 0

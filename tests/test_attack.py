"""Findings of the independent attack on the running app (issue 12, point 9), one test each.

Real Redis, the sandbox over real HTTP; Hypothesis generates the hostile inputs.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flask_spark import logged_in
from flask_spark.core.errors import SessionExpired
from flask_spark.core.job_handles import MAX_HANDLES
from flask_spark.sandbox import SandboxServer

from .conftest import make_app
from .helpers import FlowClient, closed_port, job_handle

JSON = {"Accept": "application/json"}
#: Fixtures are built once per test function and shared by its examples, on purpose.
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: What a cross-site form or a script can put in a token field: any text, non-ASCII included.
OFFERED = st.one_of(
    st.text(min_size=1, max_size=60),
    # no lone surrogates: no browser can send one (the test client cannot encode it)
    st.text(st.characters(min_codepoint=0x80, exclude_categories=["Cs"]), min_size=1, max_size=60),
)


def is_signed_in(flow: FlowClient) -> bool:
    return flow.get("/dashboard", headers=JSON).status_code == 200


# -- 1. a non-ASCII token offered to a constant-time comparison was a 500 ----------------------


@FUZZ
@given(token=OFFERED, route=st.sampled_from(["/spark/logout", "/spark/revoke"]))
@example(token="é", route="/spark/logout")
@example(token="é" * 43, route="/spark/revoke")
def test_any_csrf_token_offered_to_sign_out_is_a_clean_400(
    signed_in: FlowClient, token: str, route: str
) -> None:
    """A cross-site form posting a non-ASCII "token" made ``secrets.compare_digest`` raise
    (a 500 with a traceback, the debugger in debug mode). It must be refused like any wrong
    token, in the form and in the header, and leave the user signed in."""
    expected = signed_in.csrf()  # the session holds a token: the comparison really runs
    assert token != expected
    sends: list[dict[str, Any]] = [{"data": {"spark_csrf_token": token}}]
    if all(0x20 <= ord(c) <= 0xFF and c != "\x7f" for c in token):  # what a header can hold
        sends.append({"headers": {"X-CSRFToken": token}})
    for sent in sends:
        answer = signed_in.post(route, **sent)
        assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
        assert "csrf" in answer.get_data(as_text=True).lower()
    assert is_signed_in(signed_in)


@pytest.fixture
def single_logout_app(generic_sandbox: SandboxServer, redis_server: Any, key_prefix: str) -> Flask:
    from .conftest import app_config

    return make_app(
        {**app_config(generic_sandbox, redis_server, key_prefix), "SPARK_SINGLE_LOGOUT": True}
    )


@FUZZ
@given(state=OFFERED)
@example(state="é")
def test_any_state_on_the_single_logout_return_is_a_clean_answer(
    single_logout_app: Flask, generic_sandbox: SandboxServer, state: str
) -> None:
    """After a real sign-out to the provider, the session holds the logout ``state``; a return
    to ``/spark/logged-out`` (or the callback) with a non-ASCII state was a 500."""
    flow = FlowClient(single_logout_app, generic_sandbox)
    assert flow.login("/dashboard").status_code == 302
    out = flow.post("/spark/logout", data={"spark_csrf_token": flow.csrf()})
    assert out.status_code == 302
    assert out.headers["Location"].startswith(generic_sandbox.url)
    back = flow.get("/spark/logged-out", query_string={"state": state})
    assert back.status_code == 400, back.get_data(as_text=True)[:300]
    assert "logout_state_mismatch" in flow.get(
        "/spark/logged-out", query_string={"state": state}, headers=JSON
    ).get_data(as_text=True)
    flow2 = FlowClient(single_logout_app, generic_sandbox)
    assert flow2.login("/dashboard").status_code == 302
    flow2.post("/spark/logout", data={"spark_csrf_token": flow2.csrf()})
    callback = flow2.get("/spark/callback", query_string={"state": state})
    assert 400 <= callback.status_code < 500, callback.get_data(as_text=True)[:300]
    assert not is_signed_in(flow2)


# -- 2. callback answers not made by the view lacked Referrer-Policy and no-store ----------------


def assert_callback_headers(response: Any) -> None:
    assert response.headers.get("Referrer-Policy") == "no-referrer", dict(response.headers)
    assert response.headers.get("Cache-Control") == "no-store", dict(response.headers)


def test_callback_while_redis_is_down_sends_no_referrer(
    config: dict[str, Any], sandbox: SandboxServer, redis_server: Any
) -> None:
    """Redis down when the provider sends the browser back: the 503 page is shown at the
    callback URL, which holds the code and state. Its links and resources must not carry
    that URL in a Referer, and it must not be cached."""
    flow = FlowClient(make_app(config), sandbox)
    callback = flow.authorize(flow.start_login("/dashboard"))
    assert flow.get("/dashboard", headers=JSON).status_code == 401  # anonymous: a session key
    down = make_app({**config, "SPARK_REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"})
    client = down.test_client()
    client.set_cookie("session", "s" * 43)
    client.set_cookie("spark_signin", flow.binding() or "", path="/spark")
    path = callback.split("127.0.0.1", 1)[-1].split("/", 1)[-1]
    answer = client.get("/" + path)
    assert answer.status_code == 503, answer.get_data(as_text=True)[:300]
    assert_callback_headers(answer)


def test_callback_failing_unexpectedly_sends_no_referrer_and_keeps_no_session(
    config: dict[str, Any], sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    """A bug after the code exchange (here: the app's ``logged_in`` receiver raises) gives
    the app's 500 page at the callback URL: no Referer, no caching, and no half sign-in: the
    grant is given back and neither a session nor a token record is left behind."""
    app = make_app({**config, "TESTING": False, "PROPAGATE_EXCEPTIONS": False})

    def broken(sender: Flask, **extra: Any) -> None:
        raise RuntimeError("a receiver's bug")

    flow = FlowClient(app, sandbox)
    with logged_in.connected_to(broken, app):
        answer = flow.login("/dashboard")
    assert answer.status_code == 500
    assert_callback_headers(answer)
    assert "code=" not in answer.get_data(as_text=True)
    assert "Set-Cookie" not in answer.headers or "session=;" in answer.headers["Set-Cookie"]
    # Looked at before any other request (which would end a session with revoked tokens):
    assert not list(redis_client.scan_iter(match=key_prefix + "tok:*"))
    assert not list(redis_client.scan_iter(match=key_prefix + "user:*"))
    assert not list(redis_client.scan_iter(match=key_prefix + "session:*"))
    assert sandbox.counters()["revocations"] >= 1
    assert not is_signed_in(flow)


# -- 3. a job handle outlived the session's idle timeout --------------------------------------


def test_a_job_handle_ends_when_the_session_idles_out(
    signed_in: FlowClient, redis_client: redis.Redis, key_prefix: str
) -> None:
    """The idle timeout is the session key's Redis TTL; when it fires the browser is signed
    out, but the token record lives to the absolute lifetime, and a job handle kept calling
    the API for up to 12 hours for a session the user could no longer see nor sign out of."""
    app = signed_in.app
    spark = app.extensions["spark"]
    sid = signed_in.cookie()
    assert sid is not None
    handle = job_handle(app, sid)
    job = spark.api_for_job(handle, app)
    assert job.get("my/account").first()
    assert redis_client.delete(f"{key_prefix}session:{sid}") == 1  # what the TTL does
    assert not is_signed_in(signed_in)
    with pytest.raises(SessionExpired):
        job.get("my/account")
    with pytest.raises(SessionExpired):
        spark.api_for_job(handle, app).get("my/account")
    assert not list(redis_client.scan_iter(match=key_prefix + "job*"))


# -- 4. a provider-signed sub wrote forged lines into the app's log -----------------------------

#: Subjects outside Core §2 (at most 255 ASCII characters) that a log or a key would misread.
HOSTILE_SUBS = st.one_of(
    st.builds(
        lambda a, c, b: a + c + b,
        st.text("0123456789", min_size=1, max_size=8),
        st.sampled_from(["\n", "\r", "\x1b[2J", "\x00", "\t", "\u2028", "\x85", "é", "\ufeff"]),
        st.text(max_size=20),
    ),
    st.text(min_size=1, max_size=40).filter(lambda s: not (s.isascii() and s.isprintable())),
)


@FUZZ
@given(sub=HOSTILE_SUBS)
@example(sub="20190716183201873925000000\n2026-12-02 INFO flask_spark: Signed out admin")
@example(sub="§")  # also a character of the refusal's message ("Core §2")
def test_a_sub_with_control_or_non_ascii_characters_is_refused(
    app: Flask,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
    sub: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``log.info("Signed in %s", sub)``: a provider (or anyone holding its key) signing a
    ``sub`` with a newline forged whole log lines, and an escape sequence rewrote a terminal.
    Core §2 allows at most 255 ASCII characters: anything else is refused, nothing stored."""
    # A marker in front: a drawn sub like "§" must not be found in the refusal's own words.
    sub = "Zq9" + sub
    sandbox.faults(id_token_claims={"sub": sub})
    with caplog.at_level("INFO", logger="flask_spark"):
        answer = FlowClient(app, sandbox).login("/called")
    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    assert not list(redis_client.scan_iter(match=key_prefix + "tok:*"))
    assert not list(redis_client.scan_iter(match=key_prefix + "session:*"))
    for record in caplog.records:
        assert sub not in record.getMessage()
    caplog.clear()


# -- 5. request headers wrote control characters into the app's log -----------------------------

CONTROLS = st.text(
    st.characters(
        codec="latin-1", categories=["Cc"], exclude_characters="\r\n\t"
    ),  # what a header value can carry to the app (a raw client sends them; werkzeug accepts)
    min_size=1,
    max_size=6,
)


@FUZZ
@given(controls=CONTROLS, header=st.sampled_from(["Origin", "Referer"]))
@example(controls="\x1b[2J\x1b[31m", header="Origin")
def test_no_log_line_carries_control_characters_from_a_request(
    signed_in: FlowClient, controls: str, header: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An outsider signed in as themselves sends ``/spark/store-logout`` an ``Origin`` (or
    ``Referer``) with an ANSI escape in its host: it was logged as the caller's origin, as
    is, and rewrote the terminal of whoever tails the log. Whatever a request or a provider
    puts in a flask-spark log line, the line holds no control character."""
    with caplog.at_level("INFO", logger="flask_spark"):
        answer = signed_in.get(
            "/spark/store-logout", headers={header: f"https://x{controls}y.example/"}
        )
    assert answer.status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("flask_spark")]
    assert lines, "the store logout says what it did"
    for line in lines:
        assert line.isprintable(), repr(line)
    caplog.clear()


def test_a_session_keeps_a_bounded_number_of_job_handles(
    signed_in: FlowClient, redis_client: redis.Redis, key_prefix: str
) -> None:
    """A view that issues a handle per request must not grow Redis without bound: past
    MAX_HANDLES the oldest handles end (and stop working), the newest keep working."""
    app = signed_in.app
    spark = app.extensions["spark"]
    sid = signed_in.cookie()
    assert sid is not None
    handles = [job_handle(app, sid) for _ in range(MAX_HANDLES + 10)]
    assert len(list(redis_client.scan_iter(match=key_prefix + "job:*"))) == MAX_HANDLES
    assert redis_client.zcard(f"{key_prefix}jobs:{{{sid}}}") == MAX_HANDLES
    for ended in handles[:10]:
        with pytest.raises(SessionExpired):
            spark.api_for_job(ended, app).get("my/account")
    assert spark.api_for_job(handles[10], app).get("my/account").first()
    assert spark.api_for_job(handles[-1], app).get("my/account").first()

"""Hostile input, property-based (Hypothesis): never a 500, never a session from a forged input.

Four doors an attacker can knock on: the callback's query string, the ``next`` parameter, the
session cookie, and (from a hostile network or a broken gateway) the API's error bodies.
Each test runs its examples against one app (built once per test function), a real Redis and
the sandbox over real HTTP.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, quote_from_bytes, urlencode, urljoin, urlsplit

import pytest
import redis
import requests
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from flask_spark.core.api import error_from_response, parse_reso, parse_spark
from flask_spark.core.errors import SparkAPIError, SparkError
from flask_spark.ext.signin import safe_next
from flask_spark.sandbox import SandboxServer

from .conftest import make_app
from .helpers import FlowClient
from .strategies import HEADER_CHARS, wire_text

DEFAULT_NEXT = "/welcome"
JSON = {"Accept": "application/json"}
SITE = "http://localhost"

#: Fixtures are built once per test function and shared by its examples, on purpose.
FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def app(config: dict[str, Any]) -> Flask:
    return make_app({**config, "SPARK_LOGIN_DEFAULT_NEXT": DEFAULT_NEXT})


def no_tokens_stored(client: redis.Redis, prefix: str) -> bool:
    return not any(client.scan_iter(match=prefix + "tok:*"))


def assert_not_signed_in(client: Any) -> None:
    assert client.get("/dashboard", headers=JSON).status_code == 401
    assert client.get("/").get_data(as_text=True) == "home anonymous"


def assert_clean_4xx(response: Any) -> None:
    text = response.get_data(as_text=True)
    assert 400 <= response.status_code < 500, (response.status_code, text[:500])
    assert "Traceback" not in text
    assert "<script" not in text.lower()  # whatever was sent, it is escaped in the page


# -- the callback's query string -------------------------------------------------------------

HOSTILE_TEXT = st.one_of(
    wire_text(max_size=80),
    st.sampled_from(
        [
            "",
            "access_denied",
            "<script>alert(1)</script>",
            "x" * 5000,
            "\x00",
            "é",
            "%00",
            "a&state=b",
            "' OR 1=1 --",
            "{{7*7}}",
            "\r\nSet-Cookie: session=evil",
        ]
    ),
)
PARAM_NAMES = st.one_of(
    st.sampled_from(["state", "code", "error", "error_description", "iss", "session_state"]),
    wire_text(max_size=10),
)


@FUZZ
@given(data=st.data())
def test_callback_query_strings_never_500_never_a_session(
    app: Flask, sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str, data: Any
) -> None:
    client = app.test_client()
    real_state = ""
    if data.draw(st.booleans(), label="started a sign-in"):
        started = client.get("/spark/login")
        assert started.status_code == 302
        real_state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
    values = st.one_of(HOSTILE_TEXT, st.sampled_from([real_state, sandbox.issuer, "x" * 43]))
    pairs = data.draw(st.lists(st.tuples(PARAM_NAMES, values), max_size=8), label="params")
    if data.draw(st.booleans(), label="raw bytes"):
        raw = data.draw(st.lists(st.tuples(st.binary(max_size=30), st.binary(max_size=60))))
        query = "&".join(f"{quote_from_bytes(k)}={quote_from_bytes(v)}" for k, v in raw)
        query = "&".join(filter(None, [urlencode(pairs), query]))
    else:
        query = urlencode(pairs)
    response = client.get("/spark/callback?" + query)
    assert_clean_4xx(response)
    assert response.headers["Cache-Control"] == "no-store"
    assert no_tokens_stored(redis_client, key_prefix)
    assert_not_signed_in(client)


@FUZZ
@given(code=HOSTILE_TEXT, extra=st.lists(st.tuples(PARAM_NAMES, HOSTILE_TEXT), max_size=3))
def test_forged_code_with_a_genuine_state_gives_no_session(
    app: Flask,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
    code: str,
    extra: list[tuple[str, str]],
) -> None:
    """Even the browser that started the sign-in gets nothing for a code it made up."""
    flow = FlowClient(app, sandbox)
    state = parse_qs(urlsplit(flow.start_login("/dashboard")).query)["state"][0]
    params = [("state", state), ("code", code), ("iss", sandbox.issuer), *extra]
    assert_clean_4xx(flow.client.get("/spark/callback?" + urlencode(params)))
    assert no_tokens_stored(redis_client, key_prefix)
    assert_not_signed_in(flow.client)


# -- next ------------------------------------------------------------------------------------

_TAB_NEWLINE = re.compile("[\t\n\r]")


def lands_on_this_site(location: str) -> bool:
    """Where a browser goes with this Location (WHATWG URL parsing): this site, or not?"""
    if location != location.strip("".join(map(chr, range(0x21)))):
        return False
    cleaned = _TAB_NEWLINE.sub("", location).replace("\\", "/")
    if not cleaned.startswith("/") or cleaned.startswith("//"):
        return False
    target = urlsplit(urljoin(SITE + "/spark/callback", cleaned))
    return (target.scheme, target.netloc) == ("http", "localhost")


NEXT_PREFIXES = st.sampled_from(
    [
        "",
        "/",
        "//",
        "/\\",
        "\\",
        "\\\\",
        "/\t/",
        "/\n/",
        " /",
        "\x00/",
        "http:",
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "javascript:",
        "/%2F%2Fevil.example",
        "/.",
        "\u3002",
        "/dashboard?",
        "/@evil.example",
    ]
)
NEXT_VALUES = st.builds(lambda a, b: a + b, NEXT_PREFIXES, wire_text(max_size=40))


@settings(max_examples=400, deadline=None)
@given(value=NEXT_VALUES)
@example(value="//evil.example/")
@example(value="/\\evil.example")
@example(value="/\t/evil.example")
@example(value="https://evil.example/")
@example(value="/" + "a" * 5000)
def test_safe_next_only_keeps_same_site_paths(value: str) -> None:
    kept = safe_next(value)
    if kept is not None:
        assert kept == value
        assert lands_on_this_site(kept), kept
        assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in kept)


@FUZZ
@given(value=NEXT_VALUES)
@example(value="//evil.example")
@example(value="/\\evil.example")
@example(value="/\t/evil.example")
@example(value="/dashboard?tab=1")
def test_next_after_login_is_a_same_site_path_or_the_default(
    app: Flask, sandbox: SandboxServer, value: str
) -> None:
    flow = FlowClient(app, sandbox)
    started = flow.client.get("/spark/login", query_string={"next": value})
    assert started.status_code == 302, started.get_data(as_text=True)[:300]
    response = flow.callback(flow.authorize(started.headers["Location"]))
    assert response.status_code == 302
    location = response.headers["Location"]
    assert lands_on_this_site(location), location
    assert not any(ord(c) < 0x21 or ord(c) == 0x7F for c in location)
    if safe_next(value) is None:
        assert location == DEFAULT_NEXT
    if value == "/dashboard?tab=1":
        assert location == value


# -- cookies ---------------------------------------------------------------------------------

COOKIE_TEXT = wire_text(HEADER_CHARS, max_size=200)


@pytest.fixture
def victim_sid(app: Flask, sandbox: SandboxServer) -> str:
    """The session id of a signed-in user, for forged look-alikes."""
    flow = FlowClient(app, sandbox)
    assert flow.login("/dashboard").status_code == 302
    sid = flow.cookie()
    assert sid
    assert flow.get("/dashboard").status_code == 200
    return sid


@FUZZ
@given(data=st.data())
@example(data=None)
def test_forged_session_cookies_never_500_never_signed_in(
    app: Flask, victim_sid: str, data: Any
) -> None:
    if data is None:  # the near misses an attacker would try first
        cookies = [
            victim_sid[:-1],
            victim_sid + "x",
            victim_sid.upper(),
            " " + victim_sid,
            f'"{victim_sid}"',
            "../" + victim_sid,
        ]
    else:
        mutated = data.draw(
            st.one_of(
                COOKIE_TEXT,
                st.from_regex(r"[A-Za-z0-9_-]{43}", fullmatch=True),
                st.builds(lambda a, b: a + victim_sid + b, COOKIE_TEXT, COOKIE_TEXT).filter(
                    lambda v: v != victim_sid
                ),
            ),
            label="cookie",
        )
        cookies = [mutated]
    for value in cookies:
        client = app.test_client()
        headers = {"Cookie": f"session={value}"}
        dashboard = client.get("/dashboard", headers=headers)
        assert dashboard.status_code == 302, dashboard.get_data(as_text=True)[:300]
        answer = client.get("/dashboard", headers={**headers, **JSON})
        assert answer.status_code == 401
        home = client.get("/", headers=headers)
        assert home.status_code == 200
        assert home.get_data(as_text=True) == "home anonymous"
        logout = client.post(
            "/spark/logout", headers=headers, data={"spark_csrf_token": value[:50]}
        )
        assert_clean_4xx(logout)


# -- API error bodies ------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | wire_text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(wire_text(max_size=8), inner),
    max_leaves=12,
)
CODES = st.one_of(
    JSON_VALUES,
    st.sampled_from([1020, "1020", 1550, "1550", 2001, "²", "١٢", "9" * 5000, "", "-1"]),
)
ENVELOPE_KEYS = ["Code", "Message", "Errors", "SparkQLErrors", "Success", "Results", "Pagination"]
ENVELOPES = st.fixed_dictionaries(
    {},
    optional={
        "Code": CODES,
        "Message": JSON_VALUES,
        "Errors": JSON_VALUES,
        "SparkQLErrors": JSON_VALUES,
        "Success": st.sampled_from([True, False, None, "false", 0]),
        "Results": JSON_VALUES,
        "Pagination": JSON_VALUES,
    },
)
BODIES = st.one_of(
    st.builds(lambda d: {"D": d}, ENVELOPES),
    st.builds(
        lambda e: {"error": e},
        st.fixed_dictionaries(
            {}, optional={"code": CODES, "message": JSON_VALUES, "details": JSON_VALUES}
        ),
    ),
    st.builds(
        lambda e, d: {"error": e, "error_description": d}, wire_text(max_size=20), JSON_VALUES
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "value": JSON_VALUES,
            "@odata.count": CODES,
            "@odata.nextLink": JSON_VALUES,
        },
    ),
    JSON_VALUES,
)
RAW_BODIES = st.one_of(
    BODIES.map(lambda b: json.dumps(b).encode()),
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b"<html>502 Bad Gateway</html>",
            b"[" * 100_000 + b"]" * 100_000,  # deeper than the JSON decoder's recursion limit
            b'{"D": ' * 50_000 + b"1" + b"}" * 50_000,
            b"\xff\xfe{\x00}\x00",
            b"NaN",
            b'{"D": {"Code": 1e999}}',
        ]
    ),
)
RETRY_AFTER = st.one_of(
    st.none(),
    wire_text(max_size=40),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "Mon, 01 Jan 9999 00:00:00 -2359", "0"]),
)


def in_memory_response(status: int, body: bytes, retry_after: str | None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers["Content-Type"] = "application/json"
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    response.url = "http://127.0.0.1/v1/listings"
    return response


@settings(max_examples=300, deadline=None)
@given(
    status=st.integers(min_value=100, max_value=599) | st.sampled_from([0, 999]),
    body=RAW_BODIES,
    retry_after=RETRY_AFTER,
)
def test_api_bodies_always_give_a_spark_error(
    status: int, body: bytes, retry_after: str | None
) -> None:
    response = in_memory_response(status, body, retry_after)
    error = error_from_response(response, "Spark API")
    assert isinstance(error, SparkAPIError)
    assert isinstance(error.status, int)
    assert isinstance(error.errors, list)
    assert isinstance(error.sparkql_errors, list)
    assert str(error) is not None  # rendering must not fail either
    assert repr(error)
    for parse in (parse_spark, parse_reso):
        outcome = parsed_or_error(parse, in_memory_response(status, body, retry_after))
        if isinstance(outcome, SparkError):
            assert isinstance(outcome, SparkAPIError)
            assert isinstance(outcome.errors, list)
            assert isinstance(outcome.sparkql_errors, list)
            assert str(outcome) is not None
            assert repr(outcome)
        else:
            assert isinstance(outcome.raw, dict)
            assert len(list(outcome)) == len(outcome)


def parsed_or_error(parse: Any, response: requests.Response) -> Any:
    """What ``parse`` returns, or the SparkError it raises (any other exception propagates)."""
    try:
        return parse(response)
    except SparkError as exc:
        return exc

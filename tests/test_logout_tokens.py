"""Back-channel logout tokens to the letter of Back-Channel Logout 1.0 (issue 12, point 2).

``jti`` is required and remembered for the token's whole accepted life, ``iat`` and ``exp``
are bounded (an absurd ``exp`` is clamped, never handed to Redis), a token never ends a sign-in
that began after it was issued, and no signed claim value, however hostile, gives a 5xx.
Tokens are validly signed by the sandbox with generated claims.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import redis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_spark.core.oidc import LOGOUT_TOKEN_MAX_AGE
from flask_spark.sandbox import SandboxServer
from flask_spark.testing import login_test_client

from .helpers import MEMBER
from .strategies import wire_text

HOSTILE = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def post(app: Flask, token: str) -> Any:
    return app.test_client().post("/spark/backchannel-logout", data={"logout_token": token})


def signed_in(app: Flask, sandbox: SandboxServer) -> Any:
    client = app.test_client()
    login_test_client(client, MEMBER.id, sandbox=sandbox)
    return client


def still_signed_in(client: Any) -> bool:
    return bool(client.get("/called").status_code == 200)


def jti_keys(store: redis.Redis, prefix: str) -> list[bytes]:
    return list(store.scan_iter(match=prefix + "jti:*"))


numbers = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.sampled_from([10**30, -(10**30), 10**400, 2**64, 0, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
)
values = st.one_of(
    st.none(),  # the claim is removed
    numbers,
    st.booleans(),
    wire_text(max_size=300),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(wire_text(max_size=5), st.integers(), max_size=2),
)


def near_now(offset: st.SearchStrategy[int]) -> st.SearchStrategy[int]:
    return offset.map(lambda seconds: int(time.time()) + seconds)


@HOSTILE
@given(
    iat=st.one_of(values, near_now(st.integers(-1000, 1000))),
    exp=st.one_of(values, near_now(st.integers(-1000, 10**9))),
    jti=st.one_of(values, wire_text(min_size=1, max_size=300)),
    sub=st.one_of(st.just(MEMBER.id), values),
)
def test_no_signed_claim_value_gives_a_5xx(
    app: Flask,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
    iat: Any,
    exp: Any,
    jti: Any,
    sub: Any,
) -> None:
    if isinstance(jti, str):
        jti = f"{jti}-{uuid.uuid4()}"  # each example its own token
    client = signed_in(app, sandbox)
    token = sandbox.logout_token(claims={"iat": iat, "exp": exp, "jti": jti, "sub": sub})
    answer = post(app, token)
    assert answer.status_code in (200, 400), answer.get_data(as_text=True)
    assert answer.headers["Cache-Control"] == "no-store"
    if answer.status_code == 400:
        assert still_signed_in(client)
    else:  # accepted: its jti is remembered, within bounds, and it cannot be used again
        ttls = [redis_client.ttl(k) for k in jti_keys(redis_client, key_prefix)]
        assert ttls
        assert all(0 < t <= LOGOUT_TOKEN_MAX_AGE + 2 * 60 + 2 for t in ttls), ttls
        assert post(app, token).status_code == 400
    for key in jti_keys(redis_client, key_prefix):
        redis_client.delete(key)


def test_a_logout_token_without_jti_is_refused(app: Flask, sandbox: SandboxServer) -> None:
    client = signed_in(app, sandbox)
    answer = post(app, sandbox.logout_token(sub=MEMBER.id, claims={"jti": None}))
    assert answer.status_code == 400
    assert still_signed_in(client)


@pytest.mark.parametrize("exp", [None, 10**12, 10**400])
def test_replay_is_refused_for_the_tokens_whole_accepted_life(
    app: Flask, sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str, exp: Any
) -> None:
    """With no ``exp`` or an absurd one, the jti is kept as long as ``iat`` keeps it valid."""
    token = sandbox.logout_token(sub=MEMBER.id, claims={"exp": exp})
    assert post(app, token).status_code == 200
    (key,) = jti_keys(redis_client, key_prefix)
    assert LOGOUT_TOKEN_MAX_AGE <= redis_client.ttl(key) <= LOGOUT_TOKEN_MAX_AGE + 2 * 60 + 2
    later = signed_in(app, sandbox)
    assert post(app, token).status_code == 400
    assert still_signed_in(later)


@pytest.mark.parametrize("claims", [{"iat": -1}, {"iat": 10**12}, {"exp": 10**400, "iat": 0}])
def test_iat_is_bounded(app: Flask, sandbox: SandboxServer, claims: dict[str, Any]) -> None:
    client = signed_in(app, sandbox)
    assert post(app, sandbox.logout_token(sub=MEMBER.id, claims=claims)).status_code == 400
    assert still_signed_in(client)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(age=st.integers(min_value=1, max_value=int(LOGOUT_TOKEN_MAX_AGE) - 5), by_sid=st.booleans())
def test_a_token_never_ends_a_sign_in_made_after_it_was_issued(
    app: Flask, sandbox: SandboxServer, age: int, by_sid: bool
) -> None:
    before = signed_in(app, sandbox)  # signed in before the token: ended
    after = signed_in(app, sandbox)  # signed in after it (iat is ``age`` seconds ago): kept
    with before.session_transaction() as data:
        first_psid = data["_spark"]["psid"]
    with after.session_transaction() as data:
        second_psid = data["_spark"]["psid"]
    issued = int(time.time()) - age
    registry = app.extensions["spark.state"].registry
    # ``before`` signed in earlier than the token's iat; ``after`` keeps its real sign-in time.
    registry.register(session_cookie(before), MEMBER.id, first_psid, ttl=600, login_at=issued - 1)
    claims = {"iat": issued, "jti": str(uuid.uuid4())}
    if by_sid:
        for psid in (first_psid, second_psid):
            token = sandbox.logout_token(sid=psid, claims={**claims, "jti": str(uuid.uuid4())})
            assert post(app, token).status_code == 200
    else:
        assert post(app, sandbox.logout_token(sub=MEMBER.id, claims=claims)).status_code == 200
    assert not still_signed_in(before)
    assert still_signed_in(after)


def session_cookie(client: Any) -> str:
    found = client.get_cookie("session")
    assert found is not None
    return str(found.value)

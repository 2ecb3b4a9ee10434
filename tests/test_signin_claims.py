"""A sign-in is all or nothing, whatever claims the provider signs (issue 12, point 3).

The sandbox signs generated claim values and shapes into real id_tokens; the whole browser flow
runs. Either the user is signed in and every kept claim reads back unchanged, or the sign-in is
refused with a clear 400: nothing of it left in Redis, and the grant revoked at the provider.
"""

from __future__ import annotations

import math
from typing import Any

import redis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_spark import spark_user
from flask_spark.ext.signin import MAX_BYTES, MAX_DEPTH
from flask_spark.sandbox import SandboxServer

from .helpers import FlowClient
from .strategies import wire_text

#: What a sign-in writes (the transaction and a used logout token's marker are not in it).
SIGN_IN_KEYS = ("session:", "tok:", "user:", "psid:")

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 3, max_value=2**64 + 3),
    st.integers(min_value=-(2**64), max_value=-(2**63) + 3),
    st.sampled_from([10**30, 10**300, -(10**40)]),
    st.floats(allow_nan=True, allow_infinity=True),
    wire_text(max_size=30),
    wire_text(max_size=5).map(lambda t: t * 9000),  # large payloads
)
shapes = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(wire_text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"d": value}
    return value


claim_sets = st.one_of(
    st.dictionaries(st.sampled_from(["extra", "groups", "address", "x-tenant"]), shapes),
    st.integers(min_value=MAX_DEPTH - 2, max_value=MAX_DEPTH * 40).map(
        lambda d: {"deep": nested(d)}
    ),
)


def same(a: Any, b: Any) -> bool:
    """Equal, counting NaN as equal to itself."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) is type(b)


def sign_in_keys(store: redis.Redis, prefix: str) -> list[str]:
    found = [k.decode() for k in store.scan_iter(match=prefix + "*")]
    return [k for k in found if k[len(prefix) :].startswith(SIGN_IN_KEYS)]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(extra=claim_sets)
def test_a_sign_in_is_all_or_nothing(
    app: Flask,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
    extra: dict[str, Any],
) -> None:
    if "claims" not in app.view_functions:

        @app.get("/claims")
        def claims() -> dict[str, Any]:
            return {"claims": dict(spark_user.claims)}

    for key in redis_client.scan_iter(match=key_prefix + "*"):  # a clean slate per example
        redis_client.delete(key)
    extra = {name: value for name, value in extra.items() if value is not None}  # None: removed
    sandbox.faults(id_token_claims=extra)
    revoked = sandbox.counters()["revocations"]
    flow = FlowClient(app, sandbox)
    answer = flow.login("/called")
    assert answer.status_code in (302, 400), answer.get_data(as_text=True)[:500]
    if answer.status_code == 400:  # refused: as claims_unstorable, or as too large a token
        assert flow.get("/called").status_code == 302
        assert sign_in_keys(redis_client, key_prefix) == []
        assert sandbox.counters()["revocations"] > revoked  # the grant is given back
        return
    assert flow.get("/called").status_code == 200
    with app.test_request_context():
        state = app.extensions["spark.state"]
        kept = state.session_interface.serializer.encode(extra)
    assert len(kept) <= MAX_BYTES
    with flow.client.session_transaction() as data:
        stored = data["_spark"]["claims"]
    for name, value in extra.items():
        assert same(stored[name], value), name
    # End this sign-in so that the next example starts from nothing.
    assert flow.post("/spark/logout", data={"spark_csrf_token": flow.csrf()}).status_code == 302
    assert sign_in_keys(redis_client, key_prefix) == []


def test_claims_wider_than_64_bits_or_deeper_than_the_limit_are_refused(
    app: Flask, sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    for extra in ({"big": 2**64}, {"deep": nested(MAX_DEPTH + 1)}, {"nan": math.nan}):
        sandbox.faults(id_token_claims=extra)
        answer = FlowClient(app, sandbox).login("/called")
        assert answer.status_code == 400, extra
        assert "cannot store" in answer.get_data(as_text=True)
        assert sign_in_keys(redis_client, key_prefix) == []

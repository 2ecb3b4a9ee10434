"""The provider's keys and metadata over time: rotation without a new kid, outages, replays."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from flask import Flask
from joserfc import jwt

from flask_spark.sandbox import SandboxServer
from flask_spark.sandbox.tokens import BACKCHANNEL_LOGOUT_EVENT

from .conftest import make_app
from .helpers import MEMBER, FlowClient, closed_port


def test_rotated_key_is_picked_up_even_when_the_token_names_no_kid(
    flow: FlowClient, sandbox: SandboxServer
) -> None:
    """Spark publishes one key, kid "default": a rotation may keep (or omit) the kid."""
    assert flow.login("/dashboard").status_code == 302  # JWKS cached with the first key
    sandbox.rotate_keys(drop_old=True)
    sandbox.faults(id_token_fault="kid-absent")  # the token cannot say which key is new
    second = FlowClient(flow.app, sandbox)
    assert second.login("/dashboard").status_code == 302
    assert second.get("/dashboard").status_code == 200


def test_discovery_outage_after_start_keeps_sign_in_working(
    app: Flask, flow: FlowClient, sandbox: SandboxServer
) -> None:
    assert flow.login("/dashboard").status_code == 302  # discovery cached
    oidc = app.extensions["spark.state"].oidc
    down = f"http://127.0.0.1:{closed_port()}/.well-known/openid-configuration"
    oidc.config = dataclasses.replace(oidc.config, discovery_url=down)
    oidc._metadata_at = float("-inf")  # the cache has aged out
    second = FlowClient(app, sandbox)
    assert second.login("/dashboard").status_code == 302
    assert second.get("/dashboard").status_code == 200


def _logout_token(sandbox: SandboxServer, **claims: Any) -> str:
    key = sandbox.state.keys.current
    body = {
        "iss": sandbox.issuer,
        "aud": sandbox.client_id,
        "jti": f"j{time.time_ns()}",
        "sub": MEMBER.id,
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        **claims,
    }
    return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "logout+jwt"}, body, key)


@pytest.mark.parametrize(("age", "status"), [(10, 200), (3600, 400)], ids=["fresh", "an-hour-old"])
def test_logout_token_without_exp_is_bounded_by_its_age(
    config: dict[str, Any], sandbox: SandboxServer, age: int, status: int
) -> None:
    app = make_app(config)
    flow = FlowClient(app, sandbox)
    flow.login("/dashboard")
    # Signed in before the token was issued (a token never ends a later sign-in).
    sid = flow.cookie() or ""
    signed_in_at = time.time() - age - 5
    app.extensions["spark.state"].registry.register(
        sid, MEMBER.id, None, 600, login_at=signed_in_at
    )
    token = _logout_token(sandbox, iat=int(time.time()) - age)
    answer = app.test_client().post("/spark/backchannel-logout", data={"logout_token": token})
    assert answer.status_code == status
    assert (flow.get("/dashboard").status_code == 302) is (status == 200)


def test_forged_logout_tokens_cannot_block_a_key_rotation(
    flow: FlowClient, sandbox: SandboxServer
) -> None:
    """A forged token may use up the JWKS refetch interval; the provider's own id_tokens must
    still be verified with its newly rotated key (or every refresh would end a session)."""
    assert flow.login("/dashboard").status_code == 302
    forged = sandbox.logout_token(sub=MEMBER.id, fault="bad-sig")
    answer = flow.client.post("/spark/backchannel-logout", data={"logout_token": forged})
    assert answer.status_code == 400  # ...and the refetch interval is now used up
    sandbox.rotate_keys(drop_old=True)
    sandbox.expire_tokens(MEMBER.id)
    assert flow.get("/dashboard").status_code == 200  # the refreshed id_token has the new kid
    assert sandbox.counters()["refreshes"] == 1


def test_a_refreshed_id_token_for_someone_else_is_never_stored(
    app: Flask, flow: FlowClient, sandbox: SandboxServer
) -> None:
    from flask_spark import token_refreshed

    assert flow.login("/dashboard").status_code == 302
    announced: list[str] = []
    sandbox.faults(id_token_fault="refresh-sub-changed")
    sandbox.expire_tokens(MEMBER.id)
    with token_refreshed.connected_to(lambda sender, sid: announced.append(sid), app):
        assert flow.get("/dashboard").status_code == 302  # signed out
    assert announced == []  # the wrong user's tokens were never stored nor announced
    assert sandbox.counters()["revocations"] == 1  # and the grant they came with is revoked

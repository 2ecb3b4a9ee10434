"""The relying party against the OpenID Foundation's RP certification cases, over real HTTP.

Each case is named after its OpenID Foundation test (``rp-...``) where there is one; the extra
cases cover the attacks of the security model (``docs/security.rst``) that certification does
not (algorithm confusion, keys offered by the token, ``azp``, expired tokens, a refreshed
id_token about someone else). The sandbox is the misbehaving provider: ``sandbox.faults(...)``
arms a forgery for the next tokens.

A rejected sign-in must leave nothing behind: a clear 4xx page (502 for an untrustworthy
discovery document, see ``test_discovery_issuer_not_matching_config``), no traceback, no session,
no token record, no Spark API call, and a ``login_failed`` signal naming the reason.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from flask import Flask
from werkzeug.test import TestResponse

from flask_spark import login_failed
from flask_spark.core.oidc import OIDCClient
from flask_spark.sandbox import MEMBERS, SandboxServer

from .conftest import make_app
from .helpers import MEMBER, FlowClient, query

# -- helpers ---------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One sign-in attempt: the final answer, the authorize URL and the signals it raised."""

    response: TestResponse
    authorize_url: str | None
    failures: list[tuple[str, str]] = field(default_factory=list)


def attempt_login(flow: FlowClient, next_path: str = "/dashboard") -> Attempt:
    """Drive /login → the sandbox's form → /callback, stopping early if the app refuses."""
    failures: list[tuple[str, str]] = []

    def receiver(sender: Flask, reason: str, message: str) -> None:
        failures.append((reason, message))

    with login_failed.connected_to(receiver):
        response = flow.get(f"/spark/login?next={next_path}")
        location = response.headers.get("Location", "")
        if response.status_code != 302 or not location.startswith(flow.sandbox.url):
            return Attempt(response, None, failures)
        callback = flow.callback(flow.authorize(location))
    return Attempt(callback, location, failures)


def token_keys(client: redis.Redis, prefix: str) -> list[bytes]:
    return list(client.scan_iter(match=prefix + "tok:*"))


def assert_rejected(
    attempt: Attempt,
    flow: FlowClient,
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
    *,
    status: int,
    reason: str,
    says: str,
) -> None:
    """The whole contract of a refused sign-in."""
    response = attempt.response
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == status, page
    assert "Traceback" not in page
    assert 'File "' not in page
    assert says.lower() in page.lower(), page
    assert response.headers["Cache-Control"] == "no-store"
    # A login_failed signal, with a machine-readable reason and a message for the logs.
    assert [r for r, _ in attempt.failures] == [reason], attempt.failures
    assert says.lower() in attempt.failures[0][1].lower()
    # No token stored, no user index, no session: a protected page sends us to sign in.
    assert token_keys(redis_client, key_prefix) == []
    assert list(redis_client.scan_iter(match=key_prefix + "user:*")) == []
    dashboard = flow.get("/dashboard")
    assert dashboard.status_code == 302
    assert dashboard.headers["Location"].startswith("/spark/login")
    # And the Spark API was never called on the rejected user's behalf.
    assert sandbox.counters()["api_calls"] == 0


def assert_signed_in(attempt: Attempt, flow: FlowClient, sandbox: SandboxServer) -> None:
    assert attempt.failures == []
    response = attempt.response
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == "/dashboard"
    page = flow.get("/dashboard")
    assert page.status_code == 200
    assert page.json is not None
    assert page.json["sub"] == MEMBER.id


@pytest.fixture
def one_signing_key(sandbox: SandboxServer) -> None:
    """The sandbox publishes exactly one key (earlier tests in this process may have rotated)."""
    if len(sandbox.state.keys.kids) != 1:
        sandbox.rotate_keys(drop_old=True)


@dataclass
class JwksFetches:
    """Counts the relying party's requests to the provider's jwks_uri."""

    count: int = 0


@pytest.fixture
def jwks_fetches(monkeypatch: pytest.MonkeyPatch) -> JwksFetches:
    seen = JwksFetches()
    original = OIDCClient._get_json

    def spy(self: OIDCClient, url: str, what: str) -> dict[str, Any]:
        if what == "JWKS":
            seen.count += 1
        return original(self, url, what)

    monkeypatch.setattr(OIDCClient, "_get_json", spy)
    return seen


# -- refused id_tokens -----------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    fault: dict[str, Any]
    reason: str
    says: str
    options: dict[str, Any] = field(default_factory=dict)


REFUSALS = {
    # OpenID Foundation RP certification cases.
    "rp-nonce-invalid": Refusal({"id_token_fault": "wrong-nonce"}, "nonce", "nonce"),
    "rp-id_token-bad-sig-rs256": Refusal(
        {"id_token_fault": "bad-sig"}, "id_token_invalid", "signature is invalid"
    ),
    "rp-id_token-sig-none": Refusal(
        {"id_token_fault": "alg-none"}, "id_token_invalid", "refused algorithm ('none')"
    ),
    "rp-id_token-issuer-mismatch": Refusal(
        {"id_token_fault": "wrong-iss"}, "id_token_invalid", "claim iss"
    ),
    "rp-id_token-aud": Refusal({"id_token_fault": "wrong-aud"}, "id_token_invalid", "claim aud"),
    "rp-id_token-iat": Refusal({"id_token_fault": "no-iat"}, "id_token_invalid", "claim iat"),
    "rp-id_token-sub": Refusal({"id_token_fault": "no-sub"}, "id_token_invalid", "claim sub"),
    "rp-userinfo-bad-sub-claim": Refusal(
        {"userinfo_sub": "19990101000000000000000000"},
        "userinfo_sub_mismatch",
        "another user",
        {"fetch_userinfo": True},
    ),
    # The security model's other attacks on the id_token.
    "nonce-missing": Refusal({"id_token_fault": "no-nonce"}, "nonce", "nonce"),
    "alg-confusion-hs256-with-rsa-public-key": Refusal(
        {"id_token_fault": "hs256-confusion"}, "id_token_invalid", "refused algorithm ('HS256')"
    ),
    "header-jku": Refusal(
        {"id_token_fault": "jku-header"}, "id_token_invalid", "offers its own key (jku)"
    ),
    "header-x5u": Refusal(
        {"id_token_fault": "x5u-header"}, "id_token_invalid", "offers its own key (x5u)"
    ),
    "header-jwk": Refusal(
        {"id_token_fault": "jwk-header"}, "id_token_invalid", "offers its own key (jwk)"
    ),
    "id_token-expired": Refusal({"id_token_fault": "expired"}, "id_token_invalid", "claim exp"),
    "id_token-iat-in-the-future": Refusal(
        {"id_token_fault": "future-iat"}, "id_token_invalid", "claim iat"
    ),
    "multi-aud-without-azp": Refusal(
        {"id_token_fault": "multi-aud-no-azp"}, "id_token_invalid", "azp"
    ),
    "multi-aud-azp-not-this-client": Refusal(
        {"id_token_fault": "multi-aud-wrong-azp"}, "id_token_invalid", "azp"
    ),
    "unknown-kid-not-fixed-by-refetch": Refusal(
        {"id_token_fault": "unknown-kid"}, "id_token_invalid", "key the provider does not publish"
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS.values()), ids=list(REFUSALS))
def test_refused_id_token(
    case: Refusal,
    config: dict[str, Any],
    sandbox: SandboxServer,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    flow = FlowClient(make_app(config, **case.options), sandbox)
    sandbox.faults(**case.fault)
    attempt = attempt_login(flow)
    assert attempt.authorize_url is not None  # refused at the callback, after the exchange
    assert sandbox.counters()["authorization_code_grants"] == 1
    assert_rejected(
        attempt,
        flow,
        sandbox,
        redis_client,
        key_prefix,
        status=400,
        reason=case.reason,
        says=case.says,
    )


def test_rp_discovery_issuer_not_matching_config(
    flow: FlowClient, sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    """[rp-discovery-issuer-not-matching-config] The discovery document claims another issuer.

    Refused at /login, before the user is sent anywhere, with **502**: the user's request is
    fine, the upstream provider's answer is not trustworthy (a gateway error, not a client one).
    """
    sandbox.faults(discovery_issuer="https://evil.example.com")
    attempt = attempt_login(flow)
    assert attempt.authorize_url is None  # nobody was sent to a provider we cannot trust
    assert sandbox.counters()["authorize_requests"] == 0
    assert_rejected(
        attempt,
        flow,
        sandbox,
        redis_client,
        key_prefix,
        status=502,
        reason="discovery_issuer_mismatch",
        says="issuer does not match",
    )


def test_unknown_kid_refetches_the_jwks_once_and_is_rate_limited(
    flow: FlowClient, sandbox: SandboxServer, jwks_fetches: JwksFetches
) -> None:
    """An id_token the cached keys cannot verify refetches the JWKS once (it came from the
    provider itself); forged logout tokens, which anyone can post, cannot make more fetches
    than one per interval."""
    assert attempt_login(flow).response.status_code == 302  # JWKS cached
    assert jwks_fetches.count == 1
    sandbox.faults(id_token_fault="unknown-kid")
    for attempt in (1, 2):
        assert attempt_login(flow).response.status_code == 400
        assert jwks_fetches.count == 1 + attempt  # one refetch each: the key is not published
    for _ in range(4):
        forged = sandbox.logout_token(sub=MEMBER.id, fault="bad-sig")
        answer = flow.client.post("/spark/backchannel-logout", data={"logout_token": forged})
        assert answer.status_code == 400
    assert jwks_fetches.count <= 4  # at most one more: the interval limits the flood


def test_rp_nonce_unless_code_flow_sends_a_nonce_anyway(flow: FlowClient) -> None:
    """[rp-nonce-unless-code-flow] targets implicit/hybrid RPs (nonce required there); this RP is
    code flow only, and sends a fresh nonce on every sign-in all the same."""
    first, second = query(flow.start_login()), query(flow.start_login())
    assert first["response_type"] == "code"
    assert len(first["nonce"]) >= 32
    assert first["nonce"] != second["nonce"]


# -- accepted id_tokens ------------------------------------------------------------------------


def test_rp_response_type_code(flow: FlowClient, sandbox: SandboxServer) -> None:
    """[rp-response_type-code] + [rp-id_token-sig-rs256]: the code flow signs in."""
    attempt = attempt_login(flow)
    assert attempt.authorize_url is not None
    params = query(attempt.authorize_url)
    assert params["response_type"] == "code"
    assert params["code_challenge_method"] == "S256"
    assert_signed_in(attempt, flow, sandbox)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_rp_token_endpoint_client_auth(
    method: str, config: dict[str, Any], sandbox: SandboxServer
) -> None:
    """[rp-token_endpoint-client_secret_basic] and its client_secret_post sibling."""
    flow = FlowClient(make_app(config, token_endpoint_auth_method=method), sandbox)
    assert_signed_in(attempt_login(flow), flow, sandbox)


def test_rp_userinfo_bearer_header(config: dict[str, Any], sandbox: SandboxServer) -> None:
    """[rp-userinfo-bearer-header] userinfo is read with the bearer token and its sub matches."""
    flow = FlowClient(make_app(config, fetch_userinfo=True), sandbox)
    assert_signed_in(attempt_login(flow), flow, sandbox)
    assert sandbox.counters()["userinfo_calls"] == 1


def test_rp_id_token_kid_absent_single_jwks(
    flow: FlowClient, sandbox: SandboxServer, one_signing_key: None
) -> None:
    """[rp-id_token-kid-absent-single-jwks] no kid, one published key: that key is used."""
    sandbox.faults(id_token_fault="kid-absent")
    assert_signed_in(attempt_login(flow), flow, sandbox)


def test_rp_id_token_kid_absent_multiple_jwks(
    flow: FlowClient, sandbox: SandboxServer, one_signing_key: None
) -> None:
    """[rp-id_token-kid-absent-multiple-jwks] no kid, several published keys.

    Certification allows rejecting or trying every key; this RP tries every *published* key
    (all are the provider's), so it accepts a token signed by the newest one.
    """
    sandbox.rotate_keys()  # two keys published; the newer signs
    assert len(sandbox.state.keys.kids) == 2
    sandbox.faults(id_token_fault="kid-absent")
    assert_signed_in(attempt_login(flow), flow, sandbox)


def test_rp_key_rotation_op_sign_key(
    flow: FlowClient, sandbox: SandboxServer, jwks_fetches: JwksFetches
) -> None:
    """[rp-key-rotation-op-sign-key] the provider rotates its signing key between two sign-ins:
    the unknown kid makes the RP refetch the JWKS (once) and accept the new key at once."""
    assert_signed_in(attempt_login(flow), flow, sandbox)
    assert jwks_fetches.count == 1
    sandbox.rotate_keys(drop_old=True)
    second = FlowClient(flow.app, sandbox)  # another browser, same app (same JWKS cache)
    assert_signed_in(attempt_login(second), second, sandbox)
    assert jwks_fetches.count == 2


def test_multi_aud_with_azp_of_this_client_is_accepted(
    flow: FlowClient, sandbox: SandboxServer
) -> None:
    """Several audiences with ``azp`` = this client (Core §3.1.3.7 steps 4-5) are fine."""
    sandbox.faults(id_token_fault="multi-aud-azp")
    assert_signed_in(attempt_login(flow), flow, sandbox)


# -- refresh ------------------------------------------------------------------------------------


def test_refreshed_id_token_with_another_sub_ends_the_session(
    flow: FlowClient, sandbox: SandboxServer, redis_client: redis.Redis, key_prefix: str
) -> None:
    """Core §12.2: a refreshed id_token must keep iss, sub, aud; another sub ends the session."""
    assert_signed_in(attempt_login(flow), flow, sandbox)
    sid = flow.cookie()
    assert sid
    assert redis_client.exists(f"{key_prefix}tok:{{{key_prefix}session:{sid}}}")
    sandbox.faults(id_token_fault="refresh-sub-changed")
    sandbox.expire_tokens()
    calls = sandbox.counters()["api_calls"]

    response = flow.get("/dashboard")  # 1020 → refresh → id_token about Bob → session ends
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/spark/login")
    assert sandbox.counters()["refreshes"] == 1
    assert token_keys(redis_client, key_prefix) == []
    assert not redis_client.exists(f"{key_prefix}session:{sid}")
    # Nobody was signed in as the other member, and no further API call was made.
    other = MEMBERS[1]
    assert other.name not in response.get_data(as_text=True)
    assert flow.get("/dashboard").status_code == 302
    assert sandbox.counters()["api_calls"] == calls + 1  # only the call that got 1020

"""Interoperability: flask-spark against an OpenID provider that is not the sandbox.

``tests/alt_provider.py`` behaves as other real providers do (trailing-slash issuer, its own
path layout, ``client_secret_basic`` only with RFC 6749 §2.3.1 credential encoding, JSON-only
token bodies, ES256 id_tokens, JWKS with encryption and unusable keys, a one-element ``aud``,
non-rotating refresh without id_token, ``expires_in`` as a string, lowercase ``bearer``, no
revocation endpoint, a discovered ``end_session_endpoint``). Every test signs in through the
real flow, calls a protected view that uses the API, refreshes, and signs out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import redis
import requests
from flask import Flask
from werkzeug.test import TestResponse

from flask_spark.testing.redis_server import RedisServer

from .alt_provider import CLIENT_ID, CLIENT_SECRET, POST_LOGOUT_URI, USER, AltProvider
from .conftest import app_config, make_app
from .helpers import FlowClient, query


@pytest.fixture(scope="session")
def alt_server() -> Iterator[AltProvider]:
    """The alternative provider over real HTTP on loopback, once per test process."""
    server = AltProvider().start()
    yield server
    server.stop()


@pytest.fixture
def alt(alt_server: AltProvider) -> AltProvider:
    """The alternative provider with default options and no state left by other tests."""
    alt_server.configure()
    return alt_server


@pytest.fixture
def make(alt: AltProvider, redis_server: RedisServer, key_prefix: str) -> Any:
    """Build the test app pointed at the alternative provider, with config overrides."""

    def build(**overrides: Any) -> tuple[Flask, FlowClient]:
        config = app_config(alt, redis_server, key_prefix)  # type: ignore[arg-type]
        config.update(
            SPARK_CLIENT_ID=CLIENT_ID,
            SPARK_CLIENT_SECRET=CLIENT_SECRET,
            SPARK_ISSUER=alt.issuer,  # with its trailing slash, verbatim
            SPARK_API_BASE_URL=alt.url + "/api/v2/",
            SPARK_RESO_BASE_URL=alt.url + "/odata/",
            SPARK_SCOPE="openid profile email",
        )
        options = {
            "token_endpoint_auth_method": "client_secret_basic",
            "id_token_algorithms": ["ES256"],
        }
        for key, value in overrides.items():
            if key.startswith("SPARK_"):
                config[key] = value
            else:
                options[key] = value
        app = make_app(config, **options)
        return app, FlowClient(app, alt)  # type: ignore[arg-type]

    return build


def sign_in(flow: FlowClient) -> TestResponse:
    """The whole sign-in; asserts it landed on /dashboard."""
    callback = flow.authorize(flow.start_login("/dashboard"))
    assert callback.startswith("http://localhost/spark/callback?"), callback
    assert "iss" not in query(callback)  # this provider does not do RFC 9207
    response = flow.callback(callback)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"] == "/dashboard"
    return response


def dashboard_ok(flow: FlowClient) -> None:
    page = flow.get("/dashboard")
    assert page.status_code == 200, page.get_data(as_text=True)
    assert page.json == {"user": USER["name"], "sub": USER["sub"], "account": USER["name"]}


def sign_out(flow: FlowClient) -> TestResponse:
    return flow.post("/spark/logout", data={"spark_csrf_token": flow.csrf()})


def signed_out(flow: FlowClient) -> bool:
    answer = flow.get("/dashboard")
    return answer.status_code == 302 and "/spark/login" in answer.headers["Location"]


def test_es256_basic_auth_end_to_end(make: Any, alt: AltProvider) -> None:
    """ES256, client_secret_basic with RFC 6749 §2.3.1 encoding, non-rotating refresh."""
    _app, flow = make()
    authorize = flow.start_login("/dashboard")
    assert authorize.startswith(alt.url + "/oauth2/authorize?tenant=alt&")
    params = query(authorize)
    assert params["client_id"] == CLIENT_ID
    assert params["code_challenge_method"] == "S256"
    assert params["scope"] == "openid profile email"
    response = flow.callback(flow.authorize(authorize))
    assert response.status_code == 302, response.get_data(as_text=True)
    dashboard_ok(flow)
    assert all(r["basic"] and not r["secret_in_body"] for r in alt.token_requests)
    assert not any(r["json"] for r in alt.token_requests)

    # Unknown claims are kept as user data; there is no provider sid.
    with flow.client.session_transaction() as sess:
        data = sess["_spark"]
    assert data["claims"]["locale"] == "en-CA"
    assert data["claims"]["https://alt.example/claims/groups"] == ["agents", "admins"]
    assert data["psid"] is None

    # Reactive refresh: the API answers 401 + 1020; the response has no refresh token and no
    # id_token, so the same refresh token is used again next time.
    [refresh_token] = alt.refresh_tokens()
    for expected in (1, 2):
        assert alt.expire_access_tokens() >= 1
        dashboard_ok(flow)
        assert alt.counters["refreshes"] == expected
        assert alt.counters["api_1020"] == expected
    assert alt.refresh_tokens() == [refresh_token]
    assert not refresh_token.revoked
    assert "refresh_token" not in alt.last_token_response
    assert "id_token" not in alt.last_token_response

    # Sign-out: the access token is deleted at the API, the refresh token revoked (Basic).
    answer = sign_out(flow)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"
    assert alt.counters["api_token_deletes"] == 1
    assert alt.counters["revocations"] == 1
    assert refresh_token.revoked
    assert signed_out(flow)


def test_proactive_refresh_with_string_expires_in(make: Any, alt: AltProvider) -> None:
    """``expires_in: "30"`` is read as 30 s: with a 60 s skew every API call refreshes first."""
    alt.configure(access_token_lifetime=30)
    app, flow = make(refresh_skew=60)
    sign_in(flow)
    state = app.extensions["spark.state"]
    sid = flow.cookie()
    assert sid is not None
    stored = state.tokens.load(sid)
    assert stored is not None
    assert 0 < stored.expires_at - __import__("time").time() <= 30
    dashboard_ok(flow)
    assert alt.counters["refreshes"] == 1
    assert alt.counters["api_1020"] == 0
    fresh = state.tokens.load(sid)
    assert fresh is not None
    assert fresh.version == stored.version + 1
    assert fresh.refresh_token == stored.refresh_token  # not rotated: kept


def test_json_only_token_endpoint(make: Any, alt: AltProvider) -> None:
    """A token endpoint that reads JSON objects only, with client_secret_basic."""
    alt.configure(json_token_requests=True)
    _app, flow = make(token_request_format="json")
    sign_in(flow)
    alt.expire_access_tokens()
    dashboard_ok(flow)
    assert alt.counters["refreshes"] == 1
    assert [r["grant_type"] for r in alt.token_requests] == ["authorization_code", "refresh_token"]
    assert all(r["json"] and r["basic"] for r in alt.token_requests)
    # Revocation (RFC 7009) stays form-encoded, as it must.
    assert sign_out(flow).headers["Location"] == "/"
    assert alt.counters["revocations"] == 1


def test_json_only_endpoint_refuses_form_bodies(make: Any, alt: AltProvider) -> None:
    """Control: the variant really differs; a form body fails cleanly, no session."""
    alt.configure(json_token_requests=True)
    _app, flow = make()
    answer = flow.callback(flow.authorize(flow.start_login("/dashboard")))
    assert answer.status_code == 400
    assert alt.counters["token_errors"] == 1
    assert signed_out(flow)


def test_rs256_jwks_with_alg_use_and_encryption_key(make: Any, alt: AltProvider) -> None:
    """RS256 key with ``alg``/``use`` behind an ``enc`` RSA key, and no ``kid`` in the token."""
    alt.configure(alg="RS256", auth_methods=("client_secret_post",))
    jwks = requests.get(alt.url + "/oauth2/keys", timeout=5).json()["keys"]
    assert [k["use"] for k in jwks] == ["enc", "sig"]
    assert all(k["kty"] == "RSA" and "alg" in k for k in jwks)
    _app, flow = make(
        token_endpoint_auth_method="client_secret_post", id_token_algorithms=["RS256"]
    )
    sign_in(flow)
    dashboard_ok(flow)
    assert all(r["secret_in_body"] and not r["basic"] for r in alt.token_requests)
    alt.expire_access_tokens()
    dashboard_ok(flow)
    assert sign_out(flow).status_code == 302
    assert alt.counters["revocations"] == 1


def test_jwks_with_keys_the_rp_cannot_use(make: Any, alt: AltProvider) -> None:
    """RFC 7517 §5: unknown ``kty``, an unsupported curve, a key missing members are skipped."""
    alt.configure(exotic_jwks=True)
    _app, flow = make()
    sign_in(flow)
    dashboard_ok(flow)


def test_no_revocation_endpoint(
    make: Any, alt: AltProvider, redis_client: redis.Redis, key_prefix: str
) -> None:
    """Without a revocation endpoint sign-out is still complete (and nothing is queued)."""
    alt.configure(revocation=False)
    assert (
        "revocation_endpoint"
        not in requests.get(alt.url + "/.well-known/openid-configuration", timeout=5).json()
    )
    _app, flow = make()
    sign_in(flow)
    dashboard_ok(flow)
    answer = sign_out(flow)
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/"
    assert alt.counters["revocations"] == 0
    assert alt.counters["api_token_deletes"] == 1
    assert not [k for k in redis_client.scan_iter(match=key_prefix + "*") if b"revoc" in k]
    assert signed_out(flow)


def test_disconnect_revokes_both_tokens_with_basic_auth(make: Any, alt: AltProvider) -> None:
    _app, flow = make()
    sign_in(flow)
    answer = flow.post("/spark/revoke", data={"spark_csrf_token": flow.csrf()})
    assert answer.status_code == 302
    assert alt.counters["revocations"] == 2
    assert all(t.revoked for t in alt.tokens.values())
    assert signed_out(flow)


def test_userinfo_is_merged(make: Any, alt: AltProvider) -> None:
    _app, flow = make(fetch_userinfo=True)
    sign_in(flow)
    assert alt.counters["userinfo"] == 1
    dashboard_ok(flow)


def test_single_logout_goes_to_the_discovered_end_session_endpoint(
    make: Any, alt: AltProvider
) -> None:
    # This provider registers post-logout URIs of their own (Spark's is the redirect URI).
    _app, flow = make(SPARK_SINGLE_LOGOUT=True, post_logout_redirect_uri=POST_LOGOUT_URI)
    sign_in(flow)
    answer = sign_out(flow)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(alt.url + "/oauth2/logout?")
    params = query(location)
    assert params["client_id"] == CLIENT_ID
    assert params["post_logout_redirect_uri"] == POST_LOGOUT_URI
    assert len(params["state"]) >= 32
    assert signed_out(flow)  # already, before the provider is visited

    back = requests.get(location, allow_redirects=False, timeout=5)
    assert back.status_code == 302, back.text
    assert back.headers["Location"].startswith(POST_LOGOUT_URI + "?")
    assert query(back.headers["Location"])["state"] == params["state"]
    assert alt.counters["logouts"] == 1
    parts = urlsplit(back.headers["Location"])
    done = flow.get(parts.path + "?" + parts.query)
    assert done.status_code == 302
    assert done.headers["Location"] == "/"


def test_single_logout_at_a_strict_provider_still_signs_out(make: Any, alt: AltProvider) -> None:
    """RP-Initiated Logout §3: without an ``id_token_hint`` a provider may refuse to redirect
    back. flask-spark keeps tokens out of URLs, so the user stays on the provider's page; the
    provider session and the app's session are both ended all the same."""
    alt.configure(strict_logout=True)
    _app, flow = make(SPARK_SINGLE_LOGOUT=True)
    sign_in(flow)
    location = sign_out(flow).headers["Location"]
    assert "id_token_hint" not in query(location)
    page = requests.get(location, allow_redirects=False, timeout=5)
    assert page.status_code == 200
    assert alt.counters["logouts"] == 1
    assert signed_out(flow)


def test_informational_http_metadata_does_not_block_https_mode(make: Any, alt: AltProvider) -> None:
    """With HTTPS required, only endpoints the RP calls must be HTTPS (loopback excepted):
    ``op_policy_uri: http://...`` is a page for humans, not an endpoint."""
    _app, flow = make(SPARK_REQUIRE_HTTPS=True)
    sign_in(flow)
    dashboard_ok(flow)


def test_unencoded_basic_credentials_are_refused_by_this_provider(alt: AltProvider) -> None:
    """Control: the provider decodes Basic credentials as RFC 6749 §2.3.1 says, so a client
    that does not form-encode its id and secret cannot authenticate."""
    raw = requests.post(
        alt.url + "/oauth2/token?api-version=2",
        data={"grant_type": "refresh_token", "refresh_token": "rt.none"},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=5,
    )
    assert raw.status_code == 401
    encoded = requests.post(
        alt.url + "/oauth2/token?api-version=2",
        data={"grant_type": "refresh_token", "refresh_token": "rt.none"},
        auth=(quote(CLIENT_ID, safe=""), quote(CLIENT_SECRET, safe="")),
        timeout=5,
    )
    assert encoded.status_code == 400
    assert encoded.json()["error"] == "invalid_grant"


def test_issuer_without_the_slash_is_refused_clearly(make: Any, alt: AltProvider) -> None:
    """The issuer is compared verbatim (Discovery §4.3): a missing slash is a clear error."""
    _app, flow = make(SPARK_ISSUER=alt.url)
    answer = flow.get("/spark/login")
    assert answer.status_code == 502
    assert "does not match SPARK_ISSUER" in answer.get_data(as_text=True)


def test_backchannel_logout_token_es256_with_sub_only(make: Any, alt: AltProvider) -> None:
    """Back-Channel Logout 1.0: an explicitly typed ES256 ``logout_token``, ``aud`` a list,
    ``sub`` and no ``sid``, ends that user's sessions."""
    app, flow = make()
    sign_in(flow)
    other = FlowClient(app, alt)  # type: ignore[arg-type]
    sign_in(other)
    answer = app.test_client().post(
        "/spark/backchannel-logout", data={"logout_token": alt.logout_token(USER["sub"])}
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Cache-Control"] == "no-store"
    assert signed_out(flow)
    assert signed_out(other)


def test_provider_without_refresh_tokens(make: Any, alt: AltProvider) -> None:
    """No refresh token (e.g. ``offline_access`` not granted): an expired token ends the
    session cleanly, the user is sent to sign in again."""
    alt.configure(refresh_tokens=False)
    _app, flow = make()
    sign_in(flow)
    dashboard_ok(flow)
    assert alt.refresh_tokens() == []
    alt.expire_access_tokens()
    answer = flow.get("/dashboard")
    assert answer.status_code in (302, 401), answer.get_data(as_text=True)
    assert alt.counters["refreshes"] == 0
    assert signed_out(flow)
    sign_in(flow)  # and signing in again works
    dashboard_ok(flow)


def test_refresh_refused_by_the_provider_ends_the_session(make: Any, alt: AltProvider) -> None:
    _app, flow = make()
    sign_in(flow)
    for token in alt.refresh_tokens():
        token.revoked = True  # revoked elsewhere (another device, an admin)
    alt.expire_access_tokens()
    answer = flow.get("/dashboard")
    assert answer.status_code in (302, 401), answer.get_data(as_text=True)
    assert alt.counters["token_errors"] == 1
    assert signed_out(flow)


def test_revocation_endpoint_that_only_revokes_refresh_tokens(
    make: Any, alt: AltProvider, redis_client: redis.Redis, key_prefix: str
) -> None:
    """RFC 7009 §2.2.1: ``unsupported_token_type`` for access tokens is a final answer, not an
    outage: nothing to retry, no "could not reach" page."""
    alt.configure(revocable=("refresh_token",))
    _app, flow = make()
    sign_in(flow)
    answer = flow.post("/spark/revoke", data={"spark_csrf_token": flow.csrf()})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    assert alt.counters["revocations"] == 1
    assert [t.revoked for t in alt.refresh_tokens()] == [True]
    assert not [k for k in redis_client.scan_iter(match=key_prefix + "*") if b"revoc" in k]
    assert signed_out(flow)


@pytest.mark.parametrize("alg", ["ES384", "Ed25519", "PS256"])
def test_other_asymmetric_algorithms(make: Any, alt: AltProvider, alg: str) -> None:
    """Any asymmetric algorithm the app allows (``id_token_algorithms``) works."""
    alt.configure(alg=alg)
    _app, flow = make(id_token_algorithms=[alg])
    sign_in(flow)
    dashboard_ok(flow)


def test_algorithm_outside_the_allow_list_is_refused(make: Any, alt: AltProvider) -> None:
    """Control: the ES256 provider with the default allow-list (RS256) is refused cleanly."""
    _app, flow = make(id_token_algorithms=["RS256"])
    answer = flow.callback(flow.authorize(flow.start_login("/dashboard")))
    assert answer.status_code == 400
    assert "refused algorithm" in answer.get_data(as_text=True)
    assert signed_out(flow)


def test_issuer_with_a_path(make: Any, alt: AltProvider) -> None:
    """A Keycloak-style issuer ``http://host/realms/alt``: discovery below its path."""
    alt.configure(issuer_path="/realms/alt")
    _app, flow = make(SPARK_ISSUER=alt.issuer)
    sign_in(flow)
    dashboard_ok(flow)


def test_what_the_provider_sends_is_really_unlike_the_sandbox(make: Any, alt: AltProvider) -> None:
    """Guard the premise: the id_token and token responses have the shapes under test."""
    import base64
    import json

    from joserfc import jwt

    _app, flow = make()
    answer = flow.authorize(flow.start_login("/dashboard"))
    assert "session_state" in query(answer)
    assert query(answer)["code"].startswith("4/0A")
    body = requests.post(
        alt.url + "/oauth2/token?api-version=2",
        data={
            "grant_type": "authorization_code",
            "code": query(answer)["code"],
            "redirect_uri": "http://localhost/spark/callback",
            "code_verifier": "x" * 43,
        },
        auth=(quote(CLIENT_ID, safe=""), quote(CLIENT_SECRET, safe="")),
        timeout=5,
    ).json()
    # Wrong verifier: PKCE is enforced.
    assert body["error"] == "invalid_grant"
    # A real exchange, through the app, then the stored shapes.
    alt.configure()
    _app, flow = make()
    sign_in(flow)
    [token_response] = [r for r in alt.token_requests if r["grant_type"] == "authorization_code"]
    assert token_response["basic"]
    id_token = alt.last_id_token
    header = json.loads(base64.urlsafe_b64decode(id_token.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "typ": "JWT", "kid": "es-2024-1"}
    claims = jwt.decode(id_token, alt.signing_key, algorithms=["ES256"]).claims
    assert claims["aud"] == [CLIENT_ID]
    assert claims["iss"] == alt.url + "/"
    assert "at_hash" in claims
    assert "sid" not in claims
    assert alt.last_token_response["token_type"] == "bearer"
    assert alt.last_token_response["expires_in"] == "3600"


def test_basic_credentials_are_form_encoded_before_base64() -> None:
    """RFC 6749 §2.3.1, byte for byte (plain alphanumeric credentials are unchanged)."""
    import base64
    from types import SimpleNamespace

    from flask_spark.core.oidc import encode_client_secret_basic

    def header(client_id: str, secret: str) -> str:
        client = SimpleNamespace(client_id=client_id, client_secret=secret)
        _, headers, _ = encode_client_secret_basic(client, "POST", "https://op/token", {}, "")
        scheme, _, value = headers["Authorization"].partition(" ")
        assert scheme == "Basic"
        return base64.b64decode(value).decode()

    assert header("sandbox-client", "sandbox-secret") == "sandbox-client:sandbox-secret"
    assert header(CLIENT_ID, CLIENT_SECRET) == "alt%3Arp:alt%2Fs3cret%2B%2541%3Akey%3D"
    assert header("a b", "é") == "a%20b:%C3%A9"


def test_jwks_without_any_usable_key_is_a_clear_provider_error() -> None:
    from flask_spark.core.errors import ProviderError
    from flask_spark.core.oidc import import_jwks

    from .alt_provider import EXOTIC_JWKS

    with pytest.raises(ProviderError, match="no key this client can use"):
        import_jwks({"keys": EXOTIC_JWKS})
    with pytest.raises(ProviderError, match="could not be read"):
        import_jwks({"keys": "nope"})

"""The sandbox's OpenID provider over real HTTP: flows, tokens, logout, admin API and faults."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from flask_spark.sandbox import MEMBERS, SandboxServer
from flask_spark.sandbox.__main__ import main as sandbox_main
from flask_spark.sandbox.spark_platform import PRODUCTION_DISCOVERY, SPARK_CLAIMS

CLIENT_ID = "sandbox-client"
CLIENT_SECRET = "sandbox-secret"
REDIRECT_URI = "http://127.0.0.1:8765/spark/callback"
UA = {"X-SparkApi-User-Agent": "flask-spark-tests"}
JANE, BOB = MEMBERS[0], MEMBERS[1]
#: Verbatim copies of sparkplatform.com's discovery document and JWKS.
SPARK_PLATFORM = Path(__file__).parent.parent / "data" / "spark-platform"


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _clean(server: SandboxServer) -> None:
    server.reset()


@pytest.fixture(scope="module")
def generic_running() -> Iterator[SandboxServer]:
    with SandboxServer(generic=True) as running:
        yield running


@pytest.fixture
def generic(generic_running: SandboxServer) -> SandboxServer:
    """The sandbox as a generic OpenID provider (what Spark does not advertise), reset."""
    generic_running.reset()
    return generic_running


@dataclass
class Login:
    """The outcome of one authorize round trip."""

    params: dict[str, str]
    verifier: str
    redirect: dict[str, list[str]]

    @property
    def code(self) -> str:
        return self.redirect["code"][0]


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_params(**overrides: str) -> tuple[dict[str, str], str]:
    verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile email",
        "state": secrets.token_urlsafe(12),
        "nonce": secrets.token_urlsafe(12),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return params, verifier


def login(
    server: SandboxServer,
    member_id: str = JANE.id,
    http: Any = requests,
    **overrides: str,
) -> Login:
    """Authorize with one POST of ``member`` + ``consent=allow``, as the e2e tests do."""
    params, verifier = authorize_params(**overrides)
    answer = http.post(
        f"{server.url}/openid/authorize",
        params=params,
        data={"member": member_id, "consent": "allow"},
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(params["redirect_uri"] + "?")
    return Login(params, verifier, parse_qs(urlsplit(location).query))


def exchange(server: SandboxServer, result: Login, *, as_json: bool = False) -> requests.Response:
    body = {
        "grant_type": "authorization_code",
        "code": result.code,
        "redirect_uri": result.params["redirect_uri"],
        "code_verifier": result.verifier,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    url = f"{server.url}/openid/token"
    return requests.post(url, json=body) if as_json else requests.post(url, data=body)


def tokens_for(server: SandboxServer, member_id: str = JANE.id) -> dict[str, Any]:
    answer = exchange(server, login(server, member_id))
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def refresh(server: SandboxServer, refresh_token: str) -> requests.Response:
    return requests.post(
        f"{server.url}/openid/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )


def api(server: SandboxServer, path: str, token: str, method: str = "GET") -> requests.Response:
    headers = {**UA, "Authorization": f"Bearer {token}"}
    return requests.request(method, f"{server.url}/v1/{path}", headers=headers)


def jwks(server: SandboxServer) -> KeySet:
    return KeySet.import_key_set(requests.get(f"{server.url}/openid/jwks.json").json())


def verify(server: SandboxServer, token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, jwks(server), algorithms=["RS256"]).claims
    return claims


def header_of(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    padded = segment + "=" * (-len(segment) % 4)
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return header


# -- discovery and keys -----------------------------------------------------------------------


def test_discovery_document_is_productions_with_the_host_swapped(server: SandboxServer) -> None:
    doc = requests.get(f"{server.url}/.well-known/openid-configuration").json()
    published = json.loads((SPARK_PLATFORM / "openid-configuration.json").read_text())
    swapped = json.loads(json.dumps(published).replace("https://sparkplatform.com", server.url))
    assert doc == swapped
    assert doc["issuer"] == server.issuer == server.url
    assert doc["authorization_endpoint"] == f"{server.url}/openid/authorize"
    for extra in (
        "end_session_endpoint",
        "frontchannel_logout_supported",
        "backchannel_logout_supported",
        "check_session_iframe",
        "code_challenge_methods_supported",
        "authorization_response_iss_parameter_supported",
    ):
        assert extra not in doc
    assert "sid" not in doc["claims_supported"]


def test_module_copy_of_the_production_document_is_verbatim() -> None:
    published = json.loads((SPARK_PLATFORM / "openid-configuration.json").read_text())
    assert published == PRODUCTION_DISCOVERY


def test_generic_discovery_document(generic: SandboxServer) -> None:
    doc = requests.get(f"{generic.url}/.well-known/openid-configuration").json()
    assert doc["issuer"] == generic.issuer
    assert doc["token_endpoint"] == f"{generic.url}/openid/token"
    assert doc["revocation_endpoint"] == f"{generic.url}/openid/revoke"
    assert doc["jwks_uri"] == f"{generic.url}/openid/jwks.json"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["backchannel_logout_supported"] is True
    assert doc["frontchannel_logout_supported"] is True
    assert "sid" in doc["claims_supported"]
    assert "end_session_endpoint" not in doc


def test_jwks_has_default_kid_and_rotation_adds_keys() -> None:
    with SandboxServer() as server:  # its own: rotated keys survive a reset
        rotate_and_check(server)


def rotate_and_check(server: SandboxServer) -> None:
    assert [k["kid"] for k in jwks_json(server)] == ["default"]
    rotated = requests.post(f"{server.url}/_sandbox/rotate-keys", json={}).json()
    kids = [k["kid"] for k in jwks_json(server)]
    assert kids == ["default", rotated["kid"]]
    tokens = tokens_for(server)
    assert header_of(tokens["id_token"])["kid"] == rotated["kid"]
    verify(server, tokens["id_token"])
    requests.post(f"{server.url}/_sandbox/rotate-keys", params={"drop_old": "1"}, json={})
    assert len(jwks_json(server)) == 1
    assert all("d" not in key for key in jwks_json(server))


def jwks_json(server: SandboxServer) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = requests.get(f"{server.url}/openid/jwks.json").json()["keys"]
    return keys


# -- authorize --------------------------------------------------------------------------------


def test_login_and_consent_pages(server: SandboxServer) -> None:
    params, _ = authorize_params()
    page = requests.get(f"{server.url}/openid/authorize", params=params)
    assert page.status_code == 200
    for member in MEMBERS:
        assert f">{member.name}</label>" in page.text
    assert ">Sign in</button>" in page.text
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action is not None
    assert "code_challenge=" in html.unescape(action.group(1))
    consent = requests.post(page.url, data={"member": BOB.id}, allow_redirects=False)
    assert consent.status_code == 200
    assert ">Allow</button>" in consent.text
    assert ">Deny</button>" in consent.text
    assert BOB.name in consent.text
    assert server.counters()["authorize_requests"] == 1


def test_code_flow_with_pkce_and_id_token(server: SandboxServer) -> None:
    result = login(server)
    assert result.redirect["state"] == [result.params["state"]]
    assert "iss" not in result.redirect  # production does not advertise RFC 9207
    answer = exchange(server, result)
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 86400
    assert tokens["refresh_token"]
    assert tokens["access_token"]
    claims = verify(server, tokens["id_token"])
    assert claims["iss"] == server.issuer
    assert claims["aud"] == CLIENT_ID
    assert claims["sub"] == JANE.id
    assert claims["nonce"] == result.params["nonce"]
    assert claims["name"] == JANE.name
    assert claims["email"] == JANE.email
    assert claims["MemberMlsId"] == JANE.mls_id
    assert "sid" not in claims  # not among production's claims_supported
    assert claims["auth_time"] <= claims["iat"] < claims["exp"]
    assert header_of(tokens["id_token"])["kid"] == "default"
    counters = server.counters()
    assert counters["token_calls"] == 1
    assert counters["authorization_code_grants"] == 1


@pytest.mark.parametrize("member", MEMBERS, ids=lambda m: m.username)
def test_every_member_has_sparks_claim_set(server: SandboxServer, member: Any) -> None:
    claims = verify(server, tokens_for(server, member.id)["id_token"])
    supported = set(PRODUCTION_DISCOVERY["claims_supported"])
    assert set(SPARK_CLAIMS) <= set(claims)
    assert supported <= set(claims)  # every advertised claim is released
    assert claims["MemberMlsId"] == member.mls_id
    assert claims["OfficeKey"] == member.office_key
    assert isinstance(claims["user_is_active"], bool)
    assert "sid" not in claims


def test_generic_provider_sends_iss_and_sid(generic: SandboxServer) -> None:
    result = login(generic)
    assert result.redirect["iss"] == [generic.issuer]
    claims = verify(generic, exchange(generic, result).json()["id_token"])
    assert claims["sid"]


def test_pkce_is_optional_but_checked_when_sent(server: SandboxServer) -> None:
    params, _ = authorize_params()
    del params["code_challenge"], params["code_challenge_method"]
    answer = server_login(server, params)
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    without = Login(params, "", query)
    body = {
        "grant_type": "authorization_code",
        "code": without.code,
        "redirect_uri": REDIRECT_URI,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert requests.post(f"{server.url}/openid/token", data=body).status_code == 200

    result = login(server)
    result.verifier = secrets.token_urlsafe(48)
    answer = exchange(server, result)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def server_login(server: SandboxServer, params: dict[str, str]) -> requests.Response:
    answer = requests.post(
        f"{server.url}/openid/authorize",
        params=params,
        data={"member": JANE.id, "consent": "allow"},
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text
    return answer


def test_json_token_body_and_client_secret_basic(server: SandboxServer) -> None:
    assert exchange(server, login(server), as_json=True).status_code == 200
    result = login(server)
    answer = requests.post(
        f"{server.url}/openid/token",
        data={
            "grant_type": "authorization_code",
            "code": result.code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": result.verifier,
        },
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert answer.status_code == 200, answer.text
    bad = login(server)
    wrong = requests.post(
        f"{server.url}/openid/token",
        data={"grant_type": "authorization_code", "code": bad.code, "redirect_uri": REDIRECT_URI},
        auth=(CLIENT_ID, "wrong-secret"),
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"


def test_generic_provider_requires_and_checks_pkce(generic: SandboxServer) -> None:
    server = generic
    params, _ = authorize_params()
    del params["code_challenge"], params["code_challenge_method"]
    answer = requests.get(f"{server.url}/openid/authorize", params=params, allow_redirects=False)
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["error"] == ["invalid_request"]
    assert query["state"] == [params["state"]]
    assert query["iss"] == [server.issuer]

    plain, _ = authorize_params(code_challenge_method="plain")
    answer = requests.get(f"{server.url}/openid/authorize", params=plain, allow_redirects=False)
    assert parse_qs(urlsplit(answer.headers["Location"]).query)["error"] == ["invalid_request"]

    result = login(server)
    result.verifier = secrets.token_urlsafe(48)
    answer = exchange(server, result)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_bad_client_or_redirect_uri_gets_an_error_page(server: SandboxServer) -> None:
    for overrides in (
        {"redirect_uri": "https://evil.example.com/cb"},
        {"client_id": "nobody"},
    ):
        params, _ = authorize_params(**overrides)
        answer = requests.get(
            f"{server.url}/openid/authorize", params=params, allow_redirects=False
        )
        assert answer.status_code == 400
        assert "Location" not in answer.headers
        assert "evil.example.com" not in answer.headers.get("Content-Type", "")


def test_registered_redirect_uris_are_exact(server: SandboxServer) -> None:
    server.configure(redirect_uris=[REDIRECT_URI])
    params, _ = authorize_params(redirect_uri="http://127.0.0.1:8765/other")
    answer = requests.get(f"{server.url}/openid/authorize", params=params, allow_redirects=False)
    assert answer.status_code == 400
    login(server)


def test_openid_scope_required(server: SandboxServer) -> None:
    params, _ = authorize_params(scope="profile")
    answer = requests.get(f"{server.url}/openid/authorize", params=params, allow_redirects=False)
    assert parse_qs(urlsplit(answer.headers["Location"]).query)["error"] == ["invalid_scope"]


def test_deny_redirects_with_access_denied(server: SandboxServer) -> None:
    params, _ = authorize_params()
    answer = requests.post(
        f"{server.url}/openid/authorize",
        params=params,
        data={"member": JANE.id, "consent": "deny"},
        allow_redirects=False,
    )
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == [params["state"]]
    assert "code" not in query


def test_code_reuse_is_refused_and_revokes_tokens(server: SandboxServer) -> None:
    result = login(server)
    tokens = exchange(server, result).json()
    again = exchange(server, result)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert api(server, "my/account", tokens["access_token"]).status_code == 401


# -- refresh and revocation -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["production", "generic"])
def test_refresh_rotates_and_reuse_revokes_the_family(
    server: SandboxServer, generic: SandboxServer, mode: str
) -> None:
    server = generic if mode == "generic" else server
    first = tokens_for(server)
    sid = verify(server, first["id_token"]).get("sid")
    answer = refresh(server, first["refresh_token"])
    assert answer.status_code == 200
    second = answer.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    claims = verify(server, second["id_token"])
    assert claims.get("sid") == sid
    assert (sid is None) == (mode == "production")
    assert claims["sub"] == JANE.id
    assert "nonce" not in claims
    assert api(server, "my/account", second["access_token"]).status_code == 200

    replay = refresh(server, first["refresh_token"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    # The whole family is gone: the rotated-in tokens stop working too.
    assert refresh(server, second["refresh_token"]).status_code == 400
    denied = api(server, "my/account", second["access_token"])
    assert denied.status_code == 401
    assert denied.json()["D"]["Code"] == 1000
    counters = server.counters()
    assert counters["refreshes"] == 1
    assert counters["refresh_reuse"] == 1
    assert counters["refresh_failures"] == 2


def test_revoking_the_refresh_token_revokes_access(server: SandboxServer) -> None:
    tokens = tokens_for(server)
    answer = requests.post(
        f"{server.url}/openid/revoke",
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert answer.status_code == 200
    assert refresh(server, tokens["refresh_token"]).status_code == 400
    assert api(server, "my/account", tokens["access_token"]).status_code == 401
    unknown = requests.post(
        f"{server.url}/openid/revoke",
        data={"token": "never-issued", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )
    assert unknown.status_code == 200
    anonymous = requests.post(f"{server.url}/openid/revoke", data={"token": "x"})
    assert anonymous.status_code == 401
    assert server.counters()["revocations"] == 2


def test_delete_access_token_spark_style(server: SandboxServer) -> None:
    tokens = tokens_for(server)
    other = tokens_for(server, BOB.id)
    answer = api(server, f"oauth2/token/{other['access_token']}", tokens["access_token"], "DELETE")
    assert answer.status_code == 200
    assert answer.json() == {"D": {"Success": True, "Results": []}}
    assert api(server, "my/account", other["access_token"]).status_code == 401
    assert server.counters()["token_deletions"] == 1


def test_userinfo(server: SandboxServer) -> None:
    tokens = tokens_for(server)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    info = requests.get(f"{server.url}/openid/userinfo", headers=bearer)
    assert info.status_code == 200
    assert info.json()["sub"] == JANE.id
    server.faults(userinfo_sub="someone-else")
    assert requests.get(f"{server.url}/openid/userinfo", headers=bearer).json()["sub"] == (
        "someone-else"
    )
    missing = requests.get(f"{server.url}/openid/userinfo")
    assert missing.status_code == 401


# -- Spark API access control -----------------------------------------------------------------


def test_my_account_envelope(server: SandboxServer) -> None:
    answer = api(server, "my/account", tokens_for(server, BOB.id)["access_token"])
    assert answer.status_code == 200
    body = answer.json()["D"]
    assert body["Success"] is True
    account = body["Results"][0]
    assert account["Id"] == BOB.id
    assert account["Name"] == BOB.name
    assert account["Emails"][0]["Address"] == BOB.email
    assert {"Office", "OfficeId", "Mls", "MlsId", "UserType", "Phones", "Websites"} <= set(account)
    assert server.counters()["api_calls"] == 1


def test_expired_token_answers_1020(server: SandboxServer) -> None:
    tokens = tokens_for(server)
    expired = requests.post(f"{server.url}/_sandbox/expire-tokens", json={"member_id": JANE.id})
    assert expired.json() == {"expired": 1}
    answer = api(server, "my/account", tokens["access_token"])
    assert answer.status_code == 401
    assert answer.json() == {
        "D": {"Success": False, "Message": "Session token has expired", "Code": 1020}
    }
    assert answer.headers["WWW-Authenticate"] == (
        "Bearer realm='Flexmls API', error='invalid_token'"
    )
    fresh = refresh(server, tokens["refresh_token"]).json()
    assert api(server, "my/account", fresh["access_token"]).status_code == 200


def test_short_lifetime_config(server: SandboxServer) -> None:
    server.configure(access_token_lifetime=5)
    assert tokens_for(server)["expires_in"] == 5


def test_user_agent_and_bearer_required(server: SandboxServer) -> None:
    token = tokens_for(server)["access_token"]
    no_ua = requests.get(
        f"{server.url}/v1/my/account", headers={"Authorization": f"Bearer {token}"}
    )
    assert no_ua.status_code == 400
    assert no_ua.json()["D"]["Code"] == 1016
    assert no_ua.json()["D"]["Success"] is False
    no_token = requests.get(f"{server.url}/v1/my/account", headers=UA)
    assert no_token.status_code == 401
    assert no_token.json()["D"]["Code"] == 1000
    assert api(server, "my/account", "made-up").json()["D"]["Code"] == 1000


def test_api_faults(server: SandboxServer) -> None:
    token = tokens_for(server)["access_token"]
    server.faults(rate_limit_next=1, rate_limit_status=503, retry_after=7)
    limited = api(server, "my/account", token)
    assert limited.status_code == 503
    assert limited.json()["D"]["Code"] == 1550
    assert limited.headers["Retry-After"] == "7"
    requests.post(
        f"{server.url}/_sandbox/faults",
        json={
            "force_error_next": 1,
            "force_error": {"status": 409, "code": 1055, "message": "Conflict", "errors": ["x"]},
        },
    )
    forced = api(server, "my/account", token)
    assert forced.status_code == 409
    assert forced.json() == {
        "D": {"Success": False, "Message": "Conflict", "Code": 1055, "Errors": ["x"]}
    }
    server.faults(non_json_next=1)
    page = api(server, "my/account", token)
    assert page.status_code == 502
    assert page.headers["Content-Type"].startswith("text/html")
    assert api(server, "my/account", token).status_code == 200
    bad = requests.post(f"{server.url}/_sandbox/faults", json={"no_such_fault": 1})
    assert bad.status_code == 400


def test_token_endpoint_down(server: SandboxServer) -> None:
    tokens = tokens_for(server)
    server.faults(token_endpoint_status=503)
    assert refresh(server, tokens["refresh_token"]).status_code == 503
    server.faults(token_endpoint_status=None)
    assert refresh(server, tokens["refresh_token"]).status_code == 200


def test_concurrent_requests(server: SandboxServer) -> None:
    token = tokens_for(server)["access_token"]
    with ThreadPoolExecutor(max_workers=60) as pool:
        statuses = list(pool.map(lambda _: api(server, "my/account", token).status_code, range(60)))
    assert statuses == [200] * 60
    assert server.counters()["api_calls"] == 60


# -- id_token faults --------------------------------------------------------------------------


def test_forged_signatures_do_not_verify(server: SandboxServer) -> None:
    for fault in ("bad-sig", "unknown-kid", "jwk-header", "jku-header", "x5u-header"):
        server.faults(id_token_fault=fault)
        with pytest.raises((BadSignatureError, JoseError, ValueError)):
            verify(server, tokens_for(server)["id_token"])
    server.faults(id_token_fault="alg-none")
    assert header_of(tokens_for(server)["id_token"])["alg"] == "none"
    server.faults(id_token_fault="hs256-confusion")
    assert header_of(tokens_for(server)["id_token"])["alg"] == "HS256"


def test_claim_faults(server: SandboxServer) -> None:
    server.faults(id_token_fault="multi-aud-azp")
    claims = verify(server, tokens_for(server)["id_token"])
    assert claims["aud"] == [CLIENT_ID, "other-client"]
    assert claims["azp"] == CLIENT_ID
    server.faults(id_token_fault="wrong-nonce")
    result = login(server)
    claims = verify(server, exchange(server, result).json()["id_token"])
    assert claims["nonce"] != result.params["nonce"]
    server.faults(id_token_fault="kid-absent")
    token = tokens_for(server)["id_token"]
    assert "kid" not in header_of(token)
    server.faults(id_token_fault="refresh-sub-changed")
    tokens = tokens_for(server)
    assert verify(server, tokens["id_token"])["sub"] == JANE.id
    refreshed = refresh(server, tokens["refresh_token"]).json()
    assert verify(server, refreshed["id_token"])["sub"] != JANE.id


def test_discovery_issuer_fault(server: SandboxServer) -> None:
    server.faults(discovery_issuer="https://evil.example.com")
    doc = requests.get(f"{server.url}/.well-known/openid-configuration").json()
    assert doc["issuer"] == "https://evil.example.com"


# -- logout -----------------------------------------------------------------------------------


def test_logout_redirects_with_state(server: SandboxServer) -> None:
    browser = requests.Session()
    login(server, http=browser)
    answer = browser.get(
        f"{server.url}/openid/logout",
        params={"client_id": CLIENT_ID, "post_logout_redirect_uri": REDIRECT_URI, "state": "s1"},
        allow_redirects=False,
    )
    assert answer.status_code == 302
    assert answer.headers["Location"] == f"{REDIRECT_URI}?state=s1"
    assert server.counters()["logouts"] == 1
    assert not [s for s in server.state.sessions.values() if not s.ended]


@pytest.mark.parametrize(
    "params",
    [
        {"client_id": CLIENT_ID, "post_logout_redirect_uri": "http://127.0.0.1:8765/logged-out"},
        {"client_id": CLIENT_ID, "post_logout_redirect_uri": REDIRECT_URI + "/"},
        {"client_id": CLIENT_ID, "post_logout_redirect_uri": "https://evil.example.com/"},
        {"post_logout_redirect_uri": REDIRECT_URI},
    ],
    ids=["other-loopback", "trailing-slash", "elsewhere", "no-client-id"],
)
def test_logout_insists_on_the_clients_redirect_uri(
    server: SandboxServer, params: dict[str, str]
) -> None:
    login(server)  # the client has used REDIRECT_URI
    answer = requests.get(f"{server.url}/openid/logout", params=params, allow_redirects=False)
    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert server.counters()["logout_refusals"] == 1


def test_logout_accepts_a_registered_redirect_uri(server: SandboxServer) -> None:
    server.configure(redirect_uris=["https://app.example.com/spark/callback"])
    answer = requests.get(
        f"{server.url}/openid/logout",
        params={
            "client_id": CLIENT_ID,
            "post_logout_redirect_uri": "https://app.example.com/spark/callback",
        },
        allow_redirects=False,
    )
    assert answer.headers["Location"] == "https://app.example.com/spark/callback"


def test_generic_logout_rejects_unregistered_post_logout_uri(generic: SandboxServer) -> None:
    server = generic
    server.configure(post_logout_redirect_uris=["http://127.0.0.1:8765/bye"])
    for target in ("http://127.0.0.1:8765/elsewhere", "https://evil.example.com/"):
        answer = requests.get(
            f"{server.url}/openid/logout",
            params={"client_id": CLIENT_ID, "post_logout_redirect_uri": target, "state": "s"},
            allow_redirects=False,
        )
        assert answer.status_code == 400
        assert "Location" not in answer.headers


def test_frontchannel_logout_page(generic: SandboxServer) -> None:
    server = generic
    server.configure(frontchannel_logout_uri="http://127.0.0.1:8765/spark/single-logout")
    tokens = tokens_for(server)
    sid = verify(server, tokens["id_token"])["sid"]
    answer = requests.get(
        f"{server.url}/openid/logout",
        params={
            "client_id": CLIENT_ID,
            "post_logout_redirect_uri": "http://127.0.0.1:8765/bye",
            "state": "s2",
            "id_token_hint": tokens["id_token"],
        },
        allow_redirects=False,
    )
    assert answer.status_code == 200
    assert '<iframe src="http://127.0.0.1:8765/spark/single-logout?iss=' in answer.text
    assert f"sid={sid}" in answer.text
    assert "http://127.0.0.1:8765/bye?state=s2" in answer.text
    assert server.counters()["frontchannel_logouts"] == 1


class Receiver:
    """A tiny back-channel logout endpoint that records what it is sent."""

    def __init__(self, status: int = 200) -> None:
        self.tokens: list[str] = []
        self.status = status
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/backchannel"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.tokens.append(request.form["logout_token"])
        return Response("", status=self.status)(environ, start_response)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_backchannel_logout(generic: SandboxServer) -> None:
    server = generic
    with Receiver() as receiver:
        server.configure(backchannel_logout_uri=receiver.url)
        tokens = tokens_for(server)
        sid = verify(server, tokens["id_token"])["sid"]
        sent = requests.post(f"{server.url}/_sandbox/backchannel-logout", json={"sub": JANE.id})
        assert sent.json()["status"] == 200
        (token,) = receiver.tokens
    assert header_of(token)["typ"] == "logout+jwt"
    claims = verify(server, token)
    assert claims["sub"] == JANE.id
    assert claims["sid"] == sid
    assert claims["aud"] == CLIENT_ID
    assert claims["iss"] == server.issuer
    assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"]
    assert "nonce" not in claims
    assert server.counters()["backchannel_logouts"] == 1


def test_backchannel_failures_are_counted(generic: SandboxServer) -> None:
    server = generic
    with Receiver(status=400) as receiver:
        server.configure(backchannel_logout_uri=receiver.url)
        assert server.backchannel_logout(JANE.id) == [400]
    assert server.counters()["backchannel_failures"] == 1


def test_logout_token_minting(server: SandboxServer) -> None:
    answer = requests.post(
        f"{server.url}/_sandbox/logout-token", json={"sub": JANE.id, "sid": "abc"}
    )
    claims = verify(server, answer.json()["logout_token"])
    assert claims["sub"] == JANE.id
    assert claims["sid"] == "abc"
    assert claims["jti"]
    nonce = requests.post(
        f"{server.url}/_sandbox/logout-token", json={"sub": JANE.id, "fault": "nonce"}
    )
    assert "nonce" in verify(server, nonce.json()["logout_token"])
    forged = server.logout_token(sub=JANE.id, fault="bad-sig")
    with pytest.raises(BadSignatureError):
        verify(server, forged)
    unknown = requests.post(f"{server.url}/_sandbox/logout-token", json={"fault": "nope"})
    assert unknown.status_code == 400


# -- admin API and CLI ------------------------------------------------------------------------


def test_counters_and_reset(server: SandboxServer) -> None:
    tokens_for(server)
    server.faults(api_delay=0.01)
    counters = requests.get(f"{server.url}/_sandbox/counters").json()
    assert counters["token_calls"] == 1
    assert counters["refresh_reuse"] == 0
    assert requests.post(f"{server.url}/_sandbox/reset", json={}).status_code == 200
    assert requests.get(f"{server.url}/_sandbox/counters").json()["token_calls"] == 0
    assert requests.get(f"{server.url}/_sandbox/faults").json()["api_delay"] == 0
    assert not server.state.access_tokens


ADMIN_POSTS = (
    "reset",
    "config",
    "expire-tokens",
    "faults",
    "rotate-keys",
    "logout-token",
    "backchannel-logout",
)
#: What a cross-site page can make a browser send without a CORS preflight (Fetch: "simple").
SIMPLE_TYPES = (
    None,
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "text/plain",
    "text/plain; charset=utf-8",
)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    endpoint=st.sampled_from(ADMIN_POSTS),
    content_type=st.sampled_from(SIMPLE_TYPES),
    body=st.one_of(st.just(b""), st.just(b'{"sub": "x"}'), st.binary(max_size=40)),
)
def test_admin_endpoints_refuse_simple_cross_site_posts(
    server: SandboxServer, endpoint: str, content_type: str | None, body: bytes
) -> None:
    server.faults(api_delay=0.01)
    kid = server.state.keys.current.kid
    headers = {"Origin": "https://evil.example"}
    if content_type:
        headers["Content-Type"] = content_type
    answer = requests.post(f"{server.url}/_sandbox/{endpoint}", data=body, headers=headers)
    assert answer.status_code == 415, answer.text
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert server.state.faults.api_delay == 0.01  # nothing was reset
    assert server.state.keys.current.kid == kid  # nor rotated
    server.faults(api_delay=None)


#: Names a page can make its browser send in ``Host`` to a loopback port (DNS rebinding).
REBOUND_HOSTS = st.one_of(
    st.sampled_from(["evil.example", "127.0.0.1.evil.example", "localhost.evil.example", "0"]),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}\.(example|com|net|test)", fullmatch=True),
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(endpoint=st.sampled_from(ADMIN_POSTS), host=REBOUND_HOSTS)
def test_admin_endpoints_refuse_a_rebound_host_name(
    server: SandboxServer, endpoint: str, host: str
) -> None:
    """Attack finding: a page whose name was rebound to 127.0.0.1 is same-origin with the
    sandbox, so its JSON requests need no preflight: it could mint signed logout tokens,
    rotate keys, arm faults and read the answers. Admin calls must name a loopback host."""
    server.faults(api_delay=0.01)
    kid = server.state.keys.current.kid
    port = urlsplit(server.url).port
    headers = {"Host": f"{host}:{port}", "Content-Type": "application/json"}
    answer = requests.post(f"{server.url}/_sandbox/{endpoint}", data=b"{}", headers=headers)
    assert answer.status_code == 403, answer.text
    assert "logout_token" not in answer.text
    read = requests.get(f"{server.url}/_sandbox/faults", headers={"Host": f"{host}:{port}"})
    assert read.status_code == 403
    assert server.state.faults.api_delay == 0.01  # nothing was reset
    assert server.state.keys.current.kid == kid  # nor rotated
    for loopback in ("127.0.0.1", "localhost", "[::1]"):  # the names a developer uses still work
        ok = requests.get(f"{server.url}/_sandbox/faults", headers={"Host": f"{loopback}:{port}"})
        assert ok.status_code == 200, ok.text
    server.faults(api_delay=None)


def test_cli_refuses_remote_hosts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        sandbox_main(["--host", "0.0.0.0"])  # noqa: S104
    assert stopped.value.code == 2
    assert "--allow-remote" in capsys.readouterr().err
    with pytest.raises(ValueError, match="non-loopback"):
        SandboxServer(host="0.0.0.0")  # noqa: S104

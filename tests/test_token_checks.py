"""Each check of the id_token and logout_token validation, one refusal at a time (issue 23).

A provider of our own on loopback publishes discovery and a JWKS that each test shapes; the
tokens are signed here, and the relying party's public entry points (``validate_id_token``,
``validate_logout_token``) must refuse every one that breaks a rule, naming the rule, and
accept the valid token beside it (so that a refusal is never for another reason).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from flask import Flask
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from flask_spark.core.config import SparkConfig, load_config
from flask_spark.core.errors import IdTokenError, ProviderError
from flask_spark.core.oidc import LOGOUT_TOKEN_MAX_AGE, OIDCClient, import_jwks
from flask_spark.ext.views import create_blueprint

from .helpers import node_id

CLIENT = "our-client"
NONCE = "n-0S6_WzA2Mj"
EVENT = "http://schemas.openid.net/event/backchannel-logout"
SIGNING = RSAKey.generate_key(2048, parameters={"kid": "sig-1", "use": "sig"})
OTHER = RSAKey.generate_key(2048, parameters={"kid": "sig-2"})
HMAC = OctKey.import_key("k" * 32)


class Provider(ThreadingHTTPServer):
    """Discovery and a JWKS on loopback; ``keys`` is what the JWKS publishes right now."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.keys: list[dict[str, Any]] = [SIGNING.as_dict(private=False)]
        self.jwks_fetches = 0

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def document(self, path: str) -> dict[str, Any] | None:
        if path == "/.well-known/openid-configuration":
            return {
                "issuer": self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "jwks_uri": self.issuer + "/jwks",
            }
        if path == "/jwks":
            self.jwks_fetches += 1
            return {"keys": self.keys}
        return None


class _Handler(BaseHTTPRequestHandler):
    server: Provider

    def do_GET(self) -> None:
        document = self.server.document(self.path)
        data = json.dumps(document).encode()
        self.send_response(200 if document is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    server = Provider()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def config(provider: Provider) -> SparkConfig:
    provider.keys = [SIGNING.as_dict(private=False)]
    settings = {
        "SPARK_CLIENT_ID": CLIENT,
        "SPARK_CLIENT_SECRET": "secret",
        "SPARK_ISSUER": provider.issuer,
    }
    return load_config(settings, debug=False, testing=True)


@pytest.fixture
def rp(config: SparkConfig) -> OIDCClient:
    """A fresh relying party (nothing cached) for each test."""
    return OIDCClient(config)


def sign(claims: dict[str, Any], key: RSAKey = SIGNING, **header: Any) -> str:
    return jwt.encode({"alg": "RS256", "kid": key.kid, **header}, claims, key)


def raw_token(header: dict[str, Any], claims: Any) -> str:
    """A token signed with the published key whose header joserfc would refuse to write."""

    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signing_input = f"{part(header)}.{part(claims)}"
    signature = SIGNING.private_key.sign(  # type: ignore[union-attr]
        signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def id_claims(provider: Provider, **changes: Any) -> dict[str, Any]:
    """A valid id_token's claims, with ``changes`` (``None`` removes a claim)."""
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "aud": CLIENT,
        "sub": "20190716183201873925000000",
        "iat": now,
        "exp": now + 300,
        "nonce": NONCE,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def refused(call: Any, says: str) -> None:
    """Refused with an IdTokenError whose message names the token and says ``says``."""
    with pytest.raises(IdTokenError) as caught:
        call()
    message = str(caught.value)
    assert re.fullmatch(r"The (refreshed )?(id_token|logout_token)\b.* .*\.", message), message
    assert says in message, message


# -- id_token --------------------------------------------------------------------------------


def test_a_valid_id_token_is_accepted(rp: OIDCClient, provider: Provider) -> None:
    claims = rp.validate_id_token(sign(id_claims(provider)), nonce=NONCE)
    assert claims["sub"] == "20190716183201873925000000"
    assert rp.validate_id_token(sign(id_claims(provider, nonce=None)), nonce=None)["aud"] == CLIENT


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "iss", "aud"], ids=node_id)
def test_an_id_token_without_a_required_claim_is_refused(
    rp: OIDCClient, provider: Provider, claim: str
) -> None:
    token = sign(id_claims(provider, **{claim: None}))
    refused(lambda: rp.validate_id_token(token, nonce=NONCE), f"claim {claim}")


def test_an_expired_id_token_is_refused(rp: OIDCClient, provider: Provider) -> None:
    token = sign(id_claims(provider, exp=int(time.time()) - 3600))
    refused(lambda: rp.validate_id_token(token, nonce=NONCE), "claim exp")


@pytest.mark.parametrize(
    ("aud", "azp", "accepted"),
    [
        (CLIENT, None, True),
        (CLIENT, CLIENT, True),
        (CLIENT, "another-client", False),  # one audience, but presented by another client
        ([CLIENT], "another-client", False),
        ([CLIENT, "another-client"], CLIENT, True),
        ([CLIENT, "another-client"], None, False),
        ([CLIENT, "another-client"], "another-client", False),
    ],
    ids=node_id,
)
def test_azp_must_name_this_client_when_present_or_several_audiences(
    rp: OIDCClient, provider: Provider, aud: Any, azp: str | None, accepted: bool
) -> None:
    token = sign(id_claims(provider, aud=aud, azp=azp))
    if accepted:
        assert rp.validate_id_token(token, nonce=NONCE)["aud"] == aud
    else:
        refused(lambda: rp.validate_id_token(token, nonce=NONCE), "azp is not this client")


@pytest.mark.parametrize(
    "header",
    [
        {"x5c": [SIGNING.as_dict(private=False)["n"][:40]]},
        {"jku": "http://127.0.0.1:9/jwks"},
        {"x5u": "http://127.0.0.1:9/cert"},
        {"jwk": ECKey.generate_key("P-256").as_dict(private=False)},
    ],
    ids=["x5c", "jku", "x5u", "jwk"],
)
def test_a_token_offering_its_own_key_is_refused(
    rp: OIDCClient, provider: Provider, header: dict[str, Any]
) -> None:
    """Even signed with the published key: the token's own key offer is refused outright."""
    (name,) = header
    token = sign(id_claims(provider), **header)
    refused(lambda: rp.validate_id_token(token, nonce=NONCE), f"offers its own key ({name})")
    logout = sign(logout_claims(provider), **header)
    refused(lambda: rp.validate_logout_token(logout), f"offers its own key ({name})")


def test_a_key_published_for_encryption_never_verifies_a_signature(
    rp: OIDCClient, provider: Provider
) -> None:
    """RFC 7517 §4.2: ``use: enc`` keys encrypt; a token signed with one is refused, with or
    without a ``kid``, and a key without ``use`` still verifies."""
    provider.keys = [{**OTHER.as_dict(private=False), "use": "enc"}]
    token = sign(id_claims(provider), key=OTHER)
    refused(lambda: rp.validate_id_token(token, nonce=NONCE), "key the provider does not publish")
    no_kid = jwt.encode({"alg": "RS256"}, id_claims(provider), OTHER)
    refused(lambda: rp.validate_id_token(no_kid, nonce=NONCE), "key the provider does not publish")
    provider.keys = [OTHER.as_dict(private=False)]  # no "use": a signing key
    assert rp.validate_id_token(token, nonce=NONCE)["sub"]


def test_a_token_signed_by_an_unpublished_key_is_refused(
    rp: OIDCClient, provider: Provider
) -> None:
    forged = sign(id_claims(provider), key=OTHER)
    refused(lambda: rp.validate_id_token(forged, nonce=NONCE), "key the provider does not publish")
    wrong = sign(id_claims(provider), key=OTHER, kid=SIGNING.kid)
    refused(lambda: rp.validate_id_token(wrong, nonce=NONCE), "signature is invalid")


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("not-a-jwt", "not a well-formed JWT"),
        ("é.é.é", "not a well-formed JWT"),
        (jwt.encode({"alg": "HS256"}, {"sub": "x"}, HMAC), "refused algorithm ('HS256')"),
        (raw_token({"alg": "RS256", "kid": 7}, {"sub": "x"}), "invalid kid"),
    ],
    ids=["garbage", "non-ascii", "hs256", "kid-not-a-string"],
)
def test_a_malformed_token_is_refused(rp: OIDCClient, token: str, says: str) -> None:
    refused(lambda: rp.validate_id_token(token, nonce=NONCE), says)


@pytest.mark.parametrize(
    ("sub", "accepted"),
    [
        ("x" * 255, True),
        ("x", True),
        ("~ !", True),
        ("x" * 256, False),
        ("", False),
        ("a\nb", False),
        ("caf\u00e9", False),
        (20190716, False),
    ],
    ids=["255", "1", "printable", "256", "empty", "newline", "non-ascii", "number"],
)
def test_sub_is_1_to_255_printable_ascii_characters(
    rp: OIDCClient, provider: Provider, sub: Any, accepted: bool
) -> None:
    token = sign(id_claims(provider, sub=sub))
    if accepted:
        assert rp.validate_id_token(token, nonce=NONCE)["sub"] == sub
    else:
        refused(lambda: rp.validate_id_token(token, nonce=NONCE), "sub")


def test_the_nonce_must_be_this_sign_ins(rp: OIDCClient, provider: Provider) -> None:
    for nonce in ("another", None):
        token = sign(id_claims(provider, nonce=nonce))
        with pytest.raises(IdTokenError) as caught:
            rp.validate_id_token(token, nonce=NONCE)
        assert caught.value.reason == "nonce"
        assert str(caught.value) == "The id_token's nonce does not match this sign-in."


def test_a_refreshed_id_token_keeps_its_subject(rp: OIDCClient, provider: Provider) -> None:
    token = sign(id_claims(provider))
    first = rp.validate_id_token(token, nonce=NONCE)
    kept = {"sub": first["sub"], "iss": first["iss"]}
    assert rp.validate_id_token(token, nonce=None, previous=kept)["sub"] == first["sub"]
    other = sign(id_claims(provider, sub="19990101000000000000000000"))
    refused(lambda: rp.validate_id_token(other, nonce=None, previous=kept), "changed its sub")


# -- logout_token ----------------------------------------------------------------------------


def logout_claims(provider: Provider, **changes: Any) -> dict[str, Any]:
    """A valid logout token's claims, with ``changes`` (``None`` removes a claim)."""
    claims = {
        "iss": provider.issuer,
        "aud": CLIENT,
        "iat": int(time.time()),
        "jti": "jti-1",
        "sub": "20190716183201873925000000",
        "sid": "08a5019c-17e1-4977-8f42-65a12843ea02",
        "events": {EVENT: {}},
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_a_valid_logout_token_is_accepted(rp: OIDCClient, provider: Provider) -> None:
    for changes in ({}, {"sub": None}, {"sid": None}, {"exp": int(time.time()) + 60}):
        claims = rp.validate_logout_token(sign(logout_claims(provider, **changes)))
        assert claims["jti"] == "jti-1"


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"events": None}, "no back-channel logout event"),
        ({"events": [EVENT]}, "no back-channel logout event"),
        ({"events": {"http://schemas.openid.net/event/other": {}}}, "no back-channel logout"),
        ({"nonce": "n"}, "must not carry a nonce"),
        ({"sub": None, "sid": None}, "names no sub or sid, or not as a short string"),
        ({"sub": "", "sid": None}, "names no sub or sid, or not as a short string"),
        ({"sub": "a\nb"}, "names no sub or sid, or not as a short string"),
        ({"sid": "a\x1b[2Jb"}, "names no sub or sid, or not as a short string"),
        ({"sid": "x" * 256}, "names no sub or sid, or not as a short string"),
        ({"sub": None, "sid": 7}, "names no sub or sid, or not as a short string"),
        ({"jti": None}, "no jti"),
        ({"jti": "é"}, "no jti"),
        ({"iat": None}, "claim iat"),
        ({"iss": "http://127.0.0.1:9"}, "claim iss"),
        ({"aud": "another-client"}, "claim aud"),
        ({"aud": [CLIENT, "another-client"]}, "azp is not this client"),
    ],
    ids=node_id,
)
def test_a_logout_token_breaking_a_rule_is_refused(
    rp: OIDCClient, provider: Provider, changes: dict[str, Any], says: str
) -> None:
    token = sign(logout_claims(provider, **changes))
    refused(lambda: rp.validate_logout_token(token), says)


def frozen(monkeypatch: pytest.MonkeyPatch, rp: OIDCClient, now: int) -> None:
    """The clock stopped at ``now`` for the relying party and the JOSE library alike (the
    JWKS fetched before, on the real clock)."""
    rp.jwks()
    monkeypatch.setattr(time, "time", lambda: float(now))


def test_logout_token_times(
    rp: OIDCClient, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``iat`` neither in the future nor older than the limit (each with the clock skew),
    ``exp`` when present not passed, each boundary to the second."""
    skew = rp.config.clock_skew
    now = int(time.time()) - 1000  # a clock of its own, not the signer's
    tokens = {
        name: sign(logout_claims(provider, **changes))
        for name, changes in {
            "latest": {"iat": now + skew},
            "future": {"iat": now + skew + 1},
            "nan": {"iat": float("nan")},
            "oldest": {"iat": int(now - LOGOUT_TOKEN_MAX_AGE - skew)},
            "too-old": {"iat": int(now - LOGOUT_TOKEN_MAX_AGE - skew) - 1},
            "last-second": {"iat": now, "exp": now - skew + 1},
            # (exp = now - skew itself: refused by joserfc 1.7, accepted by 1.6: one second)
            "expired": {"iat": now, "exp": now - skew - 1},
        }.items()
    }
    frozen(monkeypatch, rp, now)
    assert rp.validate_logout_token(tokens["latest"])
    refused(lambda: rp.validate_logout_token(tokens["future"]), "claim iat")
    refused(lambda: rp.validate_logout_token(tokens["nan"]), "claim iat")
    assert rp.validate_logout_token(tokens["oldest"])
    refused(lambda: rp.validate_logout_token(tokens["too-old"]), "too old")
    assert rp.validate_logout_token(tokens["last-second"])
    refused(lambda: rp.validate_logout_token(tokens["expired"]), "claim exp")


@pytest.mark.parametrize(
    ("exp", "remembered"),
    [(None, LOGOUT_TOKEN_MAX_AGE), (10, 10), (10**9, LOGOUT_TOKEN_MAX_AGE)],
    ids=["no-exp", "exp-first", "iat-first"],
)
def test_a_logout_token_is_remembered_until_it_could_no_longer_be_accepted(
    rp: OIDCClient,
    provider: Provider,
    monkeypatch: pytest.MonkeyPatch,
    exp: int | None,
    remembered: float,
) -> None:
    """The back-channel endpoint keeps its ``jti`` (no replay) at least until the earlier of
    ``exp`` and ``iat`` plus the maximum age, with the clock skew."""
    skew = rp.config.clock_skew
    iat = int(time.time()) - 1000
    token = sign(logout_claims(provider, iat=iat, exp=exp and iat + exp))
    kept: list[tuple[str, int]] = []
    registry = SimpleNamespace(
        first_use_of_logout_token=lambda jti, ttl: not kept.append((jti, ttl))
    )
    registry.destroy_all = lambda **_: []
    app = Flask(__name__)
    app.extensions["spark.state"] = SimpleNamespace(
        oidc=rp, config=rp.config, registry=registry, session_interface=app.session_interface
    )
    app.register_blueprint(create_blueprint(), url_prefix="/spark")
    frozen(monkeypatch, rp, iat)
    answer = app.test_client().post("/spark/backchannel-logout", data={"logout_token": token})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    [(jti, ttl)] = kept
    assert jti == "jti-1"
    assert ttl >= remembered + skew  # no replay while the token could still be accepted


def test_the_clock_skew_is_allowed_both_ways(rp: OIDCClient, provider: Provider) -> None:
    now = int(time.time())
    skew = rp.config.clock_skew
    issued_ahead = sign(id_claims(provider, iat=now + skew // 2))
    assert rp.validate_id_token(issued_ahead, nonce=NONCE)
    just_expired = sign(id_claims(provider, exp=now - skew // 2))
    assert rp.validate_id_token(just_expired, nonce=NONCE)


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "Ed25519"])
def test_each_allowed_algorithm_picks_keys_of_its_type(
    config: SparkConfig, provider: Provider, alg: str
) -> None:
    """Without a ``kid``, the keys tried are those of the algorithm's key type."""
    keys = {
        "RS256": SIGNING,
        "PS256": SIGNING,
        "ES256": ECKey.generate_key("P-256", parameters={"kid": "ec"}),
        "Ed25519": OKPKey.generate_key("Ed25519", parameters={"kid": "okp"}),
    }
    provider.keys = [k.as_dict(private=False) for k in (SIGNING, keys["ES256"], keys["Ed25519"])]
    rp = OIDCClient(replace(config, id_token_algorithms=(alg,)))
    token = jwt.encode({"alg": alg}, id_claims(provider), keys[alg], algorithms=[alg])
    assert rp.validate_id_token(token, nonce=NONCE)["aud"] == CLIENT


def test_without_a_kid_every_published_signing_key_is_tried(
    rp: OIDCClient, provider: Provider
) -> None:
    """[rp-id_token-kid-absent-single-jwks], and with several keys of the type."""
    unnamed = jwt.encode({"alg": "RS256"}, id_claims(provider), SIGNING)
    assert rp.validate_id_token(unnamed, nonce=NONCE)
    provider.keys = [OTHER.as_dict(private=False), SIGNING.as_dict(private=False)]
    assert OIDCClient(rp.config).validate_id_token(unnamed, nonce=NONCE)


def test_an_algorithm_of_no_known_key_type_finds_no_key(
    config: SparkConfig, provider: Provider
) -> None:
    """An allowed algorithm the JOSE library does not know is refused, never a crash."""
    rp = OIDCClient(replace(config, id_token_algorithms=("XY256",)))
    token = raw_token({"alg": "XY256", "kid": SIGNING.kid}, id_claims(provider))
    refused(lambda: rp.validate_id_token(token, nonce=NONCE), "key the provider does not publish")


def test_valid_tokens_use_the_cached_jwks(rp: OIDCClient, provider: Provider) -> None:
    """The JWKS is fetched once, not once per token, while every ``kid`` is known."""
    fetched = provider.jwks_fetches
    for _ in range(3):
        assert rp.validate_id_token(sign(id_claims(provider)), nonce=NONCE)
        assert rp.validate_logout_token(sign(logout_claims(provider)))
    assert provider.jwks_fetches - fetched == 1


def test_forged_logout_tokens_cannot_make_us_fetch_the_jwks_again_and_again(
    rp: OIDCClient, provider: Provider
) -> None:
    """Anyone can post a logout token: an unknown ``kid`` refetches the JWKS once per
    interval, and is refused as a key the provider does not publish."""
    forged = sign(logout_claims(provider), key=OTHER)
    fetched = provider.jwks_fetches
    for _ in range(3):
        refused(lambda: rp.validate_logout_token(forged), "key the provider does not publish")
    assert provider.jwks_fetches - fetched == 2  # the first fetch, and one refetch


def test_every_key_offering_header_is_named(rp: OIDCClient, provider: Provider) -> None:
    token = sign(id_claims(provider), jku="http://127.0.0.1:9/j", x5u="http://127.0.0.1:9/c")
    refused(lambda: rp.validate_id_token(token, nonce=NONCE), "offers its own key (jku, x5u);")


# -- the JWKS --------------------------------------------------------------------------------


def test_a_jwks_without_a_keys_list_is_the_providers_fault() -> None:
    for document in ({}, {"keys": "x"}):
        with pytest.raises(ProviderError) as caught:
            import_jwks(document)
        assert str(caught.value) == "The provider's JWKS could not be read (no 'keys' list)."


def test_unusable_keys_are_skipped_and_said_so(caplog: pytest.LogCaptureFixture) -> None:
    usable = SIGNING.as_dict(private=False)
    strange = {"kty": "XYZ", "kid": "k9"}
    with caplog.at_level(logging.INFO, logger="flask_spark"):
        keys = import_jwks({"keys": ["not a key", strange, usable]})
    assert [k.kid for k in keys] == [SIGNING.kid]
    assert [r.getMessage() for r in caplog.records] == [
        "Skipped a JWKS key this client cannot use."
    ] * 2
    with pytest.raises(ProviderError) as caught:
        import_jwks({"keys": [strange]})
    assert str(caught.value) == "The provider's JWKS holds no key this client can use."

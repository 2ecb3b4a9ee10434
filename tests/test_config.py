"""Configuration: every mistake is reported at init_app, naming the key to set."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask

from flask_spark import SparkAuth
from flask_spark.core.config import DEFAULTS, load_config
from flask_spark.core.errors import SparkConfigError

from .conftest import FERNET_KEY

BASE: dict[str, Any] = {
    "SPARK_CLIENT_ID": "id",
    "SPARK_CLIENT_SECRET": "secret",
    "SPARK_TOKEN_KEYS": [FERNET_KEY],
    "SPARK_REDIS_URL": "redis://127.0.0.1:1/0",
    "SPARK_USER_AGENT": "tests",
}


def production(**overrides: Any) -> Any:
    return load_config({**BASE, **overrides}, debug=False, testing=False)


@pytest.mark.parametrize("key", ["SPARK_CLIENT_ID", "SPARK_CLIENT_SECRET"])
def test_missing_credentials_name_the_key(key: str) -> None:
    with pytest.raises(SparkConfigError, match=key):
        production(**{key: None})


def test_no_token_keys_outside_debug_refuses_to_start_and_says_how() -> None:
    with pytest.raises(SparkConfigError, match="flask spark keygen"):
        production(SPARK_TOKEN_KEYS=None)


def test_no_token_keys_in_debug_uses_an_ephemeral_key_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_spark"):
        cfg = load_config({**BASE, "SPARK_TOKEN_KEYS": None}, debug=True, testing=False)
    assert cfg.ephemeral_key
    assert len(cfg.token_keys) == 1
    assert "ephemeral key" in caplog.text


def test_bad_fernet_key_is_refused() -> None:
    with pytest.raises(SparkConfigError, match=r"SPARK_TOKEN_KEYS\[1\]"):
        production(SPARK_TOKEN_KEYS=[FERNET_KEY, "not-a-key"])


def test_token_keys_from_an_environment_string() -> None:
    cfg = production(SPARK_TOKEN_KEYS=f"{FERNET_KEY}, {FERNET_KEY}")
    assert cfg.token_keys == (FERNET_KEY, FERNET_KEY)


def test_no_redis_outside_debug_is_a_clear_error() -> None:
    with pytest.raises(SparkConfigError, match="SPARK_REDIS_URL"):
        production(SPARK_REDIS_URL=None)


def test_no_user_agent_outside_debug_is_a_clear_error() -> None:
    with pytest.raises(SparkConfigError, match="X-SparkApi-User-Agent"):
        production(SPARK_USER_AGENT=None)


@pytest.mark.parametrize("algs", [["none"], ["HS256"], ["RS256", "HS512"], []])
def test_symmetric_or_none_id_token_algorithms_are_refused_at_start_up(algs: list[str]) -> None:
    with pytest.raises(SparkConfigError, match="SPARK_ID_TOKEN_ALGORITHMS"):
        production(SPARK_ID_TOKEN_ALGORITHMS=algs)


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("SPARK_ISSUER", "http://idp.example"),
        ("SPARK_API_BASE_URL", "http://api.example/v1/"),
        ("SPARK_RESO_BASE_URL", "http://api.example/Reso/OData/"),
        ("SPARK_TOKEN_ENDPOINT", "http://idp.example/token"),
        ("SPARK_REDIRECT_URI", "http://app.example/spark/callback"),
    ],
)
def test_plain_http_to_a_remote_host_is_refused_at_start_up(key: str, url: str) -> None:
    with pytest.raises(SparkConfigError, match="HTTPS"):
        production(**{key: url})


@pytest.mark.parametrize("host", ["127.0.0.1:5001", "localhost:8000", "[::1]:5001", "127.9.9.9"])
def test_plain_http_to_loopback_is_allowed(host: str) -> None:
    cfg = production(SPARK_ISSUER=f"http://{host}", SPARK_API_BASE_URL=f"http://{host}/v1")
    assert cfg.api_base_url == f"http://{host}/v1/"


def test_unknown_keys_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flask_spark"):
        production(SPARK_CLIENTID="typo")
    assert "SPARK_CLIENTID" in caplog.text


def test_environment_strings_are_coerced() -> None:
    cfg = production(SPARK_HTTP_TIMEOUT="2.5", SPARK_RETRY_MAX="5", SPARK_SINGLE_LOGOUT="true")
    assert cfg.http_timeout == 2.5
    assert cfg.retry_max == 5
    assert cfg.single_logout is True


@pytest.mark.parametrize("value", ["-1", "soon", True])
def test_bad_numbers_name_the_key(value: Any) -> None:
    with pytest.raises(SparkConfigError, match="SPARK_HTTP_TIMEOUT"):
        production(SPARK_HTTP_TIMEOUT=value)


def test_bad_auth_method_and_format() -> None:
    with pytest.raises(SparkConfigError, match="client_secret_basic"):
        production(SPARK_TOKEN_ENDPOINT_AUTH_METHOD="private_key_jwt")
    with pytest.raises(SparkConfigError, match="SPARK_TOKEN_REQUEST_FORMAT"):
        production(SPARK_TOKEN_REQUEST_FORMAT="xml")


def test_issuer_is_derived_from_a_standard_discovery_url() -> None:
    cfg = production(SPARK_DISCOVERY_URL="https://idp.example/t1/.well-known/openid-configuration")
    assert cfg.issuer == "https://idp.example/t1"
    with pytest.raises(SparkConfigError, match="SPARK_ISSUER"):
        production(SPARK_DISCOVERY_URL="https://idp.example/metadata.json")


def test_issuer_is_compared_verbatim_but_discovery_has_no_double_slash() -> None:
    cfg = production(SPARK_ISSUER="https://idp.example/")
    assert cfg.issuer == "https://idp.example/"  # as an OP with a trailing slash publishes it
    assert cfg.discovery_url == "https://idp.example/.well-known/openid-configuration"


def test_defaults_are_spark_production() -> None:
    cfg = production()
    assert cfg.issuer == "https://sparkplatform.com"
    assert cfg.discovery_url == "https://sparkplatform.com/.well-known/openid-configuration"
    assert cfg.api_base_url == "https://sparkapi.com/v1/"
    assert cfg.reso_base_url == "https://sparkapi.com/Reso/OData/"
    assert cfg.scope == "openid"
    assert cfg.token_endpoint_auth_method == "client_secret_post"
    assert cfg.token_request_format == "form"
    assert cfg.use_pkce is True
    assert cfg.required_claims == ("sub",)
    assert cfg.store_logout_origins == ("https://sparkplatform.com",)
    assert cfg.store_logout_verify is True
    assert cfg.store_logout_confirm is True
    assert cfg.post_logout_redirect_uri is None  # the redirect URI, as Spark requires


def test_settings_for_unpublished_facts_from_environment_strings() -> None:
    cfg = production(
        SPARK_USE_PKCE="false",
        SPARK_REQUIRED_CLAIMS="sub, MemberMlsId",
        SPARK_STORE_LOGOUT_ORIGINS="https://SparkPlatform.com:443/openid, https://x.example:8443",
    )
    assert cfg.use_pkce is False
    assert cfg.required_claims == ("sub", "MemberMlsId")
    assert cfg.store_logout_origins == ("https://sparkplatform.com", "https://x.example:8443")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SPARK_REQUIRED_CLAIMS", [""]),
        ("SPARK_REQUIRED_CLAIMS", {"sub": True}),
        ("SPARK_STORE_LOGOUT_ORIGINS", ["sparkplatform.com"]),
        ("SPARK_STORE_LOGOUT_ORIGINS", "ftp://sparkplatform.com"),
        ("SPARK_STORE_LOGOUT_ORIGINS", 5),
    ],
)
def test_bad_unpublished_fact_settings_name_the_key(key: str, value: Any) -> None:
    with pytest.raises(SparkConfigError, match=key):
        production(**{key: value})


def test_every_key_has_a_default_and_a_doc() -> None:
    for key, (_default, doc) in DEFAULTS.items():
        assert key.startswith("SPARK_")
        assert doc.strip()


def test_init_app_fails_fast_with_the_key_named() -> None:
    app = Flask(__name__)
    app.config.update({**BASE, "SPARK_CLIENT_ID": None})
    with pytest.raises(SparkConfigError, match="SPARK_CLIENT_ID"):
        SparkAuth(app)


def test_refresh_lock_must_outlive_a_slow_refresh() -> None:
    with pytest.raises(SparkConfigError, match="SPARK_LOCK_TIMEOUT"):
        production(SPARK_HTTP_TIMEOUT=10, SPARK_LOCK_TIMEOUT=15)
    assert production(SPARK_HTTP_TIMEOUT=5, SPARK_LOCK_TIMEOUT=15).lock_timeout == 15

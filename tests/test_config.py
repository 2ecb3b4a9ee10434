"""Configuration: every mistake is reported at init_app, naming the key to set."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

import flask_spark
from flask_spark import SparkAuth
from flask_spark.core.config import DEFAULTS, REMOVED, load_config
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


@pytest.mark.parametrize("agent", [" padded", "caf\u00e9", "two\nlines"])
def test_a_user_agent_that_is_no_header_value_is_refused(agent: str) -> None:
    with pytest.raises(SparkConfigError, match="SPARK_USER_AGENT must be printable ASCII"):
        production(SPARK_USER_AGENT=agent)


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("SPARK_ISSUER", "http://idp.example"),
        ("SPARK_API_BASE_URL", "http://api.example/v1/"),
        ("SPARK_RESO_BASE_URL", "http://api.example/Reso/OData/"),
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
    cfg = production(
        SPARK_HTTP_TIMEOUT="2.5", SPARK_SESSION_LIFETIME="900", SPARK_SINGLE_LOGOUT="on"
    )
    assert cfg.http_timeout == 2.5
    assert cfg.session_lifetime == 900
    assert cfg.single_logout is True


@pytest.mark.parametrize("value", ["-1", "soon", True, 0])
def test_bad_numbers_name_the_key(value: Any) -> None:
    with pytest.raises(SparkConfigError, match="SPARK_HTTP_TIMEOUT"):
        production(SPARK_HTTP_TIMEOUT=value)


def test_bad_options_are_refused() -> None:
    with pytest.raises(SparkConfigError, match="client_secret_basic"):
        production_with(token_endpoint_auth_method="private_key_jwt")
    with pytest.raises(SparkConfigError, match="token_request_format"):
        production_with(token_request_format="xml")
    with pytest.raises(SparkConfigError, match="retry_maximum"):
        production_with(retry_maximum=2)


def production_with(**options: Any) -> Any:
    return load_config(BASE, debug=False, testing=False, options=options)


@pytest.mark.parametrize("algs", [["none"], ["HS256"], ["RS256", "HS512"], []])
def test_symmetric_or_none_id_token_algorithms_are_refused_at_start_up(algs: list[str]) -> None:
    with pytest.raises(SparkConfigError, match="id_token_algorithms"):
        production_with(id_token_algorithms=algs)


def test_options_replace_the_fixed_values() -> None:
    cfg = production_with(retry_max=0, use_pkce=False, id_token_algorithms=["ES256"])
    assert (cfg.retry_max, cfg.use_pkce, cfg.id_token_algorithms) == (0, False, ("ES256",))
    with pytest.raises(SparkConfigError, match="HTTPS"):
        production_with(token_endpoint="http://idp.example/token")


def test_spark_auth_passes_its_options() -> None:
    app = Flask(__name__)
    app.config.update({**BASE, "TESTING": True})
    spark = SparkAuth(app, retry_max=0, transaction_ttl=90)
    assert spark.state(app).config.retry_max == 0
    assert spark.state(app).config.transaction_ttl == 90


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


def test_required_claims_and_store_origins_from_strings() -> None:
    cfg = load_config(
        {**BASE, "SPARK_REQUIRED_CLAIMS": "sub, MemberMlsId"},
        debug=False,
        testing=False,
        options={"store_logout_origins": ["https://SparkPlatform.com:443/openid"]},
    )
    assert cfg.required_claims == ("sub", "MemberMlsId")
    assert cfg.store_logout_origins == ("https://sparkplatform.com",)
    with pytest.raises(SparkConfigError, match="store_logout_origins"):
        production_with(store_logout_origins=["sparkplatform.com"])


@pytest.mark.parametrize("value", [[""], {"sub": True}])
def test_bad_required_claims_name_the_key(value: Any) -> None:
    with pytest.raises(SparkConfigError, match="SPARK_REQUIRED_CLAIMS"):
        production(SPARK_REQUIRED_CLAIMS=value)


def test_every_key_has_a_default_and_a_doc() -> None:
    for key, (_default, doc) in DEFAULTS.items():
        assert key.startswith("SPARK_")
        assert doc.strip()


def test_init_app_fails_fast_with_the_key_named() -> None:
    app = Flask(__name__)
    app.config.update({**BASE, "SPARK_CLIENT_ID": None})
    with pytest.raises(SparkConfigError, match="SPARK_CLIENT_ID"):
        SparkAuth(app)


def test_refresh_lock_is_derived_from_the_http_timeout() -> None:
    cfg = production(SPARK_HTTP_TIMEOUT=5)
    assert (cfg.lock_timeout, cfg.lock_wait) == (15, 15)


#: Every setting of the unreleased development versions that is no longer a key.
FORMER_KEYS = {
    **REMOVED,
    "SPARK_SESSION_IDLE_TIMEOUT": "Flask's PERMANENT_SESSION_LIFETIME",
    "SPARK_SESSION_KEY_PREFIX": "Flask-Session's SESSION_KEY_PREFIX",
    "SPARK_REDIS": "Flask-Session's SESSION_REDIS",
    "SPARK_DISCOVERY_URL": "SPARK_ISSUER (discovery is read at the issuer's well-known path)",
    "SPARK_LOCK_TIMEOUT": "3 x SPARK_HTTP_TIMEOUT, derived",
    "SPARK_LOCK_WAIT": "3 x SPARK_HTTP_TIMEOUT, derived",
    **{
        f"SPARK_{name.upper()}": f"SparkAuth(app, {name}=...)"
        for name in [
            "authorization_endpoint",
            "token_endpoint",
            "userinfo_endpoint",
            "revocation_endpoint",
            "jwks_uri",
            "logout_endpoint",
            "token_endpoint_auth_method",
            "token_request_format",
            "use_pkce",
            "id_token_algorithms",
            "clock_skew",
            "fetch_userinfo",
            "post_logout_redirect_uri",
            "store_logout_origins",
            "store_logout_verify",
            "store_logout_confirm",
            "revoke_at_provider_page",
            "delete_token_at_api",
            "transaction_ttl",
            "refresh_skew",
            "retry_max",
            "retry_backoff",
            "retry_max_time",
        ]
    },
}


def test_the_former_keys_add_up_to_the_fifty() -> None:
    assert len(FORMER_KEYS) + len(DEFAULTS) == 50


@pytest.mark.parametrize(("key", "replacement"), sorted(FORMER_KEYS.items()))
def test_a_removed_key_is_refused_naming_its_replacement(key: str, replacement: str) -> None:
    with pytest.raises(SparkConfigError) as caught:
        production(**{key: "anything"})
    assert caught.value.message == f"{key} was removed: use {replacement}."


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SparkConfigError) as caught:
        production(
            SPARK_CLIENT_SECRET=None,
            SPARK_REDIS_URL=None,
            SPARK_URL_PREFIX="spark",
            SPARK_API_BASE_URL="http://api.example/v1/",
        )
    lines = caught.value.message.splitlines()
    assert len(lines) == 4
    assert [line.split()[0] for line in lines] == [
        "SPARK_CLIENT_SECRET",
        "SPARK_REDIS_URL",
        "SPARK_URL_PREFIX",
        "SPARK_API_BASE_URL",
    ]


def test_flask_and_flask_session_settings_are_used() -> None:
    client = object()
    cfg = production(
        SESSION_REDIS=client,
        SESSION_KEY_PREFIX="shop:",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=30),
        SPARK_REDIS_URL=None,
    )
    assert cfg.redis is client


def test_the_runtime_library_has_at_most_25_settings() -> None:
    """Every SPARK_ name in the runtime library (settings and removed ones) counts."""
    root = Path(flask_spark.__file__).parent
    names = {
        name
        for path in root.rglob("*.py")
        if not {"sandbox", "testing"} & set(path.relative_to(root).parts)
        for name in re.findall(r"\bSPARK_[A-Z0-9_]+\b", path.read_text())
    }
    assert names <= set(DEFAULTS) | set(FORMER_KEYS)
    assert len(names) <= 25


def test_an_app_without_any_spark_setting_keeps_its_own_commands_and_tests(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """flaskr's ``init-db`` and its own tests, in production mode, where no SPARK_* is set."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY="dev")
    with caplog.at_level(logging.WARNING, logger="flask_spark"):
        SparkAuth(app)
    assert "flask-spark is not configured here: SPARK_CLIENT_ID is not set" in caplog.text

    @app.get("/")
    def index() -> str:
        return "the app's own page"

    @app.cli.command("init-db")
    def init_db() -> None:
        print("Initialized the database.")

    assert app.test_client().get("/").get_data(as_text=True) == "the app's own page"
    assert app.test_cli_runner().invoke(args=["init-db"]).output == "Initialized the database.\n"
    with app.app_context(), pytest.raises(SparkConfigError, match="SPARK_CLIENT_ID is not set"):
        SparkAuth().state()
    doctor = app.test_cli_runner().invoke(args=["spark", "doctor"])
    assert doctor.exit_code == 1
    assert "SPARK_TOKEN_KEYS is not set" in doctor.output


def test_an_app_with_some_spark_settings_still_fails_at_init() -> None:
    app = Flask(__name__)
    app.config.update(SPARK_CLIENT_ID="id")
    with pytest.raises(SparkConfigError, match="SPARK_CLIENT_SECRET is not set"):
        SparkAuth(app)


def test_the_two_prefixes_cover_every_key_written(
    config: dict[str, Any], sandbox: Any, redis_client: Any, key_prefix: str
) -> None:
    """SPARK_KEY_PREFIX prefixes every key flask-spark writes; SESSION_KEY_PREFIX the sessions."""
    from .conftest import make_app
    from .helpers import FlowClient

    ours, sessions = key_prefix + "spark:", key_prefix + "sessions:"
    app = make_app({**config, "SPARK_KEY_PREFIX": ours, "SESSION_KEY_PREFIX": sessions})
    flow = FlowClient(app, sandbox)
    flow.login()
    assert flow.get("/dashboard").status_code == 200
    written = [k.decode() for k in redis_client.scan_iter(match=key_prefix + "*")]
    assert written
    assert all(k.startswith((ours, sessions)) for k in written), written
    assert any(k.startswith(sessions) for k in written)
    assert any(k.startswith(ours) for k in written)


def test_a_spark_command_on_an_app_without_its_settings_says_what_to_set() -> None:
    app = Flask(__name__)
    SparkAuth(app)
    result = app.test_cli_runner().invoke(args=["spark", "rotate-keys"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.startswith("Error: SPARK_CLIENT_ID is not set.")

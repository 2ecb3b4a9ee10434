"""The checks behind ``flask spark doctor``: each says OK, WARN or FAIL, and what to fix.

:func:`run_checks` checks an app whose ``SparkAuth`` initialised; :func:`diagnose` loads the app
first and turns a configuration error raised while loading (``SparkAuth(app)`` validates the
configuration at init) into a precise FAIL row instead of a traceback.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

from ..core.config import DEFAULTS, load_config
from ..core.errors import SparkConfigError, SparkError
from ..core.http import is_loopback_host
from ..core.oidc import OIDCClient
from ..core.redis_client import REDIS_DOWN

Status = Literal["OK", "WARN", "FAIL"]

#: The user agent flask-spark sends when SPARK_USER_AGENT is unset (debug/testing only).
PLACEHOLDER_USER_AGENT = "flask-spark-dev"

PROXY_FIX_HINT = (
    "Behind a TLS-terminating proxy (nginx, a load balancer, Heroku...), wrap the app so it sees "
    "the original scheme and host: `from werkzeug.middleware.proxy_fix import ProxyFix; "
    "app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)`."
)


@dataclass(frozen=True)
class CheckResult:
    """One row of the doctor's table."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        """False only for a FAIL (a WARN is fine for development, not for production)."""
        return self.status != "FAIL"


class Fail(Exception):
    """Raised by a check: what is wrong (``detail``) and what to do about it (``fix``)."""

    status: Status = "FAIL"

    def __init__(self, detail: str, fix: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


class Warn(Fail):
    """A check that passes only because the app runs in debug or testing."""

    status: Status = "WARN"


def _run(name: str, check: Callable[[], str]) -> CheckResult:
    try:
        return CheckResult(name, "OK", check())
    except Fail as exc:
        return CheckResult(name, exc.status, exc.detail, exc.fix)
    except SparkError as exc:
        return CheckResult(name, "FAIL", exc.message)
    except Exception as exc:  # a check must never crash the table
        return CheckResult(name, "FAIL", f"{type(exc).__name__}: {exc}")


def config_error(exc: SparkConfigError) -> CheckResult:
    """The configuration row for an app whose ``SparkAuth`` refused its configuration."""
    return CheckResult(
        "configuration",
        "FAIL",
        exc.message,
        "Fix the SPARK_* key named above (every key is listed in the configuration reference), "
        "then run `flask spark doctor` again.",
    )


def diagnose(load_app: Callable[[], Flask]) -> tuple[Flask | None, list[CheckResult]]:
    """Load the app and check it; a configuration error while loading is one FAIL row.

    flask-spark's own warnings while loading and checking (the debug-only key and Redis,
    unknown keys...) are held back: each has its row in the table, and is said once there.
    """
    with _rows_only():
        try:
            app = load_app()
        except SparkConfigError as exc:
            return None, [config_error(exc)]
        with app.app_context():
            return app, run_checks(app)


@contextmanager
def _rows_only() -> Iterator[None]:
    """Drop flask-spark's log warnings (not its errors) for the duration."""
    logger = logging.getLogger("flask_spark")

    def below_error(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR

    logger.addFilter(below_error)
    try:
        yield
    finally:
        logger.removeFilter(below_error)


def run_checks(app: Flask) -> list[CheckResult]:
    """Every check against ``app`` (call inside its app context)."""
    state = app.extensions.get("spark.state")
    if state is None:
        return [
            CheckResult(
                "configuration",
                "FAIL",
                "flask-spark is not initialised on this app.",
                "Call SparkAuth(app), or spark.init_app(app) in your app factory.",
            )
        ]
    checks: list[tuple[str, Callable[[], str]]] = [
        ("configuration", lambda: _check_config(app)),
        ("redis", lambda: _check_redis(state)),
        ("token keys", lambda: _check_keys(state)),
        ("discovery", lambda: _check_discovery(state)),
        ("provider features", lambda: _check_provider_features(app, state)),
        ("redirect uri", lambda: _check_redirect_uri(app, state)),
        ("user agent", lambda: _check_user_agent(state)),
        ("session cookie", lambda: _check_cookie(app, state)),
    ]
    return [_run(name, check) for name, check in checks]


# -- the checks ------------------------------------------------------------------------------


def _mode(app: Flask) -> str:
    if app.debug:
        return "debug"
    return "testing" if app.testing else "production"


def _check_config(app: Flask) -> str:
    """Validate the SPARK_* keys again (they may have changed since init) and spot typos."""
    try:
        cfg = load_config(
            app.config, debug=app.debug, testing=app.testing, instance_path=app.instance_path
        )
    except SparkConfigError as exc:
        raise Fail(exc.message, "Fix the SPARK_* key named above.") from None
    unknown = sorted(k for k in app.config if k.startswith("SPARK_") and k not in DEFAULTS)
    if unknown:
        raise Warn(
            f"unknown keys {', '.join(unknown)} are ignored",
            "Check their spelling against the configuration reference.",
        )
    state = app.extensions["spark.state"]
    if "csrf" in app.extensions and not state.backchannel_csrf_exempt:
        raise Warn(
            "Flask-WTF's CSRFProtect was set up after SparkAuth(app): unless exempted, it "
            "refuses the provider's back-channel logout (a server-to-server POST)",
            "Set up CSRFProtect(app) before SparkAuth(app), or call "
            "csrf.exempt('flask_spark.ext.views.backchannel_logout').",
        )
    given = sum(1 for k in DEFAULTS if app.config.get(k) is not None)
    return f"valid ({given} SPARK_* keys set, {_mode(app)} mode); issuer {cfg.issuer}"


def _redacted(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _check_redis(state: Any) -> str:
    cfg = state.config
    where = (
        "the SPARK_REDIS client"
        if cfg.redis is not None
        else _redacted(cfg.redis_url)
        if cfg.redis_url
        else f"the embedded development Redis in {state.app.instance_path}"
    )
    probe = f"{cfg.key_prefix}doctor:{secrets.token_hex(8)}"
    try:
        state.redis.set(probe, b"1", ex=30)
        state.redis.delete(probe)
    except REDIS_DOWN as exc:
        raise Fail(
            f"cannot reach {where} ({type(exc).__name__}: {exc})",
            "Start Redis, or point SPARK_REDIS_URL at it (redis://host:6379/0; rediss:// for TLS).",
        ) from None
    except Exception as exc:
        raise Fail(
            f"{where} refused a write ({type(exc).__name__}: {exc})",
            "flask-spark needs read-write access: check the Redis user's ACL and that the URL "
            "names the primary, not a read-only replica.",
        ) from None
    if cfg.redis is None and not cfg.redis_url:
        raise Warn(
            f"reachable: {where} started because SPARK_REDIS_URL is not set (debug/testing only)",
            "Set SPARK_REDIS_URL to your Redis server before deploying.",
        )
    return f"reachable and writable: {where}"


def _check_keys(state: Any) -> str:
    cfg = state.config
    fix = (
        "Run `flask spark keygen` and set SPARK_TOKEN_KEYS to the key: "
        f"{_setting_hint(state.app, 'SPARK_TOKEN_KEYS', '<key>', ['<key>'])}."
    )
    if cfg.dev_key_file:
        raise Warn(
            f"SPARK_TOKEN_KEYS is not set: the development key kept in {cfg.dev_key_file} is in "
            "use (debug only); sign-ins survive restarts of this app",
            fix,
        )
    if cfg.ephemeral_key:
        raise Warn(
            "SPARK_TOKEN_KEYS is not set: an ephemeral key is in use (debug/testing only); "
            "sessions end at every restart and are not shared between worker processes",
            fix,
        )
    state.vault.seal_probe()
    count = len(cfg.token_keys)
    if count == 1:
        return "1 Fernet key: encrypts and decrypts"
    return (
        f"{count} Fernet keys: the first encrypts, all decrypt "
        "(run `flask spark rotate-keys`, then drop the old keys)"
    )


def _setting_hint(app: Flask, key: str, shell_value: str, python_value: Any) -> str:
    """How to set ``key`` where this app's settings live: the shell when its ``SPARK_*`` keys
    come from the environment, Python when they are set in code, else both ways."""
    shell = f"`export {key}={shell_value}` in the shell"
    python = f"`app.config[{key!r}] = {python_value!r}` in Python"
    given = {k: v for k, v in app.config.items() if k.startswith("SPARK_") and v is not None}
    if key in given:
        return shell if os.environ.get(key) == given[key] else python
    from_env = [k for k, v in given.items() if os.environ.get(k) == v]
    if from_env and len(from_env) == len(given):
        return shell
    if given and not from_env:
        return python
    return f"{shell}, or {python}"


def _check_discovery(state: Any) -> str:
    cfg = state.config
    client = OIDCClient(cfg)  # a fresh client: never an answer cached by the app
    try:
        meta = client.metadata()
        keys = client.jwks()
    except SparkError as exc:
        if getattr(exc, "error", None) == "discovery_issuer_mismatch":
            fix = (
                f"SPARK_ISSUER ({cfg.issuer}) must be exactly the issuer the provider announces "
                f"at {cfg.discovery_url}. If both point at your provider, correct SPARK_ISSUER; "
                "otherwise the discovery URL serves someone else's document: do not trust it."
            )
        else:
            fix = (
                f"Check SPARK_ISSUER / SPARK_DISCOVERY_URL ({cfg.discovery_url}) and that this "
                "host can reach the provider (firewall, outbound proxy)."
            )
        raise Fail(exc.message, fix) from None
    count = len(getattr(keys, "keys", []) or [])
    return (
        f"issuer {meta['issuer']} matches; token endpoint {meta['token_endpoint']}; "
        f"{count} signing key(s)"
    )


def _advertised(meta: dict[str, Any], key: str) -> list[str] | None:
    """A list-valued discovery entry, or None when the provider does not publish it."""
    value = meta.get(key)
    return [str(v) for v in value] if isinstance(value, list) else None


def _check_provider_features(app: Flask, state: Any) -> str:
    """Compare what this app will do with what the provider's discovery document advertises.

    Spark publishes less than a generic provider (no PKCE, no logout channels, no ``sid``): each
    setting that relies on something unadvertised is a WARN naming the setting to change (PKCE,
    on by default and harmless where ignored, is only noted).
    """
    cfg = state.config
    client = OIDCClient(cfg)
    try:
        client.metadata()
        meta = client.published_metadata()
    except SparkError:
        raise Warn(
            "not checked: the discovery document could not be read (see discovery)"
        ) from None
    warnings: list[str] = []
    fixes: list[str] = []
    pkce = ""
    if cfg.use_pkce and "S256" not in (_advertised(meta, "code_challenge_methods_supported") or []):
        # Not a warning: the default, harmless where ignored (FBS's own PHP client omits it).
        pkce = (
            "; PKCE is sent but not advertised (a provider without it ignores it; if sign-in "
            "fails with invalid_request, set SPARK_USE_PKCE = False)"
        )
    if cfg.single_logout and not (cfg.logout_endpoint or meta.get("end_session_endpoint")):
        warnings.append(
            "single logout is on (SPARK_SINGLE_LOGOUT) but the provider advertises no "
            f"end_session_endpoint; it goes to {cfg.issuer.rstrip('/')}/openid/logout, the URL "
            "FBS's own clients use"
        )
        fixes.append("Try a sign-out against the provider, or set SPARK_LOGOUT_ENDPOINT.")
    if cfg.single_logout and cfg.post_logout_redirect_uri:
        redirect_uri = cfg.redirect_uri or _callback_url(app)
        if cfg.post_logout_redirect_uri != redirect_uri:
            warnings.append(
                f"SPARK_POST_LOGOUT_REDIRECT_URI ({cfg.post_logout_redirect_uri}) is not the "
                f"redirect URI ({redirect_uri}); Spark says they must match"
            )
            fixes.append("Unset SPARK_POST_LOGOUT_REDIRECT_URI (it defaults to the redirect URI).")
    if not meta.get("backchannel_logout_supported") and not meta.get(
        "frontchannel_logout_supported"
    ):
        channels = (
            "no front- or back-channel logout is advertised: /spark/single-logout and "
            "/spark/backchannel-logout will not be called; sign-outs at the provider reach this "
            "app only through the Spark Store Single Logout URI (/spark/store-logout)"
        )
    else:
        channels = "front- or back-channel logout advertised"
    scopes = _advertised(meta, "scopes_supported")
    unknown = [s for s in cfg.scope.split() if scopes is not None and s not in scopes]
    if unknown:
        warnings.append(f"requested scopes {', '.join(unknown)} are not in scopes_supported")
        fixes.append("Check SPARK_SCOPE against the provider's scopes_supported.")
    claims = _advertised(meta, "claims_supported")
    missing = [c for c in cfg.required_claims if claims is not None and c not in claims]
    if missing:
        warnings.append(f"required claims {', '.join(missing)} are not in claims_supported")
        fixes.append("Check SPARK_REQUIRED_CLAIMS: a sign-in without them is refused.")
    methods = _advertised(meta, "token_endpoint_auth_methods_supported")
    if methods is not None and cfg.token_endpoint_auth_method not in methods:
        warnings.append(
            f"SPARK_TOKEN_ENDPOINT_AUTH_METHOD {cfg.token_endpoint_auth_method} is not among "
            f"{', '.join(methods)}"
        )
        fixes.append("Use one of the provider's token_endpoint_auth_methods_supported.")
    algs = _advertised(meta, "id_token_signing_alg_values_supported")
    if algs is not None and not set(cfg.id_token_algorithms) & set(algs):
        warnings.append(f"SPARK_ID_TOKEN_ALGORITHMS share nothing with {', '.join(algs)}")
        fixes.append("Allow one of the provider's id_token_signing_alg_values_supported.")
    if warnings:
        raise Warn("; ".join(warnings) + f"; {channels}{pkce}", " ".join(fixes))
    return f"the provider advertises what this configuration uses; {channels}{pkce}"


def _callback_url(app: Flask) -> str:
    with app.test_request_context():
        return str(url_for("spark.callback", _external=True))


def _behind_proxy_fix(app: Flask) -> bool:
    """True when ``app.wsgi_app`` is (or wraps) werkzeug's ``ProxyFix``."""
    wsgi: Any = app.wsgi_app
    for _ in range(10):
        if isinstance(wsgi, ProxyFix):
            return True
        wsgi = getattr(wsgi, "app", None) or getattr(wsgi, "wsgi_app", None)
        if wsgi is None:
            return False
    return False


def _callback_path(app: Flask) -> str:
    with app.test_request_context():
        return str(url_for("spark.callback"))


def _check_redirect_uri(app: Flask, state: Any) -> str:
    cfg = state.config
    proxied = _behind_proxy_fix(app)
    if cfg.redirect_uri:
        uri, source = cfg.redirect_uri, "SPARK_REDIRECT_URI"
    elif app.config.get("SERVER_NAME"):
        with app.test_request_context():  # shaped by SERVER_NAME and PREFERRED_URL_SCHEME
            uri = str(url_for("spark.callback", _external=True))
        source = "SERVER_NAME and PREFERRED_URL_SCHEME"
    else:
        example = f"http(s)://<host>{_callback_path(app)}"
        if cfg.require_https and not proxied:
            raise Warn(
                f"derived from each request's host and scheme ({example}); if a proxy terminates "
                "TLS, the app sees http:// and the sign-in refuses to start",
                "Set SPARK_REDIRECT_URI to the exact URI registered with your key (or "
                "SERVER_NAME and PREFERRED_URL_SCHEME='https'). " + PROXY_FIX_HINT,
            )
        via = "; ProxyFix is installed: the proxy's X-Forwarded-Proto/Host count" if proxied else ""
        return f"derived from each request's host and scheme ({example}){via}"
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Fail(
            f"{uri!r} (from {source}) is not an absolute http(s) URL",
            f"Set SPARK_REDIRECT_URI to the full URL of the callback, e.g. "
            f"https://app.example.com{_callback_path(app)}.",
        )
    if parts.fragment:
        raise Fail(
            f"{uri} (from {source}) has a #fragment, which OAuth forbids in a redirect URI",
            "Remove the fragment.",
        )
    plain_http = parts.scheme != "https" and not is_loopback_host(parts.hostname)
    if plain_http and cfg.require_https:
        raise Fail(
            f"{uri} (from {source}) is not HTTPS; outside debug the sign-in refuses it and the "
            "provider sends the authorization code in the clear",
            "Serve the app over HTTPS and make the URI https:// (SPARK_REDIRECT_URI, or "
            "PREFERRED_URL_SCHEME='https' with SERVER_NAME). " + PROXY_FIX_HINT,
        )
    if plain_http:
        raise Warn(
            f"{uri} (from {source}) is plain HTTP on a non-loopback host: accepted only in "
            "debug/testing",
            "Use an https:// redirect URI in production. " + PROXY_FIX_HINT,
        )
    path = _callback_path(app)
    if parts.path != path:
        raise Warn(
            f"{uri} (from {source}) does not end at this app's callback route {path}",
            "Unless you route that path to the callback yourself, make the URI end with "
            f"{path} (it depends on SPARK_URL_PREFIX).",
        )
    return f"{uri} (from {source}; register exactly this with your key)"


def _check_user_agent(state: Any) -> str:
    agent = state.config.user_agent
    if agent == PLACEHOLDER_USER_AGENT:
        raise Warn(
            f"SPARK_USER_AGENT is not set: sending the placeholder {agent!r} (debug/testing only)",
            "Set SPARK_USER_AGENT to your application's name: the Spark API refuses calls "
            "without an X-SparkApi-User-Agent header (code 1016).",
        )
    if not agent.isascii() or not agent.isprintable() or agent != agent.strip():
        raise Fail(
            f"SPARK_USER_AGENT {agent!r} is not a valid header value",
            "Use printable ASCII without line breaks or surrounding spaces.",
        )
    return f"X-SparkApi-User-Agent: {agent}"


def _check_cookie(app: Flask, state: Any) -> str:
    cfg = state.config
    flags = []
    if app.config.get("SESSION_COOKIE_SECURE"):
        flags.append("Secure")
    if app.config.get("SESSION_COOKIE_HTTPONLY"):
        flags.append("HttpOnly")
    samesite = app.config.get("SESSION_COOKIE_SAMESITE")
    if samesite:
        flags.append(f"SameSite={samesite}")
    shown = ", ".join(flags) or "no flags"
    if not app.config.get("SESSION_COOKIE_HTTPONLY"):
        raise Fail(
            f"the session cookie is readable by page scripts ({shown})",
            "Remove SESSION_COOKIE_HTTPONLY = False.",
        )
    if cfg.require_https and not app.config.get("SESSION_COOKIE_SECURE"):
        raise Fail(
            f"the session cookie may be sent over plain HTTP ({shown})",
            "Remove SESSION_COOKIE_SECURE = False (flask-spark sets it outside debug).",
        )
    if str(samesite).lower() == "strict":
        raise Fail(
            f"SameSite=Strict ({shown}): the browser does not send the cookie when the provider "
            "redirects back, so every sign-in fails its state check",
            "Use SESSION_COOKIE_SAMESITE = 'Lax' (the default flask-spark sets).",
        )
    if str(samesite).lower() != "lax":
        raise Warn(
            f"SameSite is {samesite!r} ({shown}): other sites' requests carry the session cookie",
            "Use SESSION_COOKIE_SAMESITE = 'Lax' (the default flask-spark sets).",
        )
    chosen = state.cookie_defaults
    if chosen:
        set_here = ", ".join(f"{k}={v!r}" for k, v in sorted(chosen.items()))
        return f"{shown} (flask-spark set {set_here}: the app had left Flask's default)"
    return f"{shown} (as the app configured it)"

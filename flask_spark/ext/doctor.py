"""The checks behind ``flask spark doctor``: each row says OK, WARN or FAIL, and what to fix."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, url_for
from werkzeug.middleware.proxy_fix import ProxyFix

from ..core.config import load_config, unknown_keys
from ..core.errors import SparkConfigError, SparkError
from ..core.http import is_loopback_host
from ..core.oidc import OIDCClient
from ..core.redis_client import REDIS_DOWN

Status = Literal["OK", "WARN", "FAIL"]

PROXY_FIX_HINT = (
    "Behind a TLS-terminating proxy (nginx, a load balancer, Heroku...), wrap the app so it sees "
    "the original scheme and host: `from werkzeug.middleware.proxy_fix import ProxyFix; "
    "app.wsgi_app = ProxyFix(app.wsgi_app, x_proto=1, x_host=1)`."
)
_CONFIG_FIX = "Fix the setting named above, then run `flask spark doctor` again."


@dataclass(frozen=True)
class CheckResult:
    """One row of the doctor's table."""

    name: str
    status: Status
    detail: str
    fix: str = ""


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


def config_errors(exc: SparkConfigError) -> list[CheckResult]:
    """One FAIL row per configuration problem."""
    lines = exc.message.split("\n")
    return [CheckResult("configuration", "FAIL", line, _CONFIG_FIX) for line in lines]


def diagnose(load_app: Callable[[], Flask]) -> list[CheckResult]:
    """Load the app and check it; configuration errors while loading are FAIL rows.

    flask-spark's own log warnings (the debug-only key and Redis, unknown keys...) are held back
    meanwhile: each has its row in the table, and is said once there.
    """
    logger = logging.getLogger("flask_spark")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        app = load_app()
        with app.app_context():
            return run_checks(app)
    except SparkConfigError as exc:
        return config_errors(exc)
    finally:
        logger.setLevel(level)


def run_checks(app: Flask) -> list[CheckResult]:
    """Every check against ``app`` (call inside its app context)."""
    state = app.extensions.get("spark.state")
    try:
        if state is None:
            raise app.extensions.get("spark.unconfigured") or SparkConfigError(
                "flask-spark is not initialised on this app: call SparkAuth(app), or "
                "spark.init_app(app) in your app factory."
            )
        load_config(  # again: the settings may have changed since init_app
            app.config,
            debug=app.debug,
            testing=app.testing,
            instance_path=app.instance_path,
            options=app.extensions["spark"].options,
        )
    except SparkConfigError as exc:
        return config_errors(exc)
    checks: list[tuple[str, Callable[[], str]]] = [
        ("configuration", lambda: _check_config(app, state)),
        ("redis", lambda: _check_redis(state)),
        ("token keys", lambda: _check_keys(state)),
        ("discovery", lambda: _check_discovery(state)),
        ("provider features", lambda: _check_provider_features(state)),
        ("redirect uri", lambda: _check_redirect_uri(app, state)),
        ("user agent", lambda: _check_user_agent(state)),
        ("session cookie", lambda: _check_cookie(app, state)),
    ]
    return [_run(name, check) for name, check in checks]


def _world(url: str) -> str:
    """Which platform a URL belongs to: Spark's production, this machine, or another host."""
    host = urlsplit(url).hostname or ""
    if host == "sparkplatform.com" or host.endswith(("sparkapi.com", ".sparkplatform.com")):
        return "Spark's production"
    return "this machine (a sandbox)" if is_loopback_host(host) else "another host"


def _check_config(app: Flask, state: Any) -> str:
    """Settings that disagree with each other, typos, and Flask-WTF's CSRFProtect order."""
    cfg = state.config
    urls = {
        "SPARK_ISSUER": cfg.issuer,
        "SPARK_API_BASE_URL": cfg.api_base_url,
        "SPARK_RESO_BASE_URL": cfg.reso_base_url,
    }
    worlds = {key: _world(url) for key, url in urls.items()}
    if len(set(worlds.values())) > 1:
        raise Fail(
            "the settings point at different platforms: "
            + "; ".join(f"{key} {urls[key]} is on {worlds[key]}" for key in urls)
            + "; tokens from one issuer are refused by another platform's API",
            "Point all three at the same platform (`flask spark sandbox` prints the sandbox's).",
        )
    unknown = unknown_keys(app.config)
    if unknown:
        raise Warn(
            f"unknown keys {', '.join(unknown)} are ignored",
            "Check their spelling against the configuration reference.",
        )
    if "csrf" in app.extensions and not state.backchannel_csrf_exempt:
        raise Warn(
            "Flask-WTF's CSRFProtect was set up after SparkAuth(app): unless exempted, it "
            "refuses the provider's back-channel logout (a server-to-server POST)",
            "Set up CSRFProtect(app) before SparkAuth(app), or call "
            "csrf.exempt('flask_spark.ext.views.backchannel_logout').",
        )
    mode = "debug" if app.debug else "testing" if app.testing else "production"
    return f"valid ({mode} mode); issuer {cfg.issuer}"


def _check_redis(state: Any) -> str:
    cfg = state.config
    where = "the embedded development Redis"
    if cfg.redis is not None:
        where = "the SESSION_REDIS client"
    if cfg.redis is None and cfg.redis_url:
        parts = urlsplit(cfg.redis_url)
        host = parts.netloc.rsplit("@", 1)[-1]
        hidden = f"{parts.username or ''}:***@{host}" if parts.password is not None else host
        where = urlunsplit(parts._replace(netloc=hidden))
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
        f"{_setting_hint(state.app.config, 'SPARK_TOKEN_KEYS')}."
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


def _setting_hint(config: Any, key: str) -> str:
    """How to set ``key`` where this app's settings live: the shell when its ``SPARK_*`` keys
    come from the environment, Python when they are set in code, else both ways."""
    shell = f"`export {key}=<key>` in the shell"
    python = f"`app.config[{key!r}] = ['<key>']` in Python"
    given = {k: v for k, v in config.items() if k.startswith("SPARK_") and v is not None}
    from_env = [k for k, v in given.items() if os.environ.get(k) == v]
    if given and len(from_env) == len(given):
        return shell
    return python if given and not from_env else f"{shell}, or {python}"


def _check_discovery(state: Any) -> str:
    cfg = state.config
    client = OIDCClient(cfg)  # a fresh client: never an answer cached by the app
    try:
        meta = client.metadata()
        keys = client.jwks()
    except SparkError as exc:
        fix = (
            f"Check SPARK_ISSUER ({cfg.issuer}) and that this host can reach "
            f"{cfg.discovery_url} (firewall, outbound proxy)."
        )
        if getattr(exc, "error", None) == "discovery_issuer_mismatch":
            fix = (
                f"SPARK_ISSUER ({cfg.issuer}) must be exactly the issuer the provider announces "
                f"at {cfg.discovery_url}: correct SPARK_ISSUER if both are your provider's."
            )
        raise Fail(exc.message, fix) from None
    count = len(getattr(keys, "keys", []) or [])
    return (
        f"issuer {meta['issuer']} matches; token endpoint {meta['token_endpoint']}; "
        f"{count} signing key(s)"
    )


def _check_provider_features(state: Any) -> str:
    """What this app will do against what the provider's discovery document advertises.

    Spark publishes less than a generic provider (no PKCE, no logout channels, no ``sid``);
    PKCE, on by default and ignored where unsupported, is only noted.
    """
    cfg = state.config
    client = OIDCClient(cfg)
    try:
        client.metadata()
        meta = client.published_metadata()
    except SparkError:
        raise Warn("not checked: the discovery document could not be read") from None

    def advertised(key: str) -> list[str] | None:
        value = meta.get(key)
        return [str(v) for v in value] if isinstance(value, list) else None

    warnings: list[str] = []
    fixes: list[str] = []
    pkce = ""
    if cfg.use_pkce and "S256" not in (advertised("code_challenge_methods_supported") or []):
        pkce = (
            "; PKCE is sent but not advertised (a provider without it ignores it; if sign-in "
            "fails with invalid_request, use SparkAuth(app, use_pkce=False))"
        )
    if cfg.single_logout and not (cfg.logout_endpoint or meta.get("end_session_endpoint")):
        warnings.append(
            "single logout is on (SPARK_SINGLE_LOGOUT) but the provider advertises no "
            f"end_session_endpoint; it goes to {cfg.issuer.rstrip('/')}/openid/logout, the URL "
            "FBS's own clients use"
        )
        fixes.append("Try a sign-out against the provider.")
    channels = "front- or back-channel logout advertised"
    if not meta.get("backchannel_logout_supported") and not meta.get(
        "frontchannel_logout_supported"
    ):
        channels = (
            "no front- or back-channel logout is advertised: sign-outs at the provider reach "
            "this app only through the Spark Store Single Logout URI (/spark/store-logout)"
        )
    scopes = advertised("scopes_supported")
    unknown = [s for s in cfg.scope.split() if scopes is not None and s not in scopes]
    if unknown:
        warnings.append(f"requested scopes {', '.join(unknown)} are not in scopes_supported")
        fixes.append("Check SPARK_SCOPE against the provider's scopes_supported.")
    claims = advertised("claims_supported")
    missing = [c for c in cfg.required_claims if claims is not None and c not in claims]
    if missing:
        warnings.append(f"required claims {', '.join(missing)} are not in claims_supported")
        fixes.append("Check SPARK_REQUIRED_CLAIMS: a sign-in without them is refused.")
    if warnings:
        raise Warn("; ".join(warnings) + f"; {channels}{pkce}", " ".join(fixes))
    return f"the provider advertises what this configuration uses; {channels}{pkce}"


def _behind_proxy_fix(app: Flask) -> bool:
    """True when ``app.wsgi_app`` is (or wraps) werkzeug's ``ProxyFix``."""
    wsgi: Any = app.wsgi_app
    for _ in range(10):
        if isinstance(wsgi, ProxyFix):
            return True
        wsgi = getattr(wsgi, "app", None) or getattr(wsgi, "wsgi_app", None)
    return False


def _check_redirect_uri(app: Flask, state: Any) -> str:
    cfg = state.config
    with app.test_request_context():  # shaped by SERVER_NAME and PREFERRED_URL_SCHEME
        path = str(url_for("spark.callback"))
        external = str(url_for("spark.callback", _external=True))
    if cfg.redirect_uri:
        uri, source = cfg.redirect_uri, "SPARK_REDIRECT_URI"
    elif app.config.get("SERVER_NAME"):
        uri, source = external, "SERVER_NAME and PREFERRED_URL_SCHEME"
    else:
        example = f"http(s)://<host>{path}"
        if _behind_proxy_fix(app):
            return (
                f"derived from each request's host and scheme ({example}); ProxyFix is "
                "installed: the proxy's X-Forwarded-Proto/Host count"
            )
        if cfg.require_https:
            raise Warn(
                f"derived from each request's host and scheme ({example}); if a proxy terminates "
                "TLS, the app sees http:// and the sign-in refuses to start",
                "Set SPARK_REDIRECT_URI to the exact URI registered with your key (or "
                "SERVER_NAME and PREFERRED_URL_SCHEME='https'). " + PROXY_FIX_HINT,
            )
        return f"derived from each request's host and scheme ({example})"
    parts = urlsplit(uri)
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
    if parts.path != path:
        raise Warn(
            f"{uri} (from {source}) does not end at this app's callback route {path}",
            f"Unless you route that path to the callback yourself, make the URI end with {path} "
            "(it depends on SPARK_URL_PREFIX).",
        )
    return f"{uri} (from {source}; register exactly this with your key)"


def _check_user_agent(state: Any) -> str:
    agent = state.config.user_agent
    if agent == "flask-spark-dev":
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
    secure = app.config.get("SESSION_COOKIE_SECURE")
    httponly = app.config.get("SESSION_COOKIE_HTTPONLY")
    samesite = app.config.get("SESSION_COOKIE_SAMESITE")
    flags = [f for f, on in (("Secure", secure), ("HttpOnly", httponly)) if on]
    flags += [f"SameSite={samesite}"] if samesite else []
    shown = ", ".join(flags) or "no flags"
    lax = "Use SESSION_COOKIE_SAMESITE = 'Lax' (the default flask-spark sets)."
    if not httponly:
        raise Fail(
            f"the session cookie is readable by page scripts ({shown})",
            "Remove SESSION_COOKIE_HTTPONLY = False.",
        )
    if state.config.require_https and not secure:
        raise Fail(
            f"the session cookie may be sent over plain HTTP ({shown})",
            "Remove SESSION_COOKIE_SECURE = False (flask-spark sets it outside debug).",
        )
    if str(samesite).lower() == "strict":
        raise Fail(
            f"SameSite=Strict ({shown}): the browser does not send the cookie when the provider "
            "redirects back, so every sign-in fails its state check",
            lax,
        )
    if str(samesite).lower() != "lax":
        raise Warn(f"SameSite is {samesite!r} ({shown}): other sites' requests carry it", lax)
    if state.cookie_defaults:
        chosen = ", ".join(f"{k}={v!r}" for k, v in sorted(state.cookie_defaults.items()))
        return f"{shown} (flask-spark set {chosen}: the app had left Flask's default)"
    return f"{shown} (as the app configured it)"

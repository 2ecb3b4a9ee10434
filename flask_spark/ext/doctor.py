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

from ..core.config import PROXY_FIX_HINT, load_config, unknown_keys
from ..core.errors import SparkConfigError, SparkError
from ..core.http import is_loopback_host
from ..core.oidc import OIDCClient
from ..core.redis_client import REDIS_DOWN

Status = Literal["OK", "WARN", "FAIL"]


@dataclass(frozen=True)
class CheckResult:
    """One row of the doctor's table."""

    name: str
    status: Status
    detail: str
    fix: str = ""


class Fail(Exception):
    """Raised by a check as ``Fail(detail, fix="")``: what is wrong, and what to do about it."""

    status: Status = "FAIL"


class Warn(Fail):
    """Acceptable in development, or when the app means it; a failure under ``--strict``."""

    status: Status = "WARN"


def diagnose(load_app: Callable[[], Flask]) -> list[CheckResult]:
    """Load the app and run every check; flask-spark's log warnings are held back (each is in
    its row)."""
    logger = logging.getLogger("flask_spark")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        app = load_app()
        with app.app_context():
            state = app.extensions.get("spark.state")
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
            return [_run(name, check, app, state) for name, check in CHECKS]
    except SparkConfigError as exc:
        fix = "Fix the setting named above, then run `flask spark doctor` again."
        return [CheckResult("configuration", "FAIL", line, fix) for line in exc.message.split("\n")]
    finally:
        logger.setLevel(level)


def _run(name: str, check: Callable[[Flask, Any], str], app: Flask, state: Any) -> CheckResult:
    try:
        return CheckResult(name, "OK", check(app, state))
    except Fail as exc:
        return CheckResult(name, exc.status, *exc.args)
    except Exception as exc:  # a check must never crash the table
        return CheckResult(name, "FAIL", f"{type(exc).__name__}: {exc}")


def _world(url: str) -> str:
    """Which platform a URL belongs to: Spark's production, this machine, or another host."""
    host = urlsplit(url).hostname or ""
    if host == "sparkplatform.com" or host.endswith(("sparkapi.com", ".sparkplatform.com")):
        return "Spark's production"
    return "this machine (a sandbox)" if is_loopback_host(host) else "another host"


def _check_config(app: Flask, state: Any) -> str:
    """What load_config cannot see: settings that disagree, typos, CSRFProtect's order."""
    cfg = state.config
    keys = ("SPARK_ISSUER", "SPARK_API_BASE_URL", "SPARK_RESO_BASE_URL")
    urls = {key: getattr(cfg, key.removeprefix("SPARK_").lower()) for key in keys}
    if len({_world(url) for url in urls.values()}) > 1:
        raise Fail(
            "the settings point at different platforms: "
            + "; ".join(f"{key} {url} is on {_world(url)}" for key, url in urls.items()),
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
            "Flask-WTF's CSRFProtect was set up after SparkAuth(app): back-channel logout fails",
            "Set up CSRFProtect(app) first, or "
            "csrf.exempt('flask_spark.ext.views.backchannel_logout').",
        )
    mode = "debug" if app.debug else "testing" if app.testing else "production"
    return (
        f"valid ({mode} mode); issuer {cfg.issuer}; flask-spark changes "
        "SESSION_REFRESH_EACH_REQUEST: an unchanged session is not written again (its read "
        "renews the idle timeout in Redis), and a signed-in session's cookie lasts as long as "
        "its sign-in"
    )


def _check_redis(app: Flask, state: Any) -> str:
    cfg = state.config
    if cfg.redis is not None:
        where = "the SESSION_REDIS client"
    elif cfg.redis_url:
        parts = urlsplit(cfg.redis_url)
        host = parts.netloc.rsplit("@", 1)[-1]
        hidden = f"{parts.username or ''}:***@{host}" if parts.password is not None else host
        where = urlunsplit(parts._replace(netloc=hidden))
    else:
        where = "the embedded development Redis"
    probe = f"{cfg.key_prefix}doctor:{secrets.token_hex(8)}"
    try:
        state.redis.set(probe, b"1", ex=30)
        state.redis.delete(probe)
    except REDIS_DOWN as exc:
        raise Fail(
            f"cannot reach {where} ({type(exc).__name__}: {exc})",
            "Start Redis, or point SPARK_REDIS_URL at it (redis://host:6379/0; rediss:// for TLS).",
        ) from None
    if cfg.redis is None and not cfg.redis_url:
        raise Warn(
            f"reachable: {where} started because SPARK_REDIS_URL is not set (debug/testing only)",
            "Set SPARK_REDIS_URL to your Redis server before deploying.",
        )
    return f"reachable and writable: {where}"


def _check_keys(app: Flask, state: Any) -> str:
    cfg = state.config
    if cfg.dev_key_file or cfg.ephemeral_key:
        kept = cfg.dev_key_file and f"the development key kept in {cfg.dev_key_file}"
        raise Warn(
            f"SPARK_TOKEN_KEYS is not set: {kept or 'an ephemeral key'} is in use (debug only)",
            f"Run `flask spark keygen` and set SPARK_TOKEN_KEYS to the key: {_key_hint(app)}.",
        )
    count = len(cfg.token_keys)
    return f"{count} Fernet key{'s' if count > 1 else ''}: the first encrypts, all decrypt"


def _key_hint(app: Flask) -> str:
    """Where to set the key: where the app's ``SPARK_*`` settings come from (else both ways)."""
    shell = "`export SPARK_TOKEN_KEYS=<key>` in the shell"
    python = "`app.config['SPARK_TOKEN_KEYS'] = ['<key>']` in Python"
    given = {k: v for k, v in app.config.items() if k.startswith("SPARK_") and v is not None}
    from_env = [k for k, v in given.items() if os.environ.get(k) == v]
    if given and len(from_env) == len(given):
        return shell
    return python if given and not from_env else f"{shell}, or {python}"


def _check_discovery(app: Flask, state: Any) -> str:
    cfg = state.config
    client = OIDCClient(cfg)  # a fresh client: never an answer cached by the app
    try:
        meta = client.metadata()
        keys = client.jwks()
    except SparkError as exc:
        raise Fail(
            exc.message,
            f"SPARK_ISSUER ({cfg.issuer}) must be exactly the issuer the provider announces at "
            f"{cfg.discovery_url}, and this host must reach it (firewall, outbound proxy).",
        ) from None
    return (
        f"issuer {meta['issuer']} matches; token endpoint {meta['token_endpoint']}; "
        f"{len(keys.keys)} signing key(s)"
    )


def _check_provider_features(app: Flask, state: Any) -> str:
    """What this app will use against what the provider's discovery document advertises."""
    cfg = state.config
    try:
        meta = OIDCClient(cfg).published_metadata()
    except SparkError:
        raise Warn("not checked: the discovery document could not be read") from None

    def lacks(key: str, values: Any) -> list[str]:
        offered = meta.get(key)
        return [v for v in values if isinstance(offered, list) and v not in offered]

    pkce = ""
    if cfg.use_pkce and "S256" not in (meta.get("code_challenge_methods_supported") or []):
        pkce = (
            "; PKCE is sent but not advertised (if sign-in fails with invalid_request, "
            "use SparkAuth(app, use_pkce=False))"
        )
    channels = "front- or back-channel logout advertised"
    if not (meta.get("backchannel_logout_supported") or meta.get("frontchannel_logout_supported")):
        channels = "sign-outs reach this app only through the Spark Store Single Logout URI"
    warnings, fixes = [], []
    if cfg.single_logout and not (cfg.logout_endpoint or meta.get("end_session_endpoint")):
        warnings.append(
            "single logout is on (SPARK_SINGLE_LOGOUT) but the provider advertises no "
            f"end_session_endpoint: {cfg.issuer.rstrip('/')}/openid/logout is used"
        )
        fixes.append("Try a sign-out against the provider.")
    scopes = lacks("scopes_supported", cfg.scope.split())
    if scopes:
        warnings.append(f"requested scopes {', '.join(scopes)} are not in scopes_supported")
        fixes.append("Check SPARK_SCOPE against the provider's scopes_supported.")
    claims = lacks("claims_supported", cfg.required_claims)
    if claims:
        warnings.append(f"required claims {', '.join(claims)} are not in claims_supported")
        fixes.append("Check SPARK_REQUIRED_CLAIMS: a sign-in without them is refused.")
    if warnings:
        raise Warn("; ".join(warnings) + f"; {channels}{pkce}", " ".join(fixes))
    return f"the provider advertises what this configuration uses; {channels}{pkce}"


def _behind_proxy_fix(app: Flask) -> bool:
    wsgi: Any = app.wsgi_app
    while wsgi is not None and not isinstance(wsgi, ProxyFix):
        wsgi = getattr(wsgi, "app", None)  # the wrapped app, by WSGI middleware convention
    return wsgi is not None


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
        derived = f"derived from each request's host and scheme (http(s)://<host>{path})"
        if _behind_proxy_fix(app):
            return f"{derived}; ProxyFix is installed: the proxy's X-Forwarded-Proto/Host count"
        if cfg.require_https:
            raise Warn(
                f"{derived}; behind a TLS-terminating proxy, sign-in sees http:// and stops",
                "Set SPARK_REDIRECT_URI to the URI registered with your key. " + PROXY_FIX_HINT,
            )
        return derived
    parts = urlsplit(uri)
    if parts.scheme != "https" and not is_loopback_host(parts.hostname):
        raise (Fail if cfg.require_https else Warn)(
            f"{uri} (from {source}) is not HTTPS: the authorization code would travel in clear",
            "Serve the app over HTTPS and make the URI https://. " + PROXY_FIX_HINT,
        )
    if parts.path != path:
        raise Warn(
            f"{uri} (from {source}) does not end at this app's callback route {path}",
            f"Make the URI end with {path} (it follows SPARK_URL_PREFIX).",
        )
    return f"{uri} (from {source}; register exactly this with your key)"


def _check_user_agent(app: Flask, state: Any) -> str:
    agent = state.config.user_agent
    if agent == "flask-spark-dev":
        raise Warn(
            f"SPARK_USER_AGENT is not set: sending the placeholder {agent!r} (debug/testing only)",
            "Set SPARK_USER_AGENT to your app's name (without it, the API answers code 1016).",
        )
    return f"X-SparkApi-User-Agent: {agent}"


def _check_cookie(app: Flask, state: Any) -> str:
    secure, httponly, samesite = (
        app.config.get(f"SESSION_COOKIE_{name}") for name in ("SECURE", "HTTPONLY", "SAMESITE")
    )
    flags = [f for f, on in (("Secure", secure), ("HttpOnly", httponly)) if on]
    shown = ", ".join(flags + ([f"SameSite={samesite}"] if samesite else [])) or "no flags"
    lax = "Use SESSION_COOKIE_SAMESITE = 'Lax' (the default flask-spark sets)."
    if not httponly:
        raise Fail(
            f"page scripts can read the session cookie ({shown})",
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
    name = app.config["SESSION_COOKIE_NAME"]
    if state.config.require_https and not name.startswith("__Host-"):
        raise Warn(
            f"the session cookie {name!r} ({shown}) has no __Host- prefix: a "
            "sibling subdomain can plant a session id in it",
            "Name it __Host-<name> (SESSION_COOKIE_NAME), unless its visitors' sessions must stay.",
        )
    if state.cookie_defaults:
        chosen = ", ".join(f"{k}={v!r}" for k, v in sorted(state.cookie_defaults.items()))
        return f"{shown} (flask-spark set {chosen}: the app had left Flask's default)"
    return f"{shown} (as the app configured it)"


CHECKS: list[tuple[str, Callable[[Flask, Any], str]]] = [
    ("configuration", _check_config),
    ("redis", _check_redis),
    ("token keys", _check_keys),
    ("discovery", _check_discovery),
    ("provider features", _check_provider_features),
    ("redirect uri", _check_redirect_uri),
    ("user agent", _check_user_agent),
    ("session cookie", _check_cookie),
]
